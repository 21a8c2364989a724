"""Decoded latents as PNG images: the user's decoder called safely, in small batches, on its own device.

A change of a slider decodes one latent and shows it as a PNG made here (no matplotlib per change),
so a redraw is fast on a CPU too.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

Decode = Callable[[torch.Tensor], Any]
Encode = Callable[[torch.Tensor], Any]

_FEW_LATENTS = 16  # decodes of at most this many latents run on one CPU thread


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(pixels: np.ndarray, colour_type: int, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of uint8 ``pixels`` [H, W] or [H, W, 3]; colour type 0 grey, 2 RGB, 3 palette."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    plte = _png_chunk(b"PLTE", palette.astype(np.uint8).tobytes()) if palette is not None else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + plte
        + _png_chunk(b"IDAT", zlib.compress(raw, 1))
        + _png_chunk(b"IEND", b"")
    )


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode ``[H, W]`` (grey) or ``[H, W, 3]`` (colour) floats in [0, 1] as PNG, enlarged ``scale`` x.

    Nearest-neighbour enlargement keeps pixels sharp. zlib runs at its fastest level, since a slider
    redraws on every move.
    """
    pixels = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    if scale > 1:
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
    return encode_png(pixels, 2 if pixels.ndim == 3 else 0)


def _module_of(fn: Callable[..., Any]) -> torch.nn.Module | None:
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def _device_and_dtype(
    fn: Callable[..., Any], device: torch.device | str | None
) -> tuple[torch.device, torch.dtype]:
    """Where (and in which float type) to hand tensors to ``fn``: its module's parameters, else CPU float32."""
    module = _module_of(fn)
    dtype = torch.float32
    found = torch.device("cpu")
    if module is not None:
        for p in module.parameters():
            found, dtype = p.device, (p.dtype if p.is_floating_point() else torch.float32)
            break
    return (torch.device(device) if device is not None else found), dtype


def check_image_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    valid = len(shape) == 2 or (len(shape) == 3 and shape[0] == 3)
    if not valid or min(shape) < 1:
        raise ValueError(
            f"image_shape={tuple(image_shape)} is not an image shape; use (H, W) for grey images "
            "or (3, H, W) for colour ones."
        )
    return shape


def decode_images(
    decode: Decode,
    z: torch.Tensor,
    image_shape: Sequence[int] = (28, 28),
    *,
    output: str = "probs",
    device: torch.device | str | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """Decode latents ``z [B, D]`` into NumPy images ``[B, H, W]`` (or ``[B, H, W, 3]``) in [0, 1].

    decode: ``[B, D] -> [B, ...]`` with ``H * W`` (or ``3 * H * W``) values per row: probabilities
    (``output="probs"``), logits (``output="logits"``, a sigmoid is applied) or a
    ``torch.distributions`` object (its mean is shown). Runs under ``torch.no_grad`` on ``device``
    (default: the decoder's parameters' device), in chunks of ``chunk`` latents.
    """
    if output not in ("probs", "logits"):
        raise ValueError(f"output={output!r} is unknown; use 'probs' (values in [0, 1]) or 'logits'.")
    shape = check_image_shape(image_shape)
    dev, dtype = _device_and_dtype(decode, device)
    pieces = [
        _decode_chunk(decode, z[i : i + chunk], shape, output, dev, dtype)
        for i in range(0, z.shape[0], chunk)
    ]
    images = np.concatenate(pieces)
    return np.moveaxis(images, 1, -1) if len(shape) == 3 else images


@contextmanager
def _one_thread_for_small_cpu_batches(device: torch.device, batch: int) -> Iterator[None]:
    """Decode a few latents on one CPU thread.

    A batch of one gains nothing from intra-op threads, and waking them costs far more than the decode
    itself when the cores are busy, which would make the sliders lag. torch offers no per-call thread
    count, so this sets the process-wide one for the length of one decode and restores it in
    ``finally``, also when the decoder raises; the count is read on every call, so a student's own
    ``set_num_threads`` stands.
    """
    threads = torch.get_num_threads()
    if device.type != "cpu" or batch > _FEW_LATENTS or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _decode_chunk(
    decode: Decode,
    z: torch.Tensor,
    shape: tuple[int, ...],
    output: str,
    device: torch.device,
    dtype: torch.dtype,
) -> np.ndarray:
    with torch.no_grad(), _one_thread_for_small_cpu_batches(device, z.shape[0]):
        try:
            out = decode(z.to(device=device, dtype=dtype))
        except Exception as err:  # the user's decoder: any failure is reported with what we passed in
            raise ValueError(
                f"decode failed on a latent batch of shape {list(z.shape)} ({type(err).__name__}: {err}); "
                "is latent_dim the decoder's latent size?"
            ) from err
        if isinstance(out, torch.distributions.Distribution):
            out, output = out.mean, "probs"
        if isinstance(out, tuple | list):
            raise ValueError(
                f"decode returned a {type(out).__name__}; it must return one tensor of images, e.g. "
                "lambda z: model.decode(z)[0]."
            )
        out = torch.as_tensor(out)
        if output == "logits":
            out = torch.sigmoid(out)
        out = out.detach().to("cpu", torch.float32)
    per_image = math.prod(shape)
    if out.dim() == 0 or out.shape[0] != z.shape[0] or out[0].numel() != per_image:
        got = out[0].numel() if out.dim() and out.shape[0] == z.shape[0] else None
        raise ValueError(
            f"decode turned {z.shape[0]} latents into shape {list(out.shape)}"
            + (f", {got} values per image" if got is not None else "")
            + f", but image_shape={shape} needs {per_image} per image; pass the image_shape the decoder "
            "produces (e.g. image_shape=(28, 28) for 784 values)."
        )
    values = out.reshape(z.shape[0], *shape).numpy()
    low, high = float(values.min()), float(values.max())
    if output == "probs" and (low < -1e-4 or high > 1 + 1e-4):
        raise ValueError(
            f"decode returned values in [{low:.3g}, {high:.3g}], outside [0, 1]: these look like logits; "
            "pass output='logits' (the explorer then applies a sigmoid)."
        )
    return np.clip(values, 0.0, 1.0)


def encode_means(encode: Encode, x: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Encoder means ``[B, D]`` (CPU float32) for inputs ``x [B, ...]``.

    encode may return the mean, a tuple whose first entry is the mean (mu, logvar), or a distribution.
    uint8 inputs (pixels 0..255) are scaled to floats in [0, 1] first.
    """
    dev, dtype = _device_and_dtype(encode, device)
    x = torch.as_tensor(x)
    if x.dtype == torch.uint8:  # stored pixels 0..255; encoders take floats in [0, 1]
        x = x.to(dtype) / 255.0
    x = x.to(device=dev, dtype=dtype if x.is_floating_point() else x.dtype)
    with torch.no_grad():
        out = encode(x)
    if isinstance(out, torch.distributions.Distribution):
        out = out.mean
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"encode returned a {type(out).__name__}; it must return the mean tensor or (mean, logvar)."
        )
    return out.detach().to("cpu", torch.float32).reshape(x.shape[0], -1)


def as_display_image(x: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray | None:
    """An input example as a [H, W] (or [H, W, 3]) image in [0, 1], or None if it is not one."""
    values = x.detach().to("cpu", torch.float32)
    if values.numel() != math.prod(image_shape):
        return None
    if x.dtype == torch.uint8:
        values = values / 255.0
    image = values.reshape(image_shape).numpy()
    if len(image_shape) == 3:
        image = np.moveaxis(image, 0, -1)
    low, high = float(image.min()), float(image.max())
    return np.clip(image, 0.0, 1.0) if low >= 0 and high <= 1 else (image - low) / max(high - low, 1e-12)

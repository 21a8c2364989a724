"""Trainer speed: utils.train.fit against the usual DataLoader recipe, same model, device and seed.

Run by hand (not collected by pytest):

    .venv/bin/python tests/benchmarks/bench_trainer.py [--epochs N] [--device cuda] [--model mlp|conv]
        [--limit N] [--repeats R] [--threads T] [--compile] [--markdown results/trainer_benchmark.md]

Recipes, each from the same initial weights:
  reference    a torchvision-style per-item Dataset (uint8 image -> float tensor on every access) and
               DataLoader(num_workers=1, pin_memory on CUDA), the usual eager loop with loss.item()
  device loop  the data on the device, randperm + slicing, a plain eager loop without logging
  fit eager    utils.train.fit(speed="eager"): the device loop plus fit's bookkeeping
  fit compile  utils.train.fit(speed="compile") (only with --compile)
  fit auto     utils.train.fit(speed="auto"): the whole step in one CUDA graph (CUDA only)
  hand graph   a hand-written whole-step CUDA graph, no logging at all: the ceiling (CUDA only)

Reported: seconds per epoch (median over the epochs after a warm-up epoch, over all rounds), the
speed-up over the reference, and the one-sample negative test ELBO in nats (a check that every recipe
learned about the same). On a shared machine use --repeats: rounds alternate the recipe order.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from utils import runtime, train  # noqa: E402
from utils.data import load_mnist, num_batches  # noqa: E402

# ----------------------------------------------------------------------------------------- models


def negative_elbo(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> dict:
    """Bernoulli likelihood on pixel intensities in [0, 1] and a Gaussian KL, both in nats per image."""
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # [B]
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)  # [B]
    return {"loss": (rec + kl).mean(), "rec": rec.mean(), "kl": kl.mean()}


class MlpVAE(nn.Module):
    """The calibration model of targets.md: 784-400-20 with a 20-400-784 decoder."""

    def __init__(self, hidden: int = 400, z_dim: int = 20):
        super().__init__()
        self.enc = nn.Linear(784, hidden)
        self.mu = nn.Linear(hidden, z_dim)
        self.logvar = nn.Linear(hidden, z_dim)
        self.dec = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def loss(self, x: torch.Tensor) -> dict:  # x: [B, 784] in [0, 1]
        h = F.relu(self.enc(x))
        mu, logvar = self.mu(h), self.logvar(h)  # [B, z]
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return negative_elbo(self.dec(z), x, mu, logvar)


class ConvVAE(nn.Module):
    """Two stride-2 convolutions down to 7x7, two transposed convolutions back up."""

    def __init__(self, z_dim: int = 20):
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten()
        )  # [B, 64*7*7]
        self.head = nn.Linear(64 * 7 * 7, 2 * z_dim)
        self.dec = nn.Sequential(
            nn.Linear(z_dim, 64 * 7 * 7),
            nn.ReLU(),
            nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, 2, 1),
            nn.Flatten(),
        )  # [B, 784] logits

    def loss(self, x: torch.Tensor) -> dict:  # x: [B, 784] in [0, 1]
        mu, logvar = self.head(self.enc(x.view(-1, 1, 28, 28))).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return negative_elbo(self.dec(z), x, mu, logvar)


MODELS: dict[str, Callable[[], nn.Module]] = {"mlp": MlpVAE, "conv": ConvVAE}

# ------------------------------------------------------------------------------ the reference recipe


class MnistItems(torch.utils.data.Dataset):
    """torchvision-style: the images stay uint8 and each item is converted when it is accessed."""

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, transform: Callable[[np.ndarray], torch.Tensor]
    ):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[i]), int(self.labels[i])


def to_float_tensor(image: np.ndarray) -> torch.Tensor:
    """What ToTensor does to a grey image: uint8 [28, 28] -> float32 [1, 28, 28] in [0, 1]."""
    return torch.from_numpy(image).to(torch.float32).div(255.0).unsqueeze(0)


def reference_recipe(model, *, images, labels, device, epochs, batch_size, seed) -> list[float]:
    loader = torch.utils.data.DataLoader(
        MnistItems(images, labels, to_float_tensor),
        batch_size=batch_size,
        shuffle=True,
        num_workers=1,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for _ in range(epochs):
        with runtime.Timer(device=device) as timer:
            running = 0.0
            for x, _ in loader:
                x = x.to(device, non_blocking=True).view(-1, 784)
                optimizer.zero_grad()
                loss = model.loss(x)["loss"]
                loss.backward()
                optimizer.step()
                running += loss.item()  # the usual per-step logging: one host-device sync per step
        times.append(timer.seconds)
    return times


# ---------------------------------------------------------------------------- utils.train.fit recipes


def fit_recipe(speed: str, model, *, x_train, device, epochs, batch_size, seed) -> list[float]:
    resolved = ("graph" if device.type == "cuda" else "eager") if speed == "auto" else speed
    per_epoch = num_batches(len(x_train), batch_size, drop_last=resolved in ("graph", "compile"))
    runtime.synchronize(device)
    history = train.fit(
        model,
        x_train,
        epochs=epochs,
        batch_size=batch_size,
        lr=1e-3,
        speed=speed,
        log_every=per_epoch,  # one read-back per epoch, at its end: the epoch boundaries
        generator=seed,
        progress=False,
        live_plot=False,
    )
    if history.speed != resolved:
        print(f"  note: fit(speed={speed!r}) ran {history.speed!r}: {history.notes}")
    ends = history.seconds
    return [b - a for a, b in zip([0.0, *ends[:-1]], ends)]


def device_loop_recipe(model, *, x_train, device, epochs, batch_size, seed) -> list[float]:
    """The plain eager loop over device-resident data (randperm + slicing), no logging: what
    fit(speed="eager") does, minus its bookkeeping, so the two should be close."""
    optimizer = train.adam(model, lr=1e-3, capturable=False)
    gen = torch.Generator(device=device).manual_seed(seed)
    times = []
    for _ in range(epochs):
        with runtime.Timer(device=device) as timer:
            order = torch.randperm(len(x_train), device=device, generator=gen)
            for start in range(0, len(x_train), batch_size):
                optimizer.zero_grad(set_to_none=True)
                model.loss(x_train[order[start : start + batch_size]])["loss"].backward()
                optimizer.step()
        times.append(timer.seconds)
    return times


def hand_graph_recipe(model, *, x_train, device, epochs, batch_size, seed) -> list[float]:
    """The whole step in one CUDA graph, written out by hand (no logging, no NaN guard)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True, capturable=True)
    static_x = x_train[:batch_size].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            model.loss(static_x)["loss"].backward()
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    optimizer.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model.loss(static_x)["loss"].backward()
        optimizer.step()
    gen = torch.Generator(device=device).manual_seed(seed)
    n = len(x_train) // batch_size * batch_size
    times = []
    for _ in range(epochs):
        with runtime.Timer(device=device) as timer:
            order = torch.randperm(len(x_train), device=device, generator=gen)
            for start in range(0, n, batch_size):
                static_x.copy_(x_train[order[start : start + batch_size]])
                graph.replay()
        times.append(timer.seconds)
    return times


# ------------------------------------------------------------------------------------------- main


def machine_line(device: torch.device) -> str:
    where = f"{device}"
    if device.type == "cuda":
        where += f" ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    return (
        f"{where}; {os.cpu_count()} CPU cores ({cpu}), {torch.get_num_threads()} torch threads; "
        f"torch {torch.__version__}; Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per recipe; the first is a warm-up")
    parser.add_argument("--device", default=None, help="cpu / cuda / mps (default: runtime.get_device())")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--limit", type=int, default=None, help="training examples (default: all 60,000)")
    parser.add_argument("--test-limit", type=int, default=None, help="test examples (default: all 10,000)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all recipes, in alternating order")
    parser.add_argument("--compile", action="store_true", help="also time fit(speed='compile')")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="append the table to this markdown file")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is a warm-up that is not timed.")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = runtime.get_device(args.device)
    images, labels = load_mnist("train", limit=args.limit)  # uint8 [N, 28, 28], CPU
    x_train = images.reshape(len(images), 784).to(device=device, dtype=torch.float32).div_(255.0)
    test_images, _ = load_mnist("test", limit=args.test_limit)
    x_test = test_images.reshape(len(test_images), 784).to(device=device, dtype=torch.float32).div_(255.0)
    np_images, np_labels = images.numpy(), labels.numpy()

    common = {"device": device, "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed}
    recipes: list[tuple[str, Callable[[nn.Module], list[float]]]] = [
        (
            "reference (Dataset + DataLoader)",
            partial(reference_recipe, images=np_images, labels=np_labels, **common),
        ),
        ("device tensors, plain eager loop", partial(device_loop_recipe, x_train=x_train, **common)),
        ("fit, speed='eager'", partial(fit_recipe, "eager", x_train=x_train, **common)),
    ]
    if args.compile:
        recipes.append(("fit, speed='compile'", partial(fit_recipe, "compile", x_train=x_train, **common)))
    if device.type == "cuda":
        recipes.append(
            ("fit, speed='auto' (CUDA graph)", partial(fit_recipe, "auto", x_train=x_train, **common))
        )
        recipes.append(
            ("hand-written whole-step CUDA graph", partial(hand_graph_recipe, x_train=x_train, **common))
        )

    print(
        f"{machine_line(device)}\nmodel {args.model}, {len(x_train):,} training / {len(x_test):,} test images, "
        f"batch {args.batch_size}, {args.epochs} epochs (first is warm-up), {args.repeats} round(s)"
    )
    timed: dict[str, list[float]] = {name: [] for name, _ in recipes}
    nelbo: dict[str, float] = {}
    for round_ in range(args.repeats):
        # Alternate the order between rounds, so that drifting load on a shared machine hits all alike.
        for name, run in recipes if round_ % 2 == 0 else recipes[::-1]:
            torch.manual_seed(args.seed)
            model = MODELS[args.model]().to(device)
            start = time.perf_counter()
            times = run(model)
            timed[name] += times[1:]
            nelbo.setdefault(name, train.evaluate(model, x_test, batch_size=1000)["loss"])
            print(
                f"  {name:38s} epochs {', '.join(f'{t:.3f}' for t in times)} s; "
                f"test -ELBO {nelbo[name]:7.2f}; {time.perf_counter() - start:.1f} s total",
                flush=True,
            )
    rows = [(name, statistics.median(timed[name]), nelbo[name]) for name, _ in recipes]

    reference = rows[0][1]
    table = [
        "| recipe | s/epoch | vs reference | test -ELBO (nats) |",
        "|---|---|---|---|",
        *(f"| {name} | {sec:.3f} | {reference / sec:.2f}x | {value:.2f} |" for name, sec, value in rows),
    ]
    print("\n" + "\n".join(table))
    if args.markdown is not None:
        write_markdown(args.markdown, device, args, len(x_train), len(x_test), table, argv)
    return 0


def write_markdown(path: Path, device, args, n_train: int, n_test: int, table: list[str], argv) -> None:
    command = "tests/benchmarks/bench_trainer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = [
        f"## {args.model} VAE on {device.type}, {datetime.date.today().isoformat()}",
        "",
        f"- machine: {machine_line(device)}",
        f"- command: `.venv/bin/python {command.strip()}`",
        f"- data: {n_train:,} training / {n_test:,} test MNIST images (intensities in [0, 1]), "
        f"batch {args.batch_size}, Adam 1e-3, {args.epochs} epochs, seed {args.seed}",
        "- s/epoch: median over the epochs after the first (warm-up) of every round; test -ELBO: one-sample negative ELBO "
        f"after round 1; {args.repeats} round(s) in alternating order",
        "",
        *table,
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    heading = (
        ""
        if path.exists()
        else "# Trainer benchmark\n\nWritten by `tests/benchmarks/bench_trainer.py --markdown`.\n\n"
    )
    with path.open("a") as f:
        f.write(heading + "\n".join(section) + "\n")
    print(f"appended to {path}")


if __name__ == "__main__":
    sys.exit(main())

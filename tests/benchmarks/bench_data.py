"""Data-loading speed: full MNIST (and the other sets) from disk, then again from the memory cache.

Run by hand (not collected by pytest), with the offline copies:

    DIGM_DATA_DIR=../shared/data .venv/bin/python tests/benchmarks/bench_data.py [--device cuda] [--repeats 5]

Reported, per dataset: the first load in this process (read, verify the checksum, gunzip or parse,
copy to the device) and the median of later loads (read and hash the file, then one tensor copy
from the in-process cache of decoded arrays, keyed by path and checksum). ``DIGM_OFFLINE=1`` is set,
so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from utils import data, runtime  # noqa: E402


def timed(fn: Callable[[], object], device: torch.device) -> float:
    with runtime.Timer(device=device) as timer:
        fn()
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: runtime.get_device())")
    parser.add_argument("--repeats", type=int, default=5, help="later loads to take the median of")
    args = parser.parse_args()
    os.environ["DIGM_OFFLINE"] = "1"
    if not data.data_dir():
        sys.exit("Set DIGM_DATA_DIR to the offline datasets (e.g. ../shared/data) to benchmark full loads.")
    device = runtime.get_device(args.device)
    print(runtime.describe(device))
    cases = {
        "mnist_train": lambda: data.load_mnist("train", device=device, require_full=True),
        "fashion_train": lambda: data.load_mnist("train", dataset="fashion-mnist", device=device),
        "binarized_train": lambda: data.load_binarized_mnist("train", device=device, require_full=True),
        "austen_text": lambda: data.load_text(),
    }
    print(f"{'dataset':<16} {'first load s':>12} {'later load s':>12}")
    for name, load in cases.items():
        first = timed(load, device)
        later = statistics.median(timed(load, device) for _ in range(args.repeats))
        print(f"{name:<16} {first:>12.3f} {later:>12.3f}")


if __name__ == "__main__":
    main()

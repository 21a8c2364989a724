"""Benchmark: decode-and-redraw time per slider change of utils.widgets, headless.

Run by hand (pytest does not collect bench_*.py):

    .venv/bin/python tests/benchmarks/bench_widgets.py [--changes 200] [--device cpu]

For each random-weight MLP decoder it sets ``changes`` slider values from Python (each one decodes z,
encodes the PNG and, for a 2-D latent, redraws the marked latent map) and prints the median and
90th-percentile milliseconds per change. The target is 50 ms or less per change on a CPU, the
budget for a slider that follows the mouse (``continuous_update=True``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in the checkout

from utils import runtime  # noqa: E402
from utils.widgets import InterpolationExplorer, LatentExplorer  # noqa: E402


def mlp_decoder(sizes: list[int]) -> nn.Module:
    """Random-weight MLP ``[B, sizes[0]] -> [B, sizes[-1]]`` logits (tanh hidden layers)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).eval()


def time_changes(set_value, values: list[float]) -> list[float]:
    """Milliseconds for each ``set_value(v)`` (one slider change, including its redraw)."""
    times = []
    for v in values:
        start = time.perf_counter()
        set_value(v)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def report(label: str, times: list[float]) -> float:
    median = statistics.median(times)
    p90 = statistics.quantiles(times, n=10)[-1]
    print(f"{label:<44} median {median:6.2f} ms   p90 {p90:6.2f} ms   ({len(times)} changes)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--device", default="cpu", help="cpu (the target), cuda, mps")
    args = parser.parse_args()
    device = runtime.get_device(args.device)
    runtime.seed_everything(0)
    print(runtime.describe(device), f"| torch threads {torch.get_num_threads()}")
    values = (torch.rand(args.changes) * 6 - 3).tolist()

    results = {}
    for sizes in ([2, 200, 200, 784], [20, 400, 784]):
        decoder = mlp_decoder(sizes).to(device)
        explorer = LatentExplorer(decoder, sizes[0], output="logits")
        name = "-".join(map(str, sizes))
        sliders = explorer.sliders

        def set_value(v: float, sliders=sliders, counter=[0]) -> None:  # noqa: B006 (a per-run counter)
            sliders[counter[0] % len(sliders)].value = v
            counter[0] += 1

        label = f"LatentExplorer MLP {name}" + (" (+ latent map)" if sizes[0] == 2 else "")
        results[name] = report(label, time_changes(set_value, values))

        x = torch.rand(2, sizes[0])
        inter = InterpolationExplorer(decoder, lambda x: x, x[0], x[1], output="logits")
        ts = [abs(v) / 3 for v in values]
        report(
            f"InterpolationExplorer MLP {name}",
            time_changes(lambda t, s=inter.slider: setattr(s, "value", t), ts),
        )

    for name, median in results.items():
        runtime.report_result(f"widget_ms_per_change_mlp_{name.replace('-', '_')}", median, "ms")
    worst = max(results.values())
    print(f"target <= 50 ms per change: {'met' if worst <= 50 else 'NOT met'} (worst median {worst:.2f} ms)")


if __name__ == "__main__":
    main()

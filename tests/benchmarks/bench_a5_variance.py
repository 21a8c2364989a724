"""The spread of a5_discrete's variance-band tests: measured / exact total variance, and the largest z-score of the
measured mean, of the reference `measure_variance` on the tests' REINFORCE estimators over many seeds.

Runs the solution notebook's set-up, Part 4 helpers and reference answer, then repeats the measurement of the
visible band test (K = 4, n = 4, R = 400; no baseline and leave-one-out) and of the hidden one (K = 3, n = 3,
R = 300) on seeds the tests do not use, and prints quantiles.
From the repository root:

    PYTHONPATH=. DIGM_OFFLINE=1 OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_a5_variance.py --seeds 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
import torch

NOTEBOOK = Path(__file__).resolve().parents[2] / "solutions" / "a5_discrete" / "a5_discrete.ipynb"
CELLS = ("a5_setup", "a5_variance_answer", "a5_var_helpers", "a5_var_thresholds")


def notebook_namespace() -> dict:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    ns: dict = {}
    for cell in nb.cells:
        if cell.get("id") in CELLS:
            exec(compile(cell.source, cell.id, "exec"), ns)  # noqa: S102 (our own notebook)
    return ns


def spread(
    ns: dict, logits, f, n: int, repeats: int, baseline: str, seeds: range
) -> tuple[torch.Tensor, torch.Tensor]:
    exact_mean, exact_var = ns["exact_moments"](logits, f, n, baseline)
    ratios, zs = [], []
    for seed in seeds:
        est = ns["reinforce_estimator"](logits, f, n, ns["stream"](10_000 + seed), baseline)
        mean, total = ns["measure_variance"](est, repeats)
        ratios.append(float(total / exact_var.sum()))
        zs.append(float(((mean - exact_mean).abs() / (exact_var / repeats).sqrt()).max()))
    return torch.tensor(ratios, dtype=torch.float64), torch.tensor(zs, dtype=torch.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2000)
    args = parser.parse_args()
    ns = notebook_namespace()
    f64 = ns["f64"]
    cases = [
        ("visible K=4 n=4 R=400", ns["logits_v"], ns["f_v"], 4, 400),
        ("hidden K=3 n=3 R=300", f64([1.0, -1.0, 0.2]), f64([-5.0, -3.0, -6.5]), 3, 300),
    ]
    q = torch.tensor([0.0, 0.001, 0.01, 0.5, 0.99, 0.999, 1.0], dtype=torch.float64)
    print(f"{args.seeds} seeds; quantiles {q.tolist()}")
    for label, logits, f, n, repeats in cases:
        for baseline in ("none", "loo"):
            ratios, zs = spread(ns, logits, f, n, repeats, baseline, range(args.seeds))
            print(
                f"{label} {baseline:>4}: ratio {[round(v, 3) for v in torch.quantile(ratios, q).tolist()]}; "
                f"max z {[round(v, 2) for v in torch.quantile(zs, q).tolist()]}; "
                f"share of ratios within 5% of 1: {float(((ratios - 1).abs() <= 0.05).double().mean()):.2f}"
            )


if __name__ == "__main__":
    main()

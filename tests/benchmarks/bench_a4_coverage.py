"""The spread of a4_adversarial's coverage tests: ring coverage after `train_on_ring` over many seeds.

Runs the assignment's own set-up and training helper (read from the solution notebook) with the model answer's
`gan_step` or with one typical mistake, and prints one line per seed: variant, seed, modes covered (of 8), share of
high-quality samples, CPU seconds. The coverage tests' thresholds come from these numbers
(results/a4_coverage_spread.md). From the repository root, one BLAS thread::

    PYTHONPATH=. DIGM_FAST=1 OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_a4_coverage.py reference 0 200
    ... bench_a4_coverage.py sign 0 30        # also: minimax, detached
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
import torch.nn.functional as F

NOTEBOOK = Path(__file__).resolve().parents[2] / "solutions" / "a4_adversarial" / "a4_adversarial.ipynb"


def notebook_namespace() -> dict:
    """The set-up and Part 3 helper cells of the solution notebook, and its gan_step, executed in one namespace."""
    cells = {
        c.metadata["nbgrader"]["grade_id"]: c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
    }
    namespace: dict = {}
    for grade_id in ("a4_setup", "a4_step_helpers", "a4_step_answer"):
        exec(cells[grade_id], namespace)  # noqa: S102  (our own notebook's cells)
    return namespace


def mistaken_step(variant: str):
    """gan_step with one typical mistake: the minimax loss, a flipped sign, or a generator that never moves."""

    def step(generator, discriminator, x_real, z, opt_g, opt_d):
        fake = generator(z)
        opt_d.zero_grad()
        d_loss = F.softplus(-discriminator(x_real)).mean() + F.softplus(discriminator(fake.detach())).mean()
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        logits = discriminator(fake.detach() if variant == "detached" else fake)
        g_loss = {"minimax": -F.softplus(logits).mean(), "sign": -F.softplus(-logits).mean()}.get(
            variant, F.softplus(-logits).mean()
        )
        if variant != "detached":
            g_loss.backward()
            opt_g.step()
        return d_loss.detach(), g_loss.detach()

    return step


def main(variant: str, first: int, last: int) -> None:
    ns = notebook_namespace()
    step = ns["gan_step"] if variant == "reference" else mistaken_step(variant)
    centers = ns["ring8_centers"]()
    for seed in range(first, last):
        start = time.process_time()
        samples = ns["train_on_ring"](step, seed=seed)[3]
        modes, high_quality = ns["_ref_coverage"](samples, centers, 3 * ns["RING8_STD"])
        print(variant, seed, modes, round(high_quality, 4), round(time.process_time() - start, 2), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

"""Lecture 05's full-mode MADE, trained outside the notebook: exact valid and test NLL along the way.

Run by hand (not collected by pytest), with the offline copies:

    DIGM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_made.py \
        [--masks 1] [--epochs 40] [--every 5] [--device cpu] [--schedule 4:5e-3,8:1e-3,12:2e-4]
        [--weight-decay 0.05] [--hidden 1000]

Trains ``utils.models.MADE`` (784-1000-784, ReLU, with direct input-to-output connections) with
``utils.train.fit`` on the 50,000 statically binarized training digits, batch 100, Adam with decoupled
weight decay 0.05 at the rates of ``SCHEDULE``, with the output biases started at the logit of each
pixel's mean, exactly as lecture 05 does in full mode, and prints the exact NLL (nats) on the 10,000
valid and 10,000 test digits every ``--every`` epochs, with the seconds so far, and at the end the
test NLL at the epoch of the best validation NLL. ``--masks K --order-agnostic`` trains the
order-agnostic model (one mask per batch); its NLL is that of the ensemble of all K masks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from utils import runtime  # noqa: E402
from utils.data import load_binarized_mnist  # noqa: E402
from utils.models import MADE  # noqa: E402
from utils.train import adam, fit  # noqa: E402

SCHEDULE = [(4, 5e-3), (8, 1e-3), (12, 2e-4)]  # lecture 05's MADE_SCHEDULE in full mode
HIDDEN, WEIGHT_DECAY = (1000,), 0.05  # its MADE_HIDDEN and MADE_DECAY in full mode


@torch.no_grad()
def exact_nll(model: MADE, x: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    total = sum(-model.log_prob(x[i : i + batch]).double().sum().item() for i in range(0, len(x), batch))
    model.train()
    return total / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--masks", type=int, default=1)
    parser.add_argument("--order-agnostic", action="store_true")
    parser.add_argument(
        "--epochs", type=int, default=None, help="stop after this many (default: all of the schedule)"
    )
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--schedule", default=None, help="e.g. 4:5e-3,8:1e-3,12:2e-4 (default: SCHEDULE)")
    parser.add_argument(
        "--weight-decay", type=float, default=WEIGHT_DECAY, help="decoupled (AdamW); 0: plain Adam"
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=list(HIDDEN))
    args = parser.parse_args()
    schedule = (
        SCHEDULE
        if args.schedule is None
        else [
            (int(until), float(lr)) for until, lr in (stage.split(":") for stage in args.schedule.split(","))
        ]
    )
    epochs = schedule[-1][0] if args.epochs is None else min(args.epochs, schedule[-1][0])
    device = runtime.get_device(args.device)
    runtime.seed_everything(0)
    x_train = load_binarized_mnist("train", device=device).float()
    x_valid = load_binarized_mnist("valid", device=device).float()
    x_test = load_binarized_mnist("test", device=device).float()
    model = MADE(
        784, tuple(args.hidden), num_masks=args.masks, order_agnostic=args.order_agnostic, direct=True
    ).to(device)
    with torch.no_grad():
        model.layers[-1].bias.copy_(torch.logit(x_train.mean(0).clamp(1e-3, 1 - 1e-3)))
    optimizer = None  # fit's own Adam
    if args.weight_decay:  # as lecture 05's made_optimizer
        optimizer = adam(model, schedule[0][1], weight_decay=args.weight_decay, decoupled_weight_decay=True)
    print(runtime.describe(device), f"| masks {args.masks}, order-agnostic {args.order_agnostic}, hidden {args.hidden}, "
          f"schedule {schedule}, weight decay {args.weight_decay}", flush=True)  # fmt: skip
    checkpoint = Path(f"/tmp/bench_made_{os.getpid()}.pt")
    checkpoint.unlink(missing_ok=True)  # fit resumes from it between evaluations, never from an old run
    done = 0
    start = time.perf_counter()
    best = (float("inf"), 0, float("nan"))  # (valid, epoch, test): early stopping on the validation digits
    while done < epochs:
        done = min(done + args.every, epochs)
        fit(model, x_train, epochs=done, batch_size=100, lr_schedule=schedule, optimizer=optimizer, progress=False,
            live_plot=False, generator=0, checkpoint=checkpoint)  # fmt: skip
        seconds = time.perf_counter() - start
        valid, test = exact_nll(model, x_valid), exact_nll(model, x_test)
        best = min(best, (valid, done, test))
        print(f"epoch {done}: valid {valid:.2f}, test {test:.2f} nats ({seconds:.0f} s so far)", flush=True)
    print(
        f"best validation NLL {best[0]:.2f} after epoch {best[1]}: test NLL there {best[2]:.2f} nats",
        flush=True,
    )
    checkpoint.unlink(missing_ok=True)


if __name__ == "__main__":
    main()

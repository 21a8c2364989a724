"""Lecture 09's goal for the 2-D AAE, probed outside the notebook: how close q(z) gets to N(0, I).

Run by hand (not collected by pytest), with the offline copies:

    DIGM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_aae.py \
        [--hidden 256 256] [--epochs 10] [--adv-weight 5] [--lr 1e-3] [--disc-lr 1e-3] \
        [--final-lr 1e-4 --final-epochs 3] [--disc-hidden 256 256] [--n-mmd 2000] [--every 5]

Trains ``utils.models.AAE`` with the standard normal prior on all 60,000 training digits (dynamically
binarized, batch 100, Adam with beta1 0.5 for both players, as lecture 09 does) and, every
``--every`` epochs, prints what the lecture's goal check measures: MMD^2 between the codes of
``--n-mmd`` training digits (a fixed random subset, one fixed binarization) and as many prior draws,
with the lecture's kernel (five RBF widths around the median distance), divided by the 95th
percentile of ``--n-null`` prior-vs-prior values at the same n; and the reconstruction in nats per
test digit. ``--final-epochs K --final-lr r`` trains the last K epochs of both players at rate r.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from utils import metrics, runtime  # noqa: E402
from utils.data import dynamic_binarize, mnist_vectors  # noqa: E402
from utils.models import aae as aae_lib  # noqa: E402
from utils.train import fit  # noqa: E402


def prior_reference(
    prior: aae_lib.GaussianMixturePrior, n: int, pairs: int, seed: int
) -> tuple[list[float], float]:
    """The lecture's kernel widths and the 95th percentile of prior-vs-prior MMD^2 at n points per sample."""
    g = torch.Generator(device=prior.device).manual_seed(seed)
    widths = metrics.mmd_bandwidths(prior.sample(n, g), prior.sample(n, g))
    null = torch.tensor(
        [metrics.mmd2_unbiased(prior.sample(n, g), prior.sample(n, g), widths) for _ in range(pairs)]
    )
    return widths, null.quantile(0.95).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--disc-hidden", type=int, nargs="+", default=None, help="default: --hidden")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--adv-weight", type=float, default=5.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--disc-lr", type=float, default=None, help="default: --lr")
    parser.add_argument("--final-lr", type=float, default=None)
    parser.add_argument("--final-epochs", type=int, default=0)
    parser.add_argument("--n-mmd", type=int, default=2000)
    parser.add_argument("--n-null", type=int, default=50)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = runtime.get_device(args.device)
    runtime.seed_everything(args.seed)
    x_train, _ = mnist_vectors("train", device=device)  # [60000, 784] in [0, 1]
    x_test, _ = mnist_vectors("test", device=device)
    fixed = torch.Generator(device=device)
    x_test_bin = dynamic_binarize(x_test, fixed.manual_seed(5))
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(8))[: args.n_mmd].to(device)
    x_mmd = dynamic_binarize(x_train[pick], fixed.manual_seed(8))
    prior = aae_lib.standard_normal_prior(2).to(device)
    widths, q95 = prior_reference(prior, args.n_mmd, args.n_null, 100)
    model = aae_lib.AAE.mlp(
        prior, hidden=args.hidden, disc_hidden=args.disc_hidden, adversarial_weight=args.adv_weight
    ).to(device)
    optimizers = aae_lib.aae_optimizers(model, lr=args.lr, disc_lr=args.disc_lr)
    print(
        runtime.describe(device),
        f"| {vars(args)} | prior-vs-prior q95 {q95:.5f} at n = {args.n_mmd}",
        flush=True,
    )
    schedule = None
    if args.final_epochs:
        disc_lr = args.disc_lr if args.disc_lr is not None else args.lr
        final = args.final_lr / args.lr
        schedule = [(args.epochs - args.final_epochs, 1.0), (args.epochs, final)]
        base = {"ae": args.lr, "disc": disc_lr}
    start, done = time.perf_counter(), 0
    while done < args.epochs:
        chunk = min(args.every, args.epochs - done)
        done += chunk
        if schedule is not None:
            scale = schedule[0][1] if done <= schedule[0][0] else schedule[1][1]
            for name, opt in optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = base[name] * scale
        # the same optimizers on: their state carries over from one piece to the next
        history = fit(model, x_train, epochs=chunk, batch_size=100, optimizer=optimizers, progress=False,
                      live_plot=False, generator=args.seed * 1000 + done)  # fmt: skip
        model.eval()
        with torch.no_grad():
            codes = model.encode(x_mmd)
            draws = prior.sample(args.n_mmd, torch.Generator(device=device).manual_seed(10))
            mmd2 = metrics.mmd2_unbiased(codes, draws, widths)
            rec = aae_lib.reconstruction_nats(model.decode, model.encode, x_test_bin)
        model.train()
        print(
            f"epoch {done}: MMD^2 {mmd2:.5f} = {mmd2 / q95:.2f} x q95; rec {rec:.1f} nats/test digit; "
            f"D(prior) {history.last('d_prior'):.3f}, D(code) {history.last('d_code'):.3f}; "
            f"code mean {codes.mean(0).tolist()}, sd {codes.std(0).tolist()} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Lecture 11's comparison outside the notebook, at sizes of your choice: an LSTM language model and
sentence VAEs (plain, and with KL annealing and word dropout) on the Austen sentences, each trained
through ``utils.train.fit`` with the references in ``utils.models.sequence``, scored on the held-out
sentences of *Persuasion* (KL per sentence, and per-word perplexity with the VAE's log p(x) estimated
by importance sampling). The data pipeline is the lecture's: sentences of 3 to ``--max-len`` tokens,
the vocabulary of the training novels, ``--train`` random training sentences, the first ``--test``
held-out ones. Not part of ``make test``; run by hand, e.g. on a CPU

    DIGM_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python tests/benchmarks/bench_sentence_vae.py \\
        --max-len 20 --vocab 2000 --hidden 128 --epochs 6 --word-dropout 0.4 --warmup 0.7
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from utils import metrics, runtime
from utils.data import WordVocab, load_text, split_sentences, tokenize
from utils.models import LSTMLanguageModel, SentenceVAE, gaussian_kl, num_predicted, perplexity
from utils.train import fit


def sentences(max_len: int, vocab_size: int, n_train: int | None, n_test: int | None, device):
    text = load_text()
    start = text.index("Persuasion\n\n\nby")
    keep = lambda tokens: 3 <= len(tokens) <= max_len  # noqa: E731
    train = [t for t in map(tokenize, split_sentences(text[:start])) if keep(t)]
    test = [t for t in map(tokenize, split_sentences(text[start:])) if keep(t)][:n_test]
    vocab = WordVocab.from_sentences(train, max_size=vocab_size)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n_train]
    x_train = vocab.pad_batch([train[i] for i in order], max_len).to(device)
    return vocab, x_train, vocab.pad_batch(test, max_len).to(device)


@torch.no_grad()
def scores(model, x_test: torch.Tensor, k: int, batch: int = 100) -> dict[str, float]:
    tokens = int(num_predicted(x_test).sum())
    if isinstance(model, LSTMLanguageModel):
        nll = -sum(
            model.log_prob(x_test[i : i + batch]).double().sum().item() for i in range(0, len(x_test), batch)
        )
        return {"ppl": perplexity(nll, tokens)}
    gen = torch.Generator(device=x_test.device).manual_seed(0)
    fn = lambda xb, n: model.log_weights(xb, n, generator=gen)  # noqa: E731
    log_px = torch.cat([metrics.importance_sampled_log_likelihood(fn, x_test[i : i + batch], k=k, chunk=10)
                        for i in range(0, len(x_test), batch)])  # fmt: skip
    kl = torch.cat([gaussian_kl(*model.encode(x_test[i : i + batch])) for i in range(0, len(x_test), batch)])
    return {"ppl": perplexity(-log_px.double().sum(), tokens), "kl": kl.mean().item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--train", type=int, default=None, help="training sentences (default: all)")
    p.add_argument("--test", type=int, default=500, help="held-out sentences (0: all)")
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--latent", type=int, default=8)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--word-dropout", type=float, default=0.25)
    p.add_argument("--warmup", type=float, default=0.6, help="KL warm-up as a share of all training steps")
    p.add_argument("--k", type=int, default=10, help="importance samples per held-out sentence")
    p.add_argument("--only-cured", action="store_true", help="skip the language model and the plain VAE")
    p.add_argument("--only-lm", action="store_true", help="train the language model alone")
    p.add_argument(
        "--curve",
        action="store_true",
        help="print the held-out per-word perplexity after each epoch "
        "(exp of the mean of the batches' nats per word; the VAEs' at one z sample, an upper bound)",
    )
    args = p.parse_args()
    device = runtime.get_device()
    runtime.seed_everything(0)
    vocab, x_train, x_test = sentences(args.max_len, args.vocab, args.train, args.test or None, device)
    steps = args.epochs * math.ceil(len(x_train) / 64)
    print(f"{runtime.describe(device)}; {len(vocab)} words, {len(x_train)} training and {len(x_test)} held-out "
          f"sentences; {vars(args)}")  # fmt: skip
    size = {"embed": args.embed, "hidden": args.hidden, "dropout": args.dropout}
    models = {} if args.only_cured else {"lm": LSTMLanguageModel(len(vocab), **size)}
    if not (args.only_cured or args.only_lm):
        models["vae_plain"] = SentenceVAE(len(vocab), latent=args.latent, **size)
    if not args.only_lm:
        models["vae_cured"] = SentenceVAE(len(vocab), latent=args.latent, word_dropout=args.word_dropout,
                                          kl_warmup=int(args.warmup * steps), **size)  # fmt: skip
    for name, model in models.items():
        start = time.process_time()
        history = fit(
            model.to(device),
            x_train,
            epochs=args.epochs,
            batch_size=64,
            lr=args.lr,
            grad_clip=5.0,
            speed="eager",
            progress=False,
            live_plot=False,
            eval_data=x_test if args.curve else None,
        )
        model.eval()
        if args.curve:
            key = "eval_nats_per_word" if "eval_nats_per_word" in history else "eval_rec"
            per_word = history[key] if key == "eval_nats_per_word" else [
                (r + kl) * len(x_test) / int(num_predicted(x_test).sum())
                for r, kl in zip(history["eval_rec"], history["eval_kl"])]  # fmt: skip
            print(f"{name} held-out perplexity by epoch: " + " ".join(f"{math.exp(v):.1f}" for v in per_word))
        result = scores(model, x_test, args.k)
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items())
              + f" ({time.process_time() - start:.0f} CPU s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

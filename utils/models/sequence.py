"""Sentence models (lecture 11): a word-level LSTM language model, the sentence VAE of Bowman et al.
(2016) and the skip-thought model of Kiros et al. (2015).

A batch of sentences is ``ids [B, T + 1]`` laid out as ``utils.data.WordVocab.pad_batch`` makes it:
``<bos> w_1 .. w_n <eos> <pad> ..``. A decoder reads ``ids[:, :-1]`` and predicts ``ids[:, 1:]``
(teacher forcing); targets equal to ``pad_id`` are not scored, so a sentence's log-probability
covers its n words and its ``<eos>``: ``n + 1`` predicted tokens.

* ``sentence_log_prob(logits, targets, pad_id)``: sum_t log p(target_t), pad skipped: ``[B]``.
* ``last_state(outputs, ids, pad_id)``: each sentence's RNN output at its last real token.
* ``word_dropout(inputs, rate, unk_id, pad_id)``: decoder inputs replaced by ``<unk>`` at random
  (never the first token, never padding), Bowman et al.'s cure for an encoder that is ignored.
* ``kl_weight(step, warmup, kind)``: the KL annealing schedule, 0 -> 1 over ``warmup`` steps.
* ``LSTMLanguageModel``: p(w_t | w_<t) by an LSTM; ``log_prob`` exact per sentence.
* ``SentenceVAE``: LSTM encoder -> q(z | x) Gaussian; z -> the decoder LSTM's initial state;
  ``loss`` = reconstruction + beta * KL per sentence with annealing and word dropout;
  ``log_weights(ids, k)`` for importance sampling (``utils.metrics.importance_sampled_log_likelihood``).
* ``SkipThought``: a GRU encoder whose final state (the *thought vector*) conditions two GRU
  decoders, of the previous and of the next sentence, at every step.
* ``generate(step, state, n, ...)``: greedy or sampled decoding, one token at a time.

Shapes: ``B`` sentences, ``T`` predicted positions, ``V`` words, ``H`` hidden units, ``D`` latent dims.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from utils.models.densities import gaussian_kl, log_normal, log_standard_normal, reparameterize

ANNEALING = ("linear", "logistic")


def _ids(batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def sentence_log_prob(logits: torch.Tensor, targets: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """sum_t log softmax(logits_t)[target_t] over the positions whose target is not ``pad_id``.

    logits [B, T, V], targets [B, T] -> [B] (nats, <= 0)."""
    nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [B, T]
    return -(nll * (targets != pad_id)).sum(-1)


def num_predicted(ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Tokens each sentence ``ids [B, T + 1]`` predicts (its words and ``<eos>``): ``[B]``."""
    return (ids[:, 1:] != pad_id).sum(-1)


def last_state(outputs: torch.Tensor, ids: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """The RNN output at each sentence's last non-pad position: outputs [B, T, H], ids [B, T] -> [B, H].

    With right padding, the output there has read the whole sentence and no padding; ``outputs[:, -1]``
    would have read the padding too."""
    last = (ids != pad_id).sum(-1).clamp(min=1) - 1  # [B]
    return outputs[torch.arange(len(ids), device=ids.device), last]


def word_dropout(
    inputs: torch.Tensor, rate: float, unk_id: int, pad_id: int = 0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of the decoder inputs [B, T] with each token replaced by ``unk_id`` with probability
    ``rate``, except the first (``<bos>``) and padding (Bowman et al. 2016)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"word dropout rate={rate} must be a probability in [0, 1].")
    if rate == 0.0:
        return inputs
    u = torch.rand(inputs.shape, device=inputs.device, generator=generator)
    drop = (u < rate) & (inputs != pad_id)
    drop[:, 0] = False
    return inputs.masked_fill(drop, unk_id)


def kl_weight(step: torch.Tensor | float, warmup: int, kind: str = "logistic") -> torch.Tensor | float:
    """The KL weight beta at training step ``step``: 0 -> 1 over ``warmup`` steps (1 from the start
    when ``warmup`` is 0). ``"linear"``: min(1, step / warmup); ``"logistic"`` (Bowman et al.'s
    shape): sigmoid(10 (step / warmup - 1/2)), about 0.007 at 0, 1/2 at warmup / 2, 0.993 at warmup.
    A tensor step gives a tensor (no host sync: usable inside ``loss``)."""
    if kind not in ANNEALING:
        raise ValueError(f"kind={kind!r} is unknown; use one of {ANNEALING}.")
    if warmup < 0:
        raise ValueError(f"warmup={warmup} must be a number of steps >= 0.")
    is_tensor = isinstance(step, torch.Tensor)
    s = step.to(torch.get_default_dtype()) if is_tensor else torch.tensor(float(step))
    if warmup == 0:
        beta = torch.ones_like(s)
    elif kind == "linear":
        beta = (s / warmup).clamp(max=1.0)
    else:
        beta = torch.sigmoid(10.0 * (s / warmup - 0.5))
    return beta if is_tensor else float(beta)


@torch.no_grad()
def generate(
    step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
    state: Any,
    n: int,
    max_len: int,
    bos_id: int = 1,
    eos_id: int = 2,
    pad_id: int = 0,
    greedy: bool = True,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Decode n sentences: ``step(ids [n, 1], state) -> (logits [n, 1, V], state)`` from ``<bos>``,
    each next token the most likely (``greedy``) or drawn from softmax(logits / temperature).
    Returns ``[n, max_len + 1]``: ``<bos>``, the tokens, ``<eos>`` where it came, then ``pad_id``."""
    if temperature <= 0:
        raise ValueError(
            f"temperature={temperature} must be positive (greedy=True for the most likely word)."
        )
    out = torch.full((n, max_len + 1), pad_id, dtype=torch.int64, device=device)
    out[:, 0] = bos_id
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(1, max_len + 1):
        logits, state = step(out[:, t - 1 : t], state)
        logits = logits[:, -1].double()  # [n, V]
        nxt = logits.argmax(-1) if greedy else torch.multinomial(
            torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]  # fmt: skip
        out[:, t] = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    return out


class LSTMLanguageModel(nn.Module):
    """p(w_1..w_n, <eos>) = prod_t p(w_t | w_<t): embedding -> LSTM -> linear, over sentences.

    ``loss(ids [B, T + 1])``: mean -log p per sentence (nats), and ``nats_per_word`` (per predicted
    token) for the log."""

    def __init__(
        self, vocab_size: int, embed: int = 128, hidden: int = 256, dropout: float = 0.0, pad_id: int = 0
    ) -> None:
        super().__init__()
        if vocab_size < 5:
            raise ValueError(f"vocab_size={vocab_size}: a word model needs the 4 special tokens and a word.")
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.embed = nn.Embedding(vocab_size, embed)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, inputs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """inputs [B, T] -> (logits [B, T, V] of the next word at each position, LSTM state)."""
        h, state = self.rnn(self.drop(self.embed(inputs)), state)
        return self.out(self.drop(h)), state

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """log p(sentence) in nats, exact: ids [B, T + 1] -> [B]."""
        logits, _ = self(ids[:, :-1])
        return sentence_log_prob(logits, ids[:, 1:], self.pad_id)

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = _ids(batch)
        nll = -self.log_prob(ids)  # [B]
        return {
            "loss": nll.mean(),
            "nats_per_word": nll.sum().detach() / num_predicted(ids, self.pad_id).sum(),
        }

    @torch.no_grad()
    def sample(self, n: int, max_len: int = 30, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sentences [n, max_len + 1] drawn word by word (bos id 1, eos 2, as WordVocab)."""
        return generate(self, None, n, max_len, pad_id=self.pad_id, greedy=False, generator=generator,
                        device=self.out.weight.device)  # fmt: skip


class SentenceVAE(nn.Module):
    """The sentence VAE of Bowman et al. (2016): q(z | x) from an LSTM's last state, p(x | z) an LSTM
    language model whose initial state (h_0, c_0) is tanh of a linear map of z, and p(z) = N(0, I).

    ``loss``: mean over the batch of rec + beta * KL per sentence, beta = ``kl_weight(step, kl_warmup,
    anneal)`` with ``step`` a buffer counting training steps (so a resumed checkpoint continues the
    schedule); decoder inputs get ``word_dropout`` at rate ``word_dropout`` while training, and
    ``dropout`` acts on the decoder's embeddings and outputs as in ``LSTMLanguageModel``. Logged:
    ``rec``, ``kl`` (nats per sentence), ``beta`` and ``elbo`` (with beta = 1)."""

    def __init__(
        self,
        vocab_size: int,
        embed: int = 128,
        hidden: int = 256,
        latent: int = 16,
        word_dropout: float = 0.0,
        kl_warmup: int = 0,
        anneal: str = "logistic",
        dropout: float = 0.0,
        pad_id: int = 0,
        unk_id: int = 3,
    ) -> None:
        super().__init__()
        kl_weight(0, kl_warmup, anneal)  # rejects a bad schedule now, not at the first step
        if not 0.0 <= word_dropout <= 1.0:
            raise ValueError(f"word_dropout={word_dropout} must be a probability in [0, 1].")
        self.vocab_size, self.latent, self.pad_id, self.unk_id = vocab_size, latent, pad_id, unk_id
        self.word_dropout, self.kl_warmup, self.anneal = word_dropout, kl_warmup, anneal
        self.embed = nn.Embedding(vocab_size, embed)
        self.drop = nn.Dropout(dropout)  # on the decoder's input embeddings and outputs, as in the LM
        self.encoder = nn.LSTM(embed, hidden, batch_first=True)
        self.to_q = nn.Linear(hidden, 2 * latent)  # -> mu, logvar
        self.to_state = nn.Linear(latent, 2 * hidden)  # z -> the decoder's (h_0, c_0)
        self.decoder = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x): ids [B, T + 1] -> mu, logvar [B, D], reading w_1..w_n <eos> (not <bos>)."""
        words = ids[:, 1:]
        h, _ = self.encoder(self.embed(words))  # [B, T, H]
        return self.to_q(last_state(h, words, self.pad_id)).chunk(2, -1)

    def initial_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [N, D] -> the decoder LSTM's (h_0, c_0), each [1, N, H]."""
        h0, c0 = torch.tanh(self.to_state(z)).chunk(2, -1)
        return h0[None].contiguous(), c0[None].contiguous()

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits [N, T, V] of p(x | z) for z [N, D] and decoder inputs [N, T]."""
        h, _ = self.decoder(self.drop(self.embed(inputs)), self.initial_state(z))
        return self.out(self.drop(h))

    def log_likelihood(self, z: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """log p(x | z) per sentence: z [k, B, D] or [B, D], ids [B, T + 1] -> [k, B] or [B]."""
        lead = z.shape[:-1]
        zs = z.reshape(-1, self.latent)
        reps = zs.shape[0] // ids.shape[0]
        rep_ids = ids.repeat(reps, 1)  # sample-major, as z.reshape lays out [k, B]
        logits = self.decode_logits(zs, rep_ids[:, :-1])
        return sentence_log_prob(logits, rep_ids[:, 1:], self.pad_id).reshape(lead)

    def beta(self) -> torch.Tensor:
        return kl_weight(self.step, self.kl_warmup, self.anneal)

    def loss(self, batch: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        ids = _ids(batch)
        mu, logvar = self.encode(ids)
        z = reparameterize(mu, logvar)
        inputs = ids[:, :-1]
        if self.training:
            inputs = word_dropout(inputs, self.word_dropout, self.unk_id, self.pad_id)
        rec = -sentence_log_prob(self.decode_logits(z, inputs), ids[:, 1:], self.pad_id)  # [B]
        kl = gaussian_kl(mu, logvar)  # [B]
        beta = self.beta()
        if self.training:
            self.step += 1
        return {"loss": (rec + beta * kl).mean(), "rec": rec.mean().detach(), "kl": kl.mean().detach(),
                "beta": beta.detach(), "elbo": -(rec + kl).mean().detach()}  # fmt: skip

    @torch.no_grad()
    def log_weights(
        self, ids: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """log p(x, z_i) - log q(z_i | x) for k samples z_i ~ q(z | x), no word dropout: [k, B]."""
        mu, logvar = self.encode(ids)
        z = reparameterize(mu, logvar, generator, k=k)  # [k, B, D]
        return self.log_likelihood(z, ids) + log_standard_normal(z) - log_normal(z, mu, logvar)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, max_len: int = 30, **kwargs: Any) -> torch.Tensor:
        """Sentences [N, max_len + 1] decoded from codes z [N, D] (``greedy``, ``temperature``,
        ``generator`` as in :func:`generate`)."""
        return generate(self._step, self.initial_state(z), len(z), max_len, pad_id=self.pad_id,
                        device=z.device, **kwargs)  # fmt: skip

    def _step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        h, state = self.decoder(self.embed(ids), state)
        return self.out(h), state

    @torch.no_grad()
    def sample(self, n: int, max_len: int = 30, generator: torch.Generator | None = None) -> torch.Tensor:
        """n sentences from z ~ N(0, I), each decoded by sampling."""
        z = torch.randn(n, self.latent, device=self.out.weight.device, generator=generator)
        return self.generate(z, max_len, greedy=False, generator=generator)


class SkipThought(nn.Module):
    """Skip-thought vectors (Kiros et al. 2015): a GRU reads sentence s_i; its last state h_i (the
    thought vector) conditions two GRU decoders, of s_(i-1) and of s_(i+1), by being concatenated to
    every input word. Embedding and output layer are shared by all three.

    ``loss((prev, cur, next))``, each ids [B, T + 1]: mean over the batch of
    -log p(prev | h) - log p(next | h), nats per sentence pair; ``encode(ids) -> [B, H]``."""

    def __init__(self, vocab_size: int, embed: int = 128, hidden: int = 256, pad_id: int = 0) -> None:
        super().__init__()
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.embed = nn.Embedding(vocab_size, embed)
        self.encoder = nn.GRU(embed, hidden, batch_first=True)
        self.decoders = nn.ModuleDict({"prev": nn.GRU(embed + hidden, hidden, batch_first=True),
                                       "next": nn.GRU(embed + hidden, hidden, batch_first=True)})  # fmt: skip
        self.out = nn.Linear(hidden, vocab_size)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The thought vectors [B, H] of sentences ids [B, T + 1] (read from w_1, not <bos>)."""
        words = ids[:, 1:]
        h, _ = self.encoder(self.embed(words))
        return last_state(h, words, self.pad_id)

    def decode_logits(self, which: str, code: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits [B, T, V] of decoder ``which`` ("prev" or "next") given codes [B, H] and inputs [B, T]."""
        emb = self.embed(inputs)
        x = torch.cat([emb, code[:, None].expand(-1, emb.shape[1], -1)], -1)
        h, _ = self.decoders[which](x)
        return self.out(h)

    def loss(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        if not isinstance(batch, (tuple, list)) or len(batch) != 3:
            raise ValueError(
                "SkipThought.loss needs a batch (prev, cur, next) of three id tensors [B, T + 1]."
            )
        prev, cur, nxt = batch
        code = self.encode(cur)
        nll = {w: -sentence_log_prob(self.decode_logits(w, code, s[:, :-1]), s[:, 1:], self.pad_id)
               for w, s in (("prev", prev), ("next", nxt))}  # fmt: skip
        total = nll["prev"] + nll["next"]
        return {
            "loss": total.mean(),
            "nll_prev": nll["prev"].mean().detach(),
            "nll_next": nll["next"].mean().detach(),
        }


def cosine_neighbours(
    query: torch.Tensor, bank: torch.Tensor, k: int = 5
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k rows of ``bank [N, H]`` most cosine-similar to each ``query [Q, H]``: (similarities, indices) [Q, k]."""
    if k < 1 or k > len(bank):
        raise ValueError(f"k={k} neighbours asked from a bank of {len(bank)}; use 1 <= k <= {len(bank)}.")
    sims = F.normalize(query, dim=-1) @ F.normalize(bank, dim=-1).T  # [Q, N]
    return sims.topk(k, dim=-1)


def perplexity(total_nats: float | torch.Tensor, n_tokens: int | torch.Tensor) -> float:
    """exp(total nats / predicted tokens): the per-word perplexity of a set of sentences."""
    if int(n_tokens) < 1:
        raise ValueError("perplexity needs at least one predicted token.")
    return math.exp(float(total_nats) / int(n_tokens))

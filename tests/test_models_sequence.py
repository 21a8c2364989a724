"""Properties of the sentence models in utils.models.sequence (lecture 11)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from utils.metrics import importance_sampled_log_likelihood
from utils.models import (
    LSTMLanguageModel,
    SentenceVAE,
    SkipThought,
    cosine_neighbours,
    gaussian_kl,
    generate,
    iwae_bound,
    kl_weight,
    last_state,
    num_predicted,
    perplexity,
    sentence_log_prob,
    word_dropout,
)

V = 12


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _batch() -> torch.Tensor:
    """Three sentences <bos> w.. <eos> <pad>.. of 3, 1 and 4 words, [3, 6]."""
    return torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 2, 0, 0, 0], [1, 4, 4, 9, 10, 2]])


def test_sentence_log_prob_skips_padding_and_sums_the_rest():
    logits = torch.randn(3, 5, V)
    ids = _batch()
    targets = ids[:, 1:]
    per_token = -F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    expected = torch.stack([per_token[0, :4].sum(), per_token[1, :2].sum(), per_token[2].sum()])
    assert torch.allclose(sentence_log_prob(logits, targets), expected), "pad targets must not be scored"
    assert num_predicted(ids).tolist() == [4, 2, 5], "a sentence predicts its words and <eos>"


def test_last_state_is_the_last_real_token():
    outputs = torch.arange(3 * 5, dtype=torch.float).reshape(3, 5, 1)
    words = _batch()[:, 1:]
    assert last_state(outputs, words)[:, 0].tolist() == [3.0, 6.0, 14.0], (
        "the output at <eos>, not at the padding"
    )


def test_word_dropout_keeps_bos_and_padding_and_has_the_rate():
    inputs = torch.tensor([[1] + [5] * 399 + [0] * 100] * 50)
    out = word_dropout(inputs, 0.3, unk_id=3, generator=torch.Generator().manual_seed(0))
    assert (out[:, 0] == 1).all() and (out[:, 400:] == 0).all(), "<bos> and <pad> are never dropped"
    rate = (out[:, 1:400] == 3).float().mean().item()
    assert abs(rate - 0.3) < 0.01, f"the share of <unk> should be the rate 0.3, got {rate:.3f}"
    assert word_dropout(inputs, 0.0, unk_id=3) is inputs
    with pytest.raises(ValueError, match="probability"):
        word_dropout(inputs, 1.5, unk_id=3)


@pytest.mark.parametrize("kind", ["linear", "logistic"])
def test_kl_weight_rises_from_about_0_to_1(kind):
    betas = [kl_weight(s, 100, kind) for s in (0, 50, 100, 1000)]
    assert betas[0] < 0.01 and betas[2] > 0.99 and betas[3] == pytest.approx(1.0, abs=1e-4)
    assert betas[1] == pytest.approx(0.5), "half way up at warmup / 2"
    assert all(a <= b for a, b in zip(betas, betas[1:])), "the schedule never decreases"
    assert kl_weight(torch.tensor(50), 100, kind).item() == pytest.approx(0.5), "a tensor step works too"
    assert kl_weight(0, 0, kind) == 1.0, "warmup 0: no annealing"


def test_kl_weight_refuses_unknown_schedules():
    with pytest.raises(ValueError, match="kind"):
        kl_weight(0, 10, "cosine")
    with pytest.raises(ValueError, match="warmup"):
        SentenceVAE(V, kl_warmup=-1)


def test_language_model_log_prob_is_the_chain_rule():
    lm = LSTMLanguageModel(V, embed=8, hidden=16).eval()
    ids = _batch()[:1]
    logits, _ = lm(ids[:, :-1])
    logp = torch.log_softmax(logits, -1)[0]
    chain = sum(logp[t, ids[0, t + 1]] for t in range(4))
    assert torch.allclose(lm.log_prob(ids)[0], chain), (
        "log p(sentence) = sum of log p(w_t | w_<t) up to <eos>"
    )
    out = lm.loss(_batch())
    assert torch.allclose(out["loss"], -lm.log_prob(_batch()).mean())


def test_language_model_padding_does_not_change_log_prob():
    lm = LSTMLanguageModel(V, embed=8, hidden=16).eval()
    ids = _batch()
    padded = torch.cat([ids, torch.zeros(3, 4, dtype=torch.int64)], 1)
    assert torch.allclose(lm.log_prob(ids), lm.log_prob(padded), atol=1e-6)


def _vae(**kwargs) -> SentenceVAE:
    return SentenceVAE(V, embed=8, hidden=16, latent=3, **kwargs)


def test_vae_encoder_ignores_padding():
    vae = _vae().eval()
    ids = _batch()
    padded = torch.cat([ids, torch.zeros(3, 4, dtype=torch.int64)], 1)
    assert torch.allclose(vae.encode(ids)[0], vae.encode(padded)[0], atol=1e-6), (
        "q(z|x) must not read padding"
    )


def test_vae_loss_is_rec_plus_beta_kl_and_counts_steps():
    vae = _vae(kl_warmup=10, anneal="linear").train()
    out = vae.loss(_batch())
    assert out["beta"].item() == 0.0 and vae.step.item() == 1, "beta at step 0 is 0; a training step counts"
    assert torch.allclose(out["loss"], out["rec"]), "with beta = 0 the loss is the reconstruction term"
    vae.step.fill_(5)
    out = vae.loss(_batch())
    assert out["beta"].item() == pytest.approx(0.5)
    vae.eval()
    vae.loss(_batch())
    assert vae.step.item() == 6, "evaluation does not advance the schedule"


def test_vae_log_weights_k1_average_is_the_elbo():
    vae = _vae().eval()
    ids = _batch()
    log_w = vae.log_weights(ids, 4000, generator=torch.Generator().manual_seed(0))  # [k, B]
    assert log_w.shape == (4000, 3)
    mu, logvar = vae.encode(ids)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(
        4000, *mu.shape, generator=torch.Generator().manual_seed(1)
    )
    elbo = (vae.log_likelihood(z, ids).mean(0) - gaussian_kl(mu, logvar)).detach()
    se = log_w.std(0) / math.sqrt(4000)
    assert ((log_w.mean(0) - elbo).abs() < 5 * se + 0.05).all(), "E_q[log w] is the ELBO (closed-form KL)"
    assert (iwae_bound(log_w) >= log_w.mean(0)).all(), "the k-sample bound is above the mean log weight"


def test_vae_importance_sampled_log_likelihood_is_at_least_the_elbo():
    vae = _vae().eval()
    ids = _batch()
    log_w = vae.log_weights(ids, 2000, generator=torch.Generator().manual_seed(3))
    estimate = importance_sampled_log_likelihood(lambda x, n: vae.log_weights(x, n), ids, k=2000, chunk=500)
    assert (estimate >= log_w.mean(0) - 0.05).all(), "log p(x) estimated with k samples is above the ELBO"


def test_vae_log_likelihood_of_k_samples_matches_one_at_a_time():
    vae = _vae().eval()
    ids = _batch()
    z = torch.randn(2, 3, 3)
    both = vae.log_likelihood(z, ids)
    assert torch.allclose(both[1], vae.log_likelihood(z[1], ids), atol=1e-5), (
        "samples must pair with their sentences"
    )


def test_vae_generate_stops_at_eos_and_greedy_is_deterministic():
    vae = _vae().eval()
    z = torch.randn(4, 3)
    a, b = vae.generate(z, max_len=7), vae.generate(z, max_len=7)
    assert torch.equal(a, b) and a.shape == (4, 8) and (a[:, 0] == 1).all()
    for row in a.tolist():
        if 2 in row:
            assert all(t == 0 for t in row[row.index(2) + 1 :]), "after <eos> only padding"
    s = vae.sample(5, max_len=6, generator=torch.Generator().manual_seed(0))
    assert s.shape == (5, 7)


def test_generate_refuses_bad_temperature():
    lm = LSTMLanguageModel(V, embed=8, hidden=16)
    with pytest.raises(ValueError, match="temperature"):
        generate(lm, None, 2, 5, greedy=False, temperature=0.0)


def test_skip_thought_loss_is_both_neighbours_nll():
    model = SkipThought(V, embed=8, hidden=16).eval()
    ids = _batch()
    prev, cur, nxt = ids, ids.flip(0), ids
    out = model.loss((prev, cur, nxt))
    code = model.encode(cur)
    lp = sentence_log_prob(model.decode_logits("prev", code, prev[:, :-1]), prev[:, 1:])
    ln = sentence_log_prob(model.decode_logits("next", code, nxt[:, :-1]), nxt[:, 1:])
    assert torch.allclose(out["loss"], -(lp + ln).mean())
    with pytest.raises(ValueError, match="prev, cur, next"):
        model.loss(ids)


def test_skip_thought_decoder_depends_on_the_code():
    model = SkipThought(V, embed=8, hidden=16).eval()
    inputs = _batch()[:, :-1]
    a = model.decode_logits("next", torch.zeros(3, 16), inputs)
    b = model.decode_logits("next", torch.ones(3, 16), inputs)
    assert not torch.allclose(a[:, 0], b[:, 0]), "the thought vector must condition the first word already"


def test_cosine_neighbours_finds_itself_first():
    bank = torch.randn(20, 5)
    sims, idx = cosine_neighbours(bank[[3, 7]] * 2.0, bank, k=3)
    assert idx[:, 0].tolist() == [3, 7] and torch.allclose(sims[:, 0], torch.ones(2)), "scale does not matter"
    with pytest.raises(ValueError, match="neighbours"):
        cosine_neighbours(bank[:1], bank, k=21)


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    assert perplexity(10 * math.log(50), 10) == pytest.approx(50.0)


def test_vae_decoder_dropout_acts_only_in_training():
    vae = _vae(dropout=0.5)
    z, inputs = torch.randn(3, 3), _batch()[:, :-1]
    vae.eval()
    assert torch.equal(vae.decode_logits(z, inputs), vae.decode_logits(z, inputs)), "no dropout in eval mode"
    vae.train()
    assert not torch.equal(vae.decode_logits(z, inputs), vae.decode_logits(z, inputs)), (
        "dropout while training"
    )

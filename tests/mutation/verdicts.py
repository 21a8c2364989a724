"""The reviewed classification of mutants that no test kills.

Keyed by (answer cell grade_id, the mutated line as the report shows it, stripped). ``equivalent``: the
change cannot alter anything a correct answer must do where the autograder runs (CPU, the inputs the
docstring promises), so no test can or should kill it; otherwise it is a real mistake that the tests
miss, and ``killer`` says which test would catch it. A survivor missing here is reported as unreviewed
and counted as not equivalent. Reviewed by hand: read the reason before trusting a number built on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    equivalent: bool
    reason: str
    killer: str = ""  # for a real mistake: the test that would kill it


_RANDN = "eps = torch.randn(n, mu.shape[-1], generator=generator, device=mu.device, dtype=mu.dtype)  # [n, D]"

# Reasons shared by several cells.
_NOISE_SIGN = Verdict(True, "eps and -eps have the same distribution, and the negated noise is used consistently "
                            "afterwards, so every estimate keeps its law; the same seed still gives the same "
                            "values. No test may fix a student's noise convention.")
_NO_DEVICE = Verdict(True, "on the CPU, where the autograder runs, torch.randn's default device is the CPU, so "
                           "nothing changes (on a GPU a CUDA generator without device= raises, and the visible "
                           "tests would fail there).")
_NO_DTYPE = Verdict(True, "float32 noise for float64 parameters: the sum with mu promotes to float64, and the "
                          "estimates keep their distribution up to float32 rounding of the noise, far below "
                          "any Monte Carlo tolerance.")
_SHAPE0 = Verdict(True, "mu is [D] by the docstring's contract, so mu.shape[0] == mu.shape[-1].")
_SUM_1D = Verdict(True, "log_sigma is [D] by the docstring's contract: summing over dim 0, -1 or all dims is the "
                        "same, and so is log_sigma.shape[0].")

_QUADRATIC = Verdict(True, "the sign of z - mu (or of L^{-1}(z - mu)) cancels in the squared distance "
                             "||L^{-1}(z - mu)||^2: the same log-density to the last bit.")
_NO_DETACH_F = Verdict(True, "the same values; without detach the estimates keep an autograd graph through f when mu "
                             "or log_sigma require gradients (memory, not correctness: nothing is differentiated).")
_SQUARE_L = Verdict(True, "L is [D, D] by the docstring's contract (square), so every one of its dimensions is D.")

_LOGVAR_BROADCAST = Verdict(True, "logvar [B, D] broadcasts against the expanded mu [k, B, D] inside reparameterize, "
                                  "and the noise takes mu's shape: the same k independent samples (and log q) as "
                                  "with both expanded.")

_SF_EXACT_TEST = (
    "a visible test with an f that records the z it is given and returns ones (baseline 0): each row "
    "must then equal the score at its own z, g_mu = (z - mu) / sigma^2 and g_log_sigma = ((z - mu) / "
    "sigma)^2 - 1 (check_close), which every correct answer meets whatever its noise convention (tried "
    "by hand: the solution, the -eps and -sigma variants above and the (z - mu) / sigma^2 form pass it, "
    "both survivors fail it by orders of magnitude). The present tests compare means within 4 standard "
    "errors, and this estimator has infinite variance, so its standard error swallows the bias."
)

SURVIVORS: dict[tuple[str, str], Verdict] = {
    # ---- a1_estimators: score function
    ("a1_sf_answer", _RANDN.replace("eps = torch", "eps = -torch")): _NOISE_SIGN,
    ("a1_sf_answer", _RANDN.replace(" device=mu.device,", "")): _NO_DEVICE,
    ("a1_sf_answer", _RANDN.replace(", dtype=mu.dtype", "")): _NO_DTYPE,
    ("a1_sf_answer", _RANDN.replace("shape[-1]", "shape[0]")): _SHAPE0,
    ("a1_sf_answer", "sigma = -log_sigma.exp()"): Verdict(
        True, "exactly the same estimates: z - mu = -sigma * eps, so weight * eps / (-sigma) is still "
              "weight * (z - mu) / sigma^2, and eps^2 - 1 does not see the sign."),
    ("a1_sf_answer", "weight = (f(z) - baseline)[:, None]  # [n, 1]: f is evaluated, not differentiated"): Verdict(
        True, "the same values; the estimates merely keep an autograd graph when mu or log_sigma require "
              "gradients (memory, not correctness)."),
    ("a1_sf_answer", "return weight * eps / sigma, weight / (eps**2 - 1)  # (z - mu) / sigma^2 = eps / sigma"): Verdict(
        False, "a wrong d/dlog sigma: weight / (eps^2 - 1) has no finite mean (a pole at |eps| = 1), so the "
               "unbiasedness tests, whose tolerance is 4 sample standard errors, cannot see it.",
        _SF_EXACT_TEST),
    ("a1_sf_answer", "return weight * eps / sigma, weight * (eps**-2 - 1)  # (z - mu) / sigma^2 = eps / sigma"): Verdict(
        False, "a wrong d/dlog sigma: E[eps^-2] is infinite, so the estimates are heavy-tailed and their "
               "sample standard error hides the bias from the unbiasedness tests.",
        _SF_EXACT_TEST),
    # ---- a1_estimators: reparameterization
    ("a1_rp_answer", _RANDN.replace("eps = torch", "eps = -torch")): _NOISE_SIGN,
    ("a1_rp_answer", _RANDN.replace(" device=mu.device,", "")): _NO_DEVICE,
    ("a1_rp_answer", _RANDN.replace(", dtype=mu.dtype", "")): _NO_DTYPE,
    ("a1_rp_answer", _RANDN.replace("shape[-1]", "shape[0]")): _SHAPE0,
    ("a1_rp_answer", "sigma = -log_sigma.detach().exp()"): Verdict(
        True, "z = mu - sigma * eps is the same law (eps is symmetric), and grad_z * (-sigma) * eps is still "
              "exactly dz/dlog_sigma times grad f for that z: a correct pathwise estimator."),
    ("a1_rp_answer", "sigma = log_sigma.exp()"): Verdict(
        True, "the same values; without detach the returned g_log_sigma carries a graph back to log_sigma "
              "when it requires gradients (memory, not correctness; log_sigma is not modified)."),
    ("a1_rp_answer", "z = (mu + sigma * eps).requires_grad_()  # [n, D], a fresh leaf per sample"): Verdict(
        True, "the same values: autograd.grad(f(z).sum(), z) gives the gradient with respect to z whether z is "
              "a leaf or, when mu requires gradients, a non-leaf that requires them."),
    # ---- a1_estimators: variances, entropy, ELBO
    ("a1_var_answer", "return (D + 2) * (D + 4), 4.0"): Verdict(
        True, "an int instead of a float of the same value: the docstring asks for floats, but every use "
              "(comparisons, the plot) treats both alike."),
    ("a1_entropy_answer", "return log_sigma.sum(0) + 0.5 * log_sigma.shape[-1] * (1 + math.log(2 * math.pi))"): _SUM_1D,
    ("a1_entropy_answer", "return log_sigma.sum() + 0.5 * log_sigma.shape[-1] * (1 + math.log(2 * math.pi))"): _SUM_1D,
    ("a1_entropy_answer", "return log_sigma.sum(-1) + 0.5 * log_sigma.shape[0] * (1 + math.log(2 * math.pi))"): _SUM_1D,
    ("a1_elbo_answer", _RANDN.replace("eps = torch", "eps = -torch")): _NOISE_SIGN,
    ("a1_elbo_answer", _RANDN.replace(" device=mu.device,", "")): _NO_DEVICE,
    ("a1_elbo_answer", _RANDN.replace(", dtype=mu.dtype", "")): _NO_DTYPE,
    ("a1_elbo_answer", _RANDN.replace("shape[-1]", "shape[0]")): _SHAPE0,
    ("a1_elbo_answer", "z = mu - log_sigma.exp() * eps  # [n, D], carries the gradient to mu and log_sigma"): Verdict(
        True, "mu - sigma * eps has the same law as mu + sigma * eps (eps is symmetric), and the estimate and "
              "both its gradients are those of the reparameterization with -eps: unbiased for the same ELBO."),
    # ---- a1_estimators (redesigned): full-covariance log-density, per-entry optimal baselines, full-covariance ELBO
    ("a1_log_prob_answer", "diff = -(z - mu).unsqueeze(-1)  # [..., D, 1]: solve_triangular solves for one column per right-hand side"): _QUADRATIC,
    ("a1_log_prob_answer", "white = -torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)  # [..., D]: L^{-1} (z - mu)"): _QUADRATIC,
    ("a1_sf_answer", "fz = f(mu + sigma * eps)[:, None]  # [n, 1]: f is evaluated, not differentiated"): _NO_DETACH_F,
    ("a1_optimal_answer", _RANDN.replace("eps = torch", "eps = -torch")): _NOISE_SIGN,
    ("a1_optimal_answer", _RANDN.replace(" device=mu.device,", "")): _NO_DEVICE,
    ("a1_optimal_answer", _RANDN.replace(", dtype=mu.dtype", "")): _NO_DTYPE,
    ("a1_optimal_answer", _RANDN.replace("shape[-1]", "shape[0]")): _SHAPE0,
    ("a1_optimal_answer", "sigma = -log_sigma.exp()"): Verdict(
        True, "the pilot samples mu - sigma * eps have the same law, and the squared scores (eps / sigma)^2 and "
              "(eps^2 - 1)^2 do not see the sign: the same baselines."),
    ("a1_optimal_answer", "fz = f(mu + sigma * eps)[:, None]  # [n, 1]"): _NO_DETACH_F,
    ("a1_optimal_answer", "fz = f(mu - sigma * eps).detach()[:, None]  # [n, 1]"): Verdict(
        True, "mu - sigma * eps is a sample of q as well (eps is symmetric), and the squared scores are even in "
              "eps: the baselines keep their law, and a seeded call is still reproducible."),
    ("a1_optimal_answer", "s2_mu, s2_log_sigma = (eps * sigma) ** 2, (eps**2 - 1) ** 2  # squared scores, [n, D] each"): Verdict(
        True, "b_d = E[f s_d^2] / E[s_d^2] does not change when s_d is multiplied by a constant: (eps_d sigma_d)^2 "
              "is (eps_d / sigma_d)^2 times sigma_d^4, which cancels between numerator and denominator, column by "
              "column, exactly (up to rounding)."),
    ("a1_optimal_answer", "return (fz * s2_mu).mean(0) / s2_mu.mean(0), (fz * s2_log_sigma).mean(0) / s2_log_sigma.mean()"): Verdict(
        True, "E[(eps_d^2 - 1)^2] = 2 for every entry d, so the pooled mean over all entries estimates the same "
              "constant denominator as the per-entry means (with less noise): a consistent estimator of the same "
              "best baselines, within the tests' Monte Carlo tolerance on any input."),
    ("a1_entropy_answer", "return L.diagonal().log().sum() + 0.5 * L.shape[0] * (1 + math.log(2 * math.pi))"): _SQUARE_L,
    ("a1_entropy_answer", "return L.diagonal().log().sum() + 0.5 * L.shape[-2] * (1 + math.log(2 * math.pi))"): _SQUARE_L,
    ("a1_entropy_answer", "return L.diagonal().log().sum() + 0.5 * L.shape[1] * (1 + math.log(2 * math.pi))"): _SQUARE_L,
    ("a1_elbo_answer", "z = mu - eps @ L.T  # [n, D]: row s is mu + L eps_s, so the samples carry the gradient to mu and L"): Verdict(
        True, "mu - L eps has the same law as mu + L eps (eps is symmetric), and the estimate and its gradients "
              "are those of the reparameterization with -eps: unbiased for the same ELBO and its gradient."),
    # ---- a2_vae (redesigned): reparameterize returns log q, KL between two Gaussians
    ("a2_reparam_answer", "z = mu - (0.5 * logvar).exp() * eps"): Verdict(
        True, "z = mu - sigma * eps is a sample of N(mu, sigma^2) as well (eps is symmetric), and log q(z) computed "
              "from eps is still exact: (z - mu) / sigma = -eps has the same square. The same seed gives the same "
              "sample, so the tests that replay the draw see the reflected noise convention only."),
    ("a2_kl_answer", "return 0.5 * (variance_ratio + mean_term - 1 + logvar_p - logvar_q).sum(1)"): Verdict(
        True, "mu_q and logvar_q are [B, D] by the docstring's contract (the prior broadcasts to it), so dim 1 is "
              "the last dim."),
    ("a2_elbo_answer", "z, _ = reparameterize(mu.expand(k, *mu.shape), logvar, generator)  # [k, B, D]"): _LOGVAR_BROADCAST,
    ("a2_logw_answer", "z, log_q = reparameterize(mu.expand(k, *mu.shape), logvar, generator)  # [k, B, D], [k, B]"): _LOGVAR_BROADCAST,
    # ---- a2_vae
    ("a2_reparam_answer", "eps = -torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)"): Verdict(
        True, "eps and -eps have the same law; z = mu - sigma * eps is still a sample of N(mu, sigma^2) with "
              "dz/dmu = 1 and dz/dlogvar = (z - mu) / 2, and the same seed gives the same sample."),
    ("a2_reparam_answer", "eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)"): _NO_DEVICE,
    ("a2_reparam_answer", "eps = torch.randn(mu.shape, generator=generator, device=mu.device)"): _NO_DTYPE,
    ("a2_reparam_answer", "return mu - (0.5 * logvar).exp() * eps"): Verdict(
        True, "the same law (eps is symmetric) and the same derivatives in terms of z: dz/dmu = 1, dz/dlogvar = "
              "(z - mu) / 2. A correct reparameterization."),
    ("a2_kl_answer", "return 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(1)"): Verdict(
        True, "mu and logvar are [B, D] by the docstring's contract, so dim 1 is the last dim."),
    ("a2_logw_answer", "z = reparameterize(mu.expand(k, *mu.shape), logvar, generator)  # [k, B, D]"): Verdict(
        True, "logvar [B, D] broadcasts against the expanded mu [k, B, D] inside reparameterize, and the noise "
              "takes mu's shape: the same k independent samples as with both expanded."),
    ("a2_logw_answer", "z = reparameterize(mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape))  # [k, B, D]"): Verdict(
        False, "the samples come from the global random stream instead of the generator the docstring says to "
               "pass: the weights are right in law, but a seeded call is not reproducible.",
        "a test that two calls with generators of the same seed give the same log weights (as a1's hidden "
        "tests do for the estimators); a visible one would tell students why."),
    ("a2_isll_answer", "torch.logsumexp(log_weights(x, encoder, decoder, min(chunk, k - start)), dim=0)  # [B]"): Verdict(
        False, "the chunks are drawn from the global random stream, not from the generator the docstring says to "
               "pass on: the estimate is right in law but a seeded call is not reproducible.",
        "a test that two calls with generators of the same seed give the same estimate (the chunk stand-ins "
        "could also record the generator they receive)."),
    # ---- a3_flows_ar
    ("a3_coupling_forward_answer", "log_det = ((1 - mask) * log_s).sum(1)  # the Jacobian is triangular up to a permutation"): Verdict(
        True, "x is [B, D] by the docstring's contract (and net returns [B, D]), so dim 1 is the last dim."),
    ("a3_coupling_inverse_answer", "return x, -((1 - mask) * log_s).sum(1)"): Verdict(
        True, "y is [B, D] by the docstring's contract, so dim 1 is the last dim."),
    ("a3_sample_answer", "h = -torch.randn(n, dim, generator=generator, device=device)"): Verdict(
        True, "z and -z have the same law N(0, I), and log N(z) and every layer's forward are evaluated at the z "
              "actually used: the samples keep their law, each log_p is still the exact log-density of its x, and "
              "the same seed still gives the same samples."),
    ("a3_sample_answer", "h = torch.randn(n, dim, generator=generator)"): _NO_DEVICE,
    ("a3_maf_forward_answer", "x = -torch.zeros_like(u)"): Verdict(
        True, "-0.0 == 0.0: the starting point is the same zeros (the fixed-point passes overwrite it anyway)."),
    ("a3_ancestral_answer", "log_p = -torch.zeros(n, device=ordering.device)"): Verdict(
        True, "-0.0 == 0.0: the running sum starts at the same zero."),
    # ---- a5_discrete
    ("a5_reinforce_answer", "n = z.shape[-1]"): Verdict(
        True, "z is [n] by the docstring's contract, so shape[-1] == shape[0]."),
    ("a5_reinforce_answer", "log_q = torch.log_softmax(logits, dim=0)[z]  # [n] log q(z_i), normalised"): Verdict(
        True, "logits are [K] by the docstring's contract, so dim 0 is the last dim."),
    ("a5_reinforce_answer", "log_q = logits[z]  # [n] log q(z_i), normalised"): Verdict(
        True, "with the leave-one-out baseline the learning signals sum to zero (sum_i f_i - sum_i (S - f_i) / (n - 1) "
              "= 0), so the normaliser's gradient, -softmax(logits) times the mean signal, vanishes: the unnormalised "
              "score gives the same gradient (and the same value, since its term is zero in value). A tested "
              "property could not tell them apart; with any other baseline it would be a mistake."),
    ("a5_variance_answer", "return draws.mean(0), draws.var(0, unbiased=True, keepdim=True).sum()"): Verdict(
        True, "keepdim only adds a dimension of size 1 that the following .sum() removes: the same 0-dim total."),
    ("a5_st_answer", "hard = F.one_hot(soft.argmax(-1), logits.shape[-1])"): Verdict(
        True, "the int64 one-hot is promoted to soft's float dtype when added to (soft - soft.detach()): the same "
              "values, dtype and gradient."),
    ("a5_reinforce_answer", "signal = f_values - baseline"): Verdict(
        True, "f_values are constants by the docstring's contract (no gradient), and so is the baseline built from "
              "them: the detach changes nothing."),
    ("a5_variance_answer", "draws = torch.stack([estimator() for _ in range(n_repeats)])  # [R, D]"): Verdict(
        True, "the values are the same; the docstring asks for no detached output, and estimators that return "
              "gradients (autograd.grad without create_graph) carry no graph anyway."),
    ("a5_variance_answer", "return draws.mean(0), draws.var(0).sum()"): Verdict(
        True, "torch's var is unbiased (divides by R - 1) by default: the same total."),
}

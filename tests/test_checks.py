"""utils.checks: every check passes on a right answer and fails on a wrong one with a useful hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utils import checks
from utils.checks import CheckError


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(8, 3, generator=torch.Generator().manual_seed(0))


def test_check_error_is_an_assertion_error():
    assert issubclass(CheckError, AssertionError), "pytest and nbgrader count AssertionErrors as failed tests"


# --- check_close -----------------------------------------------------------------------------


def test_check_close_passes_and_prints_one_line(x, capsys):
    assert checks.check_close(x, x.clone() + 1e-9, name="elbo") is None
    assert capsys.readouterr().out.startswith("✓ elbo ok"), "a passing check should print '✓ <name> ok'"


def test_check_close_quiet_prints_nothing(x, capsys):
    checks.check_close(x, x, quiet=True)
    assert capsys.readouterr().out == ""


def test_check_close_message_names_value_expected_got_and_hint(x):
    wrong = x.clone()
    wrong[2, 1] += 0.5
    with pytest.raises(CheckError) as info:
        checks.check_close(wrong, x, name="log p(x)", hint="did you add the log-determinant?")
    message = str(info.value)
    assert message.startswith("log p(x): expected"), message
    for part in (
        "got",
        "max abs diff 0.5",
        "index (2, 1)",
        "Likely mistake: did you add the log-determinant?",
    ):
        assert part in message, f"missing {part!r} in: {message}"


def test_check_close_guesses_a_factor_of_two(x):
    with pytest.raises(CheckError, match="2 x expected"):
        checks.check_close(2 * x, x, name="kl")


def test_check_close_guesses_a_flipped_sign(x):
    with pytest.raises(CheckError, match="flipped sign"):
        checks.check_close(-x, x, name="loss")


def test_check_close_guesses_a_missing_gaussian_constant(x):
    with pytest.raises(CheckError, match=r"3 x 0.5\*log\(2\*pi\)"):
        checks.check_close(x - 3 * 0.5 * math.log(2 * math.pi), x, name="log_normal")


def test_check_close_names_a_missing_log_k_as_an_offset_not_a_factor():
    bound = -1500.0 + torch.randn(4, 6, generator=torch.Generator().manual_seed(0))  # IWAE bounds, in nats
    with pytest.raises(CheckError, match=r"expected \+ log 5: a log-mean over 5 terms computed as a log-sum") as info:
        checks.check_close(bound + math.log(5), bound, name="iwae_bound")
    assert "factor" not in str(info.value), f"an added log 5 is not a wrong factor: {info.value}"


def test_check_close_still_names_a_factor_when_the_offset_is_not_constant(x):
    with pytest.raises(CheckError, match="3 x expected"):
        checks.check_close(3 * x, x, name="sum where a mean belongs")


def test_check_close_names_the_known_mistake_that_the_answer_matches(x):
    recon, kl = x.sum(-1), x.pow(2).sum(-1)  # an ELBO's two terms, [8]
    mistakes = {"the KL term is missing": recon, "the KL term added, not subtracted": recon + kl}
    with pytest.raises(CheckError, match="Likely mistake: the KL term is missing$"):
        checks.check_close(recon, recon - kl, name="elbo", hint="a generic hint", mistakes=mistakes)
    with pytest.raises(CheckError, match="Likely mistake: the KL term added, not subtracted$"):
        checks.check_close(recon + kl, recon - kl, name="elbo", mistakes=mistakes)


def test_check_close_tells_a_missing_term_from_a_rewritten_one(x):
    # The same wrong number can come from a term left out or from the term written out again (here
    # with another value): only the caller's candidates tell them apart, a relation hint cannot.
    recon, kl_stand_in, kl_rewritten = x.sum(-1), x.pow(2).sum(-1), x.abs().sum(-1)
    mistakes = {"missing": recon, "rewritten": recon - kl_rewritten}
    for got, named in ((recon, "missing"), (recon - kl_rewritten, "rewritten")):
        with pytest.raises(CheckError, match=f"Likely mistake: {named}$"):
            checks.check_close(got, recon - kl_stand_in, mistakes=mistakes)


def test_check_close_names_a_mistake_that_gives_nan_or_inf():
    logits, x = torch.tensor([0.3, 2.0]), torch.tensor([1.0, 1.0])
    as_probabilities = x * logits.log()  # [log 0.3, log 2]: finite here, NaN or -inf elsewhere
    wrong = torch.tensor([math.nan, -math.inf])
    mistakes = {"finite but wrong": as_probabilities, "logits used as probabilities": wrong}
    with pytest.raises(CheckError, match="got NaN at 2 of 2 .*Likely mistake: logits used as probabilities$"):
        checks.check_close(wrong.clone(), torch.tensor([-1.0, -2.0]), mistakes=mistakes)


def test_check_close_falls_back_to_the_hint_when_no_mistake_matches(x):
    with pytest.raises(CheckError, match="Likely mistake: my hint$"):
        checks.check_close(x + 0.3 * x.pow(2), x, hint="my hint", mistakes={"a doubled term": 2 * x})
    with pytest.raises(CheckError, match="flipped sign"):
        checks.check_close(-x, x, mistakes={"a doubled term": 2 * x})


def test_check_close_ignores_the_mistakes_when_the_answer_is_right(x):
    checks.check_close(x, x, mistakes={"this very value": x}, quiet=True)


def test_check_close_names_a_mistake_of_another_shape(x):
    with pytest.raises(CheckError, match="Likely mistake: a mean over the last dimension"):
        checks.check_close(x.mean(0), x.sum(-1), mistakes={"a mean over the last dimension": x.mean(0)})


def test_check_close_shape_mismatch_suggests_the_missing_sum(x):
    with pytest.raises(CheckError, match=r"sum over the last dimension"):
        checks.check_close(x, x.sum(-1), name="log_px")


def test_check_close_reports_nan(x):
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(CheckError, match="NaN"):
        checks.check_close(bad, x)


def test_check_close_accepts_matching_infinities_and_numbers():
    checks.check_close(torch.tensor([0.0, -math.inf]), torch.tensor([0.0, -math.inf]), quiet=True)
    checks.check_close(torch.zeros(4), 0.0, quiet=True)
    checks.check_close(1.0, 1.0 + 1e-7, rtol=1e-5, quiet=True)


def test_check_close_requires_an_infinite_expected_value_exactly():
    with pytest.raises(CheckError, match="expected inf, got 5"):
        checks.check_close(torch.tensor(5.0), math.inf, rtol=0.5)


def test_check_close_names_the_kind_of_the_first_bad_entry():
    with pytest.raises(CheckError, match=r"got inf at 1 of 2 entries \(first at index \(1,\)\)"):
        checks.check_close(torch.tensor([math.nan, math.inf]), torch.tensor([math.nan, 1.0]))


def test_check_close_respects_tolerances():
    checks.check_close(torch.tensor(1.01), 1.0, rtol=0.02, quiet=True)
    with pytest.raises(CheckError, match="tolerance"):
        checks.check_close(torch.tensor(1.01), 1.0, rtol=1e-3)


# --- check_shape -----------------------------------------------------------------------------


def test_check_shape_passes_with_wildcards(x):
    checks.check_shape(x, [None, 3], name="z", quiet=True)
    checks.check_shape(x, (8, 3), quiet=True)


def test_check_shape_names_a_missing_sum(x):
    with pytest.raises(CheckError) as info:
        checks.check_shape(x, [8], name="log p(x)")
    assert "expected shape [8], got [8, 3]" in str(info.value)
    assert "forget to sum over the last dimension" in str(info.value)


def test_check_shape_names_a_transpose(x):
    with pytest.raises(CheckError, match="transpose"):
        checks.check_shape(x, [3, 8])


def test_check_shape_names_a_broadcast_square():
    with pytest.raises(CheckError, match=r"broadcasting a \[B\] tensor against a \[B, 1\]"):
        checks.check_shape(torch.zeros(5, 5), [5])


def test_check_shape_rejects_non_tensors():
    with pytest.raises(CheckError, match="got a float"):
        checks.check_shape(1.5, [1])


def test_check_shape_uses_the_given_hint(x):
    with pytest.raises(CheckError, match="Likely mistake: sum over pixels"):
        checks.check_shape(x, [8], hint="sum over pixels")


# --- finite / NaN / range / requires_grad ------------------------------------------------------


def test_check_finite():
    checks.check_finite(torch.ones(3), quiet=True)
    with pytest.raises(CheckError, match="1 inf"):
        checks.check_finite(torch.tensor([1.0, math.inf]), name="loss")


def test_check_no_nan_allows_infinity():
    checks.check_no_nan(torch.tensor([0.0, -math.inf]), quiet=True)
    with pytest.raises(CheckError, match="expected no NaN"):
        checks.check_no_nan(torch.tensor([0.0, math.nan]))


def test_check_in_range_suggests_logits():
    checks.check_in_range(torch.rand(10), 0, 1, name="probs", quiet=True)
    with pytest.raises(CheckError, match="logits"):
        checks.check_in_range(torch.tensor([-2.0, 0.5]), 0, 1, name="probs")


def test_check_requires_grad_passes_on_a_reparameterised_sample():
    mu = torch.zeros(3, requires_grad=True)
    sample = torch.distributions.Normal(mu, 1.0).rsample()
    checks.check_requires_grad(sample, name="z", quiet=True)


def test_check_requires_grad_names_detach():
    mu = torch.zeros(3, requires_grad=True)
    with pytest.raises(CheckError, match=r"\.detach\(\) or torch\.no_grad\(\)"):
        checks.check_requires_grad((mu + 1).detach(), name="z")
    with pytest.raises(CheckError, match=r"\.item\(\)"):
        checks.check_requires_grad(1.0, name="loss")


# --- check_true ------------------------------------------------------------------------------


def test_check_true_passes_and_prints_what_held(capsys):
    assert checks.check_true(3 <= 4, name="collapse", what="3 <= 4 active units") is None
    assert capsys.readouterr().out == "✓ collapse ok (3 <= 4 active units)\n"


def test_check_true_quiet_prints_nothing(capsys):
    checks.check_true(True, name="collapse", quiet=True)
    assert capsys.readouterr().out == ""


def test_check_true_failure_names_what_got_and_hint():
    with pytest.raises(CheckError) as info:
        checks.check_true(
            False, name="collapse", what="at most 30 active units", got="45", hint="beta on the KL?"
        )
    assert str(info.value) == (
        "collapse: expected at most 30 active units, got 45. Likely mistake: beta on the KL?"
    )


def test_check_true_failure_without_got_says_it_does_not_hold():
    with pytest.raises(CheckError, match=r"^decoder: expected frozen weights, but it does not hold\.$"):
        checks.check_true(False, name="decoder", what="frozen weights")


def test_check_true_needs_every_entry_of_a_boolean_tensor():
    checks.check_true(torch.tensor([True, True]), quiet=True)
    checks.check_true(np.array([True, True]), quiet=True)
    with pytest.raises(CheckError, match=r"2 of 3 entries false, first at index \(1,\)"):
        checks.check_true(torch.tensor([True, False, False]), name="steps rise")


def test_check_true_fails_on_an_empty_condition():
    with pytest.raises(CheckError, match="nothing was checked"):
        checks.check_true(torch.zeros(0, dtype=torch.bool))


@pytest.mark.parametrize("condition", [torch.tensor([0.5]), [False], "no", 1.0, None])
def test_check_true_refuses_conditions_that_are_not_booleans(condition):
    # Their truthiness would let a check pass whatever the fact: a non-empty list or string is "true".
    with pytest.raises(TypeError, match="needs a bool or a boolean tensor"):
        checks.check_true(condition)


# --- check_raises ----------------------------------------------------------------------------


def _fails_bias() -> None:
    raise CheckError("ELBO: expected mean 2, got 1 (26.7 standard errors away)")


def test_check_raises_returns_the_error_and_prints_one_line(capsys):
    err = checks.check_raises(_fails_bias, name="bias caught")
    assert isinstance(err, CheckError) and "26.7 standard errors" in str(err)
    assert capsys.readouterr().out == "✓ bias caught ok (CheckError raised, as expected)\n"


def test_check_raises_fails_when_nothing_is_raised_and_names_the_hint():
    with pytest.raises(CheckError) as info:
        checks.check_raises(lambda: 1.5, name="bias caught", hint="is the baseline independent of z_s?")
    message = str(info.value)
    assert message.startswith("bias caught: expected CheckError, but fn returned 1.5 without"), message
    assert message.endswith("Likely mistake: is the baseline independent of z_s?"), message


def test_check_raises_lets_other_errors_through():
    def broken() -> None:
        raise ValueError("a bug in the code under test")

    with pytest.raises(ValueError, match="a bug"):
        checks.check_raises(broken)


def test_check_raises_catches_the_error_type_asked_for():
    def refuses() -> None:
        raise ValueError("k must be positive")

    err = checks.check_raises(refuses, error=ValueError, quiet=True)
    assert isinstance(err, ValueError)


def test_check_raises_match_rejects_a_failure_for_another_reason():
    def shape_error() -> None:
        raise CheckError("estimator: expected shape [20], got [20, 1].")

    checks.check_raises(_fails_bias, match="standard errors away", quiet=True)
    with pytest.raises(CheckError, match="matching 'standard errors away'.*another reason"):
        checks.check_raises(shape_error, match="standard errors away")


# --- check_grad ------------------------------------------------------------------------------


class _SquareWithWrongBackward(torch.autograd.Function):
    """x**2 whose backward forgets the factor 2."""

    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return a**2

    @staticmethod
    def backward(ctx, grad_out):
        (a,) = ctx.saved_tensors
        return grad_out * a


def test_check_grad_passes_for_a_correct_function(x, capsys):
    w = torch.randn(3)
    checks.check_grad(lambda a, b: (torch.tanh(a) * b * w).sum(), x, x + 1, name="tanh grad")
    assert "✓ tanh grad ok" in capsys.readouterr().out


def test_check_grad_checks_non_scalar_outputs(x):
    checks.check_grad(lambda a: torch.logsumexp(a, dim=-1), x, quiet=True)


def test_check_grad_catches_a_wrong_backward_and_names_the_entry(x):
    with pytest.raises(CheckError) as info:
        checks.check_grad(lambda a: _SquareWithWrongBackward.apply(a).sum(), x[0])
    message = str(info.value)
    assert "finite differences" in message and "at index (" in message, message
    assert "expected / 2" in message, f"the factor-2 slip should be named: {message}"


def test_check_grad_compares_with_expected_gradients(x):
    checks.check_grad(lambda a: (a**2).sum(), x, expected_grads=2 * x, quiet=True)
    with pytest.raises(CheckError, match="expected_grads"):
        checks.check_grad(lambda a: (a**2).sum(), x, expected_grads=x)


def test_check_grad_names_a_cut_graph(x):
    with pytest.raises(CheckError, match="carries no gradient"):
        checks.check_grad(lambda a: (a.detach() ** 2).sum(), x)
    with pytest.raises(CheckError, match="graph is cut"):
        checks.check_grad(lambda a, b: (a.detach() ** 2).sum() + b.sum(), x, x)


def test_check_grad_explains_a_float32_model(x):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"model\.double\(\)"):
        checks.check_grad(lambda a: layer(a).sum(), x)
    checks.check_grad(lambda a: layer(a).pow(2).sum(), x, dtype=None, quiet=True)
    checks.check_grad(lambda a: layer.double()(a).pow(2).sum(), x, quiet=True)


def test_check_grad_accepts_a_transposed_input(x):
    weights = x.double().T  # [3, 8], not contiguous in memory
    checks.check_grad(lambda w: (w**3).sum(), weights, quiet=True)


def test_check_grad_refuses_random_functions(x):
    with pytest.raises(CheckError, match="fix its noise"):
        checks.check_grad(lambda a: (a + torch.randn_like(a)).pow(2).sum(), x)


def test_check_grad_samples_coordinates_of_large_inputs():
    big = torch.randn(50, 40)
    calls = []

    def f(a):
        calls.append(1)
        return (a**3).sum()

    checks.check_grad(f, big, max_checks=10, quiet=True)
    assert len(calls) <= 2 * 10 + 3, "only max_checks coordinates should be differenced"


# --- check_estimator -------------------------------------------------------------------------


def test_check_estimator_passes_an_unbiased_estimator(capsys):
    g = torch.Generator().manual_seed(0)
    checks.check_estimator(lambda m: torch.randn(m, generator=g) + 2.0, expected=2.0, n=20_000, name="mean")
    assert "✓ mean ok" in capsys.readouterr().out


def test_check_estimator_catches_bias_and_reports_mean_and_standard_error():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(CheckError) as info:
        checks.check_estimator(
            lambda m: torch.randn(m, generator=g) + 2.1, expected=2.0, n=20_000, name="ELBO"
        )
    message = str(info.value)
    assert message.startswith("ELBO: expected mean 2") and "standard error" in message, message
    assert "biased estimator? too few samples?" in message


def test_check_estimator_hint_replaces_the_generic_guesses():
    # A specific hint followed by "p/q inverted?" sent students after a mistake they could not have made.
    g = torch.Generator().manual_seed(0)
    with pytest.raises(CheckError) as info:
        checks.check_estimator(
            lambda m: torch.randn(m, generator=g) + 2.1,
            expected=2.0,
            n=20_000,
            name="ELBO",
            hint="a sum for a mean",
        )
    message = str(info.value)
    assert message.endswith("Likely mistake: a sum for a mean"), message
    assert "p/q" not in message and "too few samples" not in message, message


def test_check_estimator_handles_vector_estimates():
    g = torch.Generator().manual_seed(1)
    expected = torch.tensor([0.0, 1.0, -1.0])
    checks.check_estimator(lambda m: torch.randn(m, 3, generator=g) + expected, expected, quiet=True)
    with pytest.raises(CheckError, match=r"at index \(2,\)"):
        checks.check_estimator(
            lambda m: torch.randn(m, 3, generator=g) + torch.tensor([0.0, 1.0, 1.0]), expected
        )


def test_check_estimator_false_alarm_rate_does_not_grow_with_the_number_of_entries():
    # z=2 alarms about 4.6% of the time for one entry; tested entry by entry at z=2, a correct
    # 50-entry estimator would fail about 90% of checks. The level must hold for the whole check.
    g = torch.Generator().manual_seed(4)
    runs, failures = 400, 0
    for _ in range(runs):
        try:
            checks.check_estimator(lambda m: torch.randn(m, 50, generator=g), 0.0, n=400, z=2.0, quiet=True)
        except CheckError:
            failures += 1
    assert failures / runs < 0.12, (
        f"{failures}/{runs} correct 50-entry checks failed: no multiple-comparison correction?"
    )


def test_check_estimator_still_catches_one_biased_entry_among_many():
    g = torch.Generator().manual_seed(5)
    shift = torch.zeros(20)
    shift[7] = 0.08  # 8 standard errors at n = 10,000: above the corrected z of about 4.7
    with pytest.raises(CheckError, match=r"at index \(7,\).*per entry \(z=4 for all 20 entries\)"):
        checks.check_estimator(lambda m: torch.randn(m, 20, generator=g) + shift, 0.0)


def test_check_estimator_per_entry_level_stays_finite_for_a_huge_z():
    g = torch.Generator().manual_seed(6)
    with pytest.raises(CheckError, match="per entry"):  # a bias of about 100 standard errors
        checks.check_estimator(lambda m: torch.randn(m, 5, generator=g) + 1.0, 0.0, z=40.0)


def test_check_estimator_names_averaging_inside_sample_fn():
    with pytest.raises(CheckError, match="averaging inside"):
        checks.check_estimator(lambda m: torch.randn(m).mean(), expected=0.0)


def test_check_estimator_accepts_a_zero_argument_sampler():
    g = torch.Generator().manual_seed(2)
    checks.check_estimator(lambda: torch.randn((), generator=g), expected=0.0, n=400, quiet=True)


def test_check_estimator_atol_absorbs_a_known_small_bias():
    g = torch.Generator().manual_seed(3)
    sample = lambda m: torch.randn(m, generator=g) * 0.01 + 1.001  # noqa: E731
    checks.check_estimator(sample, expected=1.0, n=2000, atol=0.01, quiet=True)

"""a3_flows_ar through the real grading pipeline: nbgrader and real kernels in a temporary course.

tests/test_grading.py grades a1 and a2 in one module-wide course; its fixture is not parametrised over
assignments, so a3 gets a course of its own here, made with that module's helpers (make_submission,
cell_scores, the edits and the tampering rewrite). Submissions: the model answer, correct answers written
otherwise (each must keep every point), the untouched release, typical mistakes (each must lose exactly its
tests, with the visible one naming the mistake), honest but empty answers of the documented shapes, the same
answers after rebinding utils.checks and torch's comparisons, and a2's tamperer (everything the tests call
rebound, every function returning its first argument). Mistakes in different answer cells share a submission,
as in a4 and a5; the course is graded once (8 notebooks, a few minutes on two cores).
"""

from __future__ import annotations

import pytest
from graded_course import GradedAssignmentTests, combined_mistakes, standard_submissions
from test_grading import (
    _replace,
    fast_kernels,  # noqa: F401  (a module fixture that the grading tests' course fixture requests)
)

pytestmark = pytest.mark.grading

A3 = "a3_flows_ar"
ANSWERS = (
    "a3_coupling_forward_answer",
    "a3_coupling_inverse_answer",
    "a3_made_answer",
    "a3_logprob_answer",
    "a3_sample_answer",
    "a3_maf_inverse_answer",
    "a3_maf_forward_answer",
    "a3_ancestral_answer",
)

# Answers of the documented types and shapes that compute nothing (an honest, empty attempt).
_EMPTY = {
    "a3_coupling_forward_answer": "def coupling_forward(x, mask, net):\n    return x * 1, x[:, 0] * 0\n",
    "a3_coupling_inverse_answer": "def coupling_inverse(y, mask, net):\n    return y * 1, y[:, 0] * 0\n",
    "a3_made_answer": "def made_masks(ordering, hidden_degrees, n_params=1):\n"
    "    sizes = [len(ordering), *(len(h) for h in hidden_degrees), n_params * len(ordering)]\n"
    "    return [torch.ones(b, a) for a, b in zip(sizes[:-1], sizes[1:])]\n",
    "a3_logprob_answer": "def flow_log_prob(x, layers):\n    return x[:, 0] * 0\n",
    "a3_sample_answer": "def flow_sample(layers, n, dim, generator=None):\n"
    "    return torch.zeros(n, dim, device=device), torch.zeros(n, device=device)\n",
    "a3_maf_inverse_answer": "def maf_inverse(x, net):\n    return x * 1, x[:, 0] * 0\n",
    "a3_maf_forward_answer": "def maf_forward(u, net):\n    return u * 1, u[:, 0] * 0\n",
    "a3_ancestral_answer": "def ancestral_sample(conditional, ordering, n, generator=None):\n"
    "    return torch.zeros(n, len(ordering), device=ordering.device), torch.zeros(n, device=ordering.device)\n",
}


# Correct answers written otherwise than the model answer, in forms a student is likely to choose: torch.where and
# division in the couplings; torch.ge/gt with torch.cat in the masks; torch.distributions.Normal for log N(z) and the
# layers walked by index from the last; the log-determinant summed once at the end of sampling; the MAF's scale
# undone by division, and its log-determinant from one more call of net on the finished x (D + 1 calls);
# the autoregressive draw walked by position, with log sigmoid and no clone. Each must keep every test point.
_ALTERNATIVE = {
    "a3_coupling_forward_answer": """def coupling_forward(x, mask, net):
    log_s, t = net(x * mask)
    keep = mask.bool().expand_as(x)
    y = torch.where(keep, x, torch.exp(log_s) * x + t)
    return y, torch.where(keep, torch.zeros_like(log_s), log_s).sum(dim=1)
""",
    "a3_coupling_inverse_answer": """def coupling_inverse(y, mask, net):
    log_s, t = net(y * mask)
    keep = mask.bool().expand_as(y)
    x = torch.where(keep, y, (y - t) / torch.exp(log_s))
    return x, -torch.where(keep, torch.zeros_like(log_s), log_s).sum(dim=1)
""",
    "a3_made_answer": """def made_masks(ordering, hidden_degrees, n_params=1):
    masks, previous = [], ordering
    for degrees in hidden_degrees:
        masks.append(torch.ge(degrees.unsqueeze(1), previous.unsqueeze(0)).to(torch.float32))
        previous = degrees
    output = torch.gt(ordering.unsqueeze(1), previous.unsqueeze(0)).to(torch.float32)
    masks.append(torch.cat([output] * n_params, dim=0))
    return masks
""",
    "a3_logprob_answer": """def flow_log_prob(x, layers):
    total = 0.0
    for i in range(len(layers) - 1, -1, -1):
        x, log_det = layers[i].inverse(x)
        total = total + log_det
    base = torch.distributions.Normal(torch.zeros((), dtype=x.dtype, device=x.device), 1.0)
    return base.log_prob(x).sum(dim=-1) + total
""",
    "a3_sample_answer": """def flow_sample(layers, n, dim, generator=None):
    z = torch.randn(n, dim, generator=generator, device=device)
    log_q = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(dim=1)
    x, total = z, torch.zeros_like(log_q)
    for layer in layers:
        x, log_det = layer.forward(x)
        total += log_det
    return x, log_q - total
""",
    "a3_maf_inverse_answer": """def maf_inverse(x, net):
    mu, alpha = net(x)
    return (x - mu) / torch.exp(alpha), -torch.sum(alpha, dim=-1)
""",
    "a3_maf_forward_answer": """def maf_forward(u, net):
    x = torch.zeros_like(u)
    for _ in range(u.shape[1]):
        mu, alpha = net(x)
        x = mu + torch.exp(alpha) * u
    _, alpha = net(x)  # alpha of the finished x, from a call of its own
    return x, torch.sum(alpha, dim=1)
""",
    "a3_ancestral_answer": """def ancestral_sample(conditional, ordering, n, generator=None):
    x = torch.zeros(n, len(ordering), device=ordering.device)
    log_p = torch.zeros(n, device=ordering.device)
    for position in range(1, len(ordering) + 1):
        d = int((ordering == position).nonzero())
        logit = conditional(x)[:, d]
        one = torch.rand(n, generator=generator, device=ordering.device) < torch.sigmoid(logit)
        x = torch.where(torch.arange(len(ordering), device=x.device) == d, one.float()[:, None], x)
        log_p += torch.where(one, nn.functional.logsigmoid(logit), nn.functional.logsigmoid(-logit))
    return x, log_p
""",
}

# One typical mistake each: (answer cell, its edit, the test cells it costs, {visible test: words naming it}).
MISTAKES = {
    "logdet_sign": (
        "a3_coupling_forward_answer",
        _replace("log_det = ((1 - mask) * log_s).sum(-1)", "log_det = -((1 - mask) * log_s).sum(-1)"),
        {"a3_coupling_test_logdet", "a3_coupling_hidden"},
        {"a3_coupling_test_logdet": "Likely mistake: the sign flipped"},
    ),
    "made_ge": (
        "a3_made_answer",
        _replace("output = (ordering[:, None] > ", "output = (ordering[:, None] >= "),
        {"a3_made_test_masks", "a3_made_test_autoregressive", "a3_made_test_direct", "a3_made_hidden"},
        {
            "a3_made_test_masks": "Likely mistake: >= on the output, where > belongs",
            "a3_made_test_autoregressive": "Likely mistake: >= on the output, where > belongs",
        },
    ),
    "layers_in_order": (
        "a3_logprob_answer",
        _replace("reversed(layers)", "layers"),
        {"a3_logprob_test_order", "a3_logprob_hidden"},
        {"a3_logprob_test_order": "Likely mistake: the layers undone in the order listed"},
    ),
    "natural_order": (
        "a3_ancestral_answer",
        _replace("torch.argsort(ordering).tolist()", "range(dim)"),
        {"a3_ar_test_frequencies", "a3_ar_test_log_prob", "a3_ar_hidden"},
        {"a3_ar_test_frequencies": "Likely mistake: the entries drawn in the order 0, 1, 2"},
    ),
    "one_maf_pass": (
        "a3_maf_forward_answer",
        _replace("range(u.shape[-1])", "range(1)"),
        {"a3_maf_test_forward", "a3_maf_hidden"},
        {"a3_maf_test_forward": "Likely mistake: maf_forward called net 1 times"},
    ),
}

# No two of these mistakes share an answer cell or a test cell, so each submission must lose exactly the union.
COMBINED = {
    "mistakes_a": ("logdet_sign", "made_ge", "natural_order"),
    "mistakes_b": ("layers_in_order", "one_maf_pass"),
}


# student -> edits of the solved notebook ({cell id: edit}); None = the untouched student version. EXPECTED: the test
# cells each combined submission loses, and the words of the visible tests' messages that name its mistakes.
MISTAKEN, EXPECTED = combined_mistakes(MISTAKES, COMBINED)
SUBMISSIONS = {**standard_submissions(ANSWERS, _EMPTY, _ALTERNATIVE), **MISTAKEN}


class TestA3FlowsAr(GradedAssignmentTests):
    ASSIGNMENT = A3
    SUBMISSIONS = SUBMISSIONS
    EXPECTED = EXPECTED
    TEST_POINTS, WRITTEN_CELLS, WRITTEN_POINTS = 25, 3, 9

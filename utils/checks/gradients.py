"""``check_grad``: autograd gradients against central finite differences (or given gradients)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from utils.checks.report import as_float64, failure, fmt_shape, index_of, relation_hint, say_passed


def _scalarize(out: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
    """A fixed random projection of a non-scalar output, so one backward pass checks the whole Jacobian's VJP."""
    if out.dim() == 0:
        return out
    if not weights:
        g = torch.Generator().manual_seed(1234)
        weights.append(torch.randn(out.shape, generator=g, dtype=torch.float64).to(out.device, out.dtype))
    return (out * weights[0]).sum()


def _finite_difference(
    f: Callable[[], torch.Tensor], x: torch.Tensor, eps: float, coords: torch.Tensor
) -> torch.Tensor:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`` for the flat indices ``coords``."""
    grad = torch.zeros(coords.numel(), dtype=torch.float64)
    flat = x.data.view(-1)
    with torch.no_grad():
        for k, i in enumerate(coords.tolist()):
            original = flat[i].item()
            flat[i] = original + eps
            up = f().item()
            flat[i] = original - eps
            down = f().item()
            flat[i] = original
            grad[k] = (up - down) / (2 * eps)
    return grad


def _grad_leaf(x: Any, dtype: torch.dtype | None) -> Any:
    """A fresh leaf copy of a floating-point tensor input (cast to dtype); other inputs unchanged."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        # Contiguous, so that finite differences can nudge entries through a flat view (x may be a W.T).
        leaf = x.detach().clone(memory_format=torch.contiguous_format)
        return leaf.to(dtype) if dtype is not None else leaf
    return x


def check_grad(
    fn: Callable[..., torch.Tensor],
    *inputs: Any,
    expected_grads: Any = None,
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    dtype: torch.dtype | None = torch.float64,
    max_checks: int = 200,
    name: str = "gradient",
    hint: str = "",
    quiet: bool = False,
) -> None:
    """Check the autograd gradient of ``fn(*inputs)`` w.r.t. every floating-point input.

    Without ``expected_grads`` the reference is central finite differences (at most ``max_checks``
    randomly chosen coordinates per input); with ``expected_grads`` (one tensor per floating input,
    or a single tensor) it is those tensors, e.g. a gradient derived by hand. A non-scalar output
    is reduced with fixed random weights, which checks the vector-Jacobian product.

    Inputs are cloned and cast to ``dtype`` (float64 by default, so finite differences are
    accurate; a model inside ``fn`` then needs ``.double()``; ``dtype=None`` keeps the inputs'
    dtype with a looser ``eps``). ``fn`` must be deterministic: fix its noise.
    """
    leaves = [_grad_leaf(x, dtype) for x in inputs]
    diff_idx = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    if not diff_idx:
        raise failure(
            name, "got no floating-point tensor input to differentiate.", "pass the input tensors after fn."
        )
    for i in diff_idx:
        leaves[i].requires_grad_(True)
    low_precision = any(leaves[i].dtype in (torch.float32, torch.float16, torch.bfloat16) for i in diff_idx)
    eps = eps if eps is not None else (1e-3 if low_precision else 1e-6)
    rtol = rtol if rtol is not None else (1e-2 if low_precision else 1e-4)
    atol = atol if atol is not None else (1e-3 if low_precision else 1e-6)

    weights: list[torch.Tensor] = []
    try:
        out = fn(*leaves)
    except RuntimeError as err:
        if dtype is not None and any(
            word in str(err) for word in ("dtype", "Double", "Float", "scalar type")
        ):
            raise TypeError(
                f"{name}: fn failed on {dtype} inputs ({err}); check_grad works in {dtype} for accurate "
                "finite differences: call model.double() first, or pass dtype=None to keep float32."
            ) from err
        raise
    if not isinstance(out, torch.Tensor):
        raise failure(
            name, f"fn returned a {type(out).__name__}, not a tensor.", "return the tensor, not .item()."
        )
    objective = _scalarize(out, weights)
    if not objective.requires_grad:
        raise failure(
            name,
            "the output of fn carries no gradient (requires_grad=False).",
            hint
            or "a .detach(), torch.no_grad(), .item()/.numpy() round trip, or .sample() instead of "
            ".rsample() cuts the graph between the inputs and the output.",
        )
    grads = torch.autograd.grad(objective, [leaves[i] for i in diff_idx], allow_unused=True)
    autograd = [torch.zeros_like(leaves[i]) if g is None else g for i, g in zip(diff_idx, grads)]

    def evaluate() -> torch.Tensor:
        return _scalarize(fn(*leaves), weights)

    if expected_grads is None:
        with torch.no_grad():
            first, second = evaluate().item(), evaluate().item()
        if first != second:
            raise failure(
                name,
                f"fn gave {first:.6g} and then {second:.6g} at the same inputs, so finite differences are meaningless.",
                "fn is random: fix its noise (draw eps once outside fn, or pass a seeded torch.Generator).",
            )
    else:
        expected_list = [expected_grads] if isinstance(expected_grads, torch.Tensor) else list(expected_grads)
        if len(expected_list) != len(diff_idx):
            raise failure(
                name,
                f"got {len(expected_list)} expected gradients for {len(diff_idx)} floating-point inputs.",
                "pass one expected gradient per floating-point input, in order.",
            )

    worst: tuple[float, str, str] = (0.0, "", "")
    gen = torch.Generator().manual_seed(0)
    for k, (i, g) in enumerate(zip(diff_idx, autograd)):
        g_flat = g.detach().to("cpu", torch.float64).reshape(-1)
        if expected_grads is None:
            n = g_flat.numel()
            coords = (
                torch.randperm(n, generator=gen)[:max_checks].sort().values
                if n > max_checks
                else torch.arange(n)
            )
            ref = _finite_difference(evaluate, leaves[i], eps, coords)
            ref_name = "finite differences"
        else:
            ref_full = as_float64(expected_list[k])
            if ref_full.numel() != g_flat.numel():
                raise failure(
                    name,
                    f"expected gradient {k} has shape {fmt_shape(ref_full.shape)} but input {i} has shape "
                    f"{fmt_shape(g.shape)}.",
                    hint or "a gradient has the shape of the tensor it is taken with respect to.",
                )
            coords = torch.arange(g_flat.numel())
            ref = ref_full.reshape(-1)
            ref_name = "expected_grads"
        got = g_flat[coords]
        excess = (got - ref).abs() - (atol + rtol * ref.abs())
        if excess.numel() and excess.max() > worst[0]:
            j = int(torch.argmax(excess))
            where = index_of(int(coords[j]), g.shape)
            all_zero = bool((g_flat == 0).all())
            guess = (
                "autograd's gradient is zero everywhere: the graph is cut (.detach(), torch.no_grad(), "
                "integer ops or argmax) between this input and the output."
                if all_zero
                else relation_hint(got, ref) or "compare your derivation with autograd term by term."
            )
            worst = (
                float(excess.max()),
                f"w.r.t. input {i} at index {where}: got {got[j].item():.6g} from autograd, expected "
                f"{ref[j].item():.6g} from {ref_name} (max abs diff {(got - ref).abs().max().item():.3g}, "
                f"{int((excess > 0).sum())} of {coords.numel()} checked entries off; "
                f"rtol={rtol:g}, atol={atol:g}).",
                guess,
            )
    if worst[0] > 0:
        raise failure(name, f"gradient mismatch {worst[1]}", hint or worst[2])
    say_passed(
        name, "autograd matches " + ("finite differences" if expected_grads is None else "expected"), quiet
    )

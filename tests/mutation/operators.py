"""Single-site mutants of the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.

Every mutant replaces exactly one node of the cell's syntax tree by another (an operator swapped, a
sign added or removed, a constant changed, a call dropped, ``sum`` for ``mean``, another dim, ``keepdim``
flipped or added, one argument removed). The new text is spliced into the original source, so comments
and layout outside that node stay as they were, and it is accepted only if it parses to exactly the
intended tree: the original tree with that one node replaced. A change whose text cannot be made to
parse that way is kept as an invalid mutant (``Mutant.valid`` false), which the runs exclude.

Generation is deterministic (cell order, then ``ast.walk`` order, then operator order); mutants that
give the same cell text are kept once, under the kind generated first.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import io
import tokenize
from collections.abc import Callable, Iterator
from dataclasses import dataclass

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

KINDS = ("binop", "unary", "compare", "dim", "keepdim", "sum-mean", "call", "constant", "argument")

_SYMBOL = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
    ast.FloorDiv: "//", ast.Mod: "%",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
}
# Binary operators: every swap within + - * /, ** -> *, @ -> *.
_BINOP_SWAPS = {
    ast.Add: (ast.Sub, ast.Mult, ast.Div),
    ast.Sub: (ast.Add, ast.Mult, ast.Div),
    ast.Mult: (ast.Div, ast.Add, ast.Sub),
    ast.Div: (ast.Mult, ast.Add, ast.Sub),
    ast.Pow: (ast.Mult,),
    ast.MatMult: (ast.Mult,),
}
_COMPARE_SWAPS = {
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
}
# Names whose attributes are functions taking the tensor first (torch.exp(x)), not methods (x.exp()).
MODULES = {"torch", "math", "np", "numpy", "nn", "F", "functional"}
# Builtins whose call can be dropped to its first argument (float(x) -> x).
BUILTINS = {"float", "int", "abs", "sum", "min", "max", "round"}
# Reductions and other functions with a ``dim`` argument: the first positional argument of the method
# (x.sum(-1)), the second of the function (torch.logsumexp(x, 0)).
DIM_FUNCTIONS = {
    "sum", "mean", "logsumexp", "softmax", "log_softmax", "prod", "amax", "amin", "max", "min", "std",
    "var", "cumsum", "argmax", "argmin", "squeeze", "unsqueeze", "cat", "stack", "all", "any", "median",
}
KEEPDIM_FUNCTIONS = {"sum", "mean", "logsumexp", "prod", "amax", "amin", "max", "min", "std", "var",
                     "argmax", "argmin", "all", "any", "median"}


@dataclass(frozen=True)
class Mutant:
    """One single-site change of one solution cell."""

    cell_index: int  # the cell's index in the notebook
    grade_id: str  # the cell's nbgrader grade_id
    kind: str  # one of KINDS
    description: str  # what changed, e.g. "'+' -> '-'"
    line: int  # 1-based line of the cell where the change starts
    before: str  # the original line(s) the change touches
    after: str  # the same line(s) after the change ("" for an invalid mutant)
    source: str  # the whole mutated cell ("" for an invalid mutant)
    valid: bool = True

    @property
    def key(self) -> str:
        """A short stable id: the cell and a hash of the mutated text (or of the change, if invalid)."""
        text = self.source if self.valid else f"{self.line}:{self.kind}:{self.description}"
        return f"{self.grade_id}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def solution_lines(source: str) -> list[tuple[int, int]]:
    """(first, last) 1-based line numbers strictly between each BEGIN/END SOLUTION pair."""
    regions, start = [], None
    for number, line in enumerate(source.split("\n"), start=1):
        if BEGIN in line:
            start = number + 1
        elif END in line and start is not None:
            regions.append((start, number - 1))
            start = None
    return regions


# --------------------------------------------------------------------------------------------
# Source positions


class _Text:
    """The cell source with conversions from ast positions (UTF-8 byte columns) to string offsets."""

    def __init__(self, source: str):
        self.source = source
        self.lines = source.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.source[start:end]


def _op_token_offset(text: _Text, start: int, end: int, symbol: str) -> int | None:
    """Offset of the operator token ``symbol`` in source[start:end] (the gap between two operands)."""
    gap = text.source[start:end]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(gap).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens = []
    gap_lines = gap.split("\n")
    gap_starts = [0]
    for line in gap_lines[:-1]:
        gap_starts.append(gap_starts[-1] + len(line) + 1)
    for token in tokens:
        if token.type == tokenize.OP and token.string == symbol:
            row, col = token.start
            return start + gap_starts[row - 1] + col
    return None


# --------------------------------------------------------------------------------------------
# Edits: each operator proposes (kind, description, new node, text candidates for the node's span)


@dataclass
class _Edit:
    kind: str
    description: str
    new_node: ast.AST
    candidates: list[str]  # replacement texts for the node's whole span, tried in order


def _number(node: ast.AST) -> float | int | None:
    """The value of a number literal (``2``, ``0.5``, ``-1``), else None (bools are not numbers)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        if inner is not None and isinstance(node.operand, ast.Constant):
            return -inner
    return None


def _literal(value: float | int) -> tuple[ast.AST, str]:
    """A number as Python parses its literal (a negative one is USub of a constant) and its text."""
    text = repr(abs(value)) if isinstance(value, float) else str(abs(value))
    node: ast.AST = ast.Constant(abs(value))
    if value < 0:
        return ast.UnaryOp(ast.USub(), node), "-" + text
    return node, text


def _call_name(call: ast.Call) -> tuple[str | None, bool]:
    """(name, is_method): ``x.sum()`` -> ("sum", True); ``torch.sum(x)`` -> ("sum", False);
    ``float(x)`` -> ("float", False)."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id, False
    if isinstance(func, ast.Attribute):
        return func.attr, not _is_module(func.value)
    return None, False


def _is_module(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name) and node.id in MODULES


def _with_parens(texts: list[str]) -> list[str]:
    out = []
    for text in texts:
        out += [text, f"({text})"]
    return out


def _binop(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    if not isinstance(node, ast.BinOp) or type(node.op) not in _BINOP_SWAPS:
        return
    symbol = _SYMBOL[type(node.op)]
    start, end = text.span(node)
    left_end = text.span(node.left)[1]
    right_start = text.span(node.right)[0]
    at = _op_token_offset(text, left_end, right_start, symbol)
    for new_op in _BINOP_SWAPS[type(node.op)]:
        new = copy.deepcopy(node)
        new.op = new_op()
        new_symbol = _SYMBOL[new_op]
        candidates = []
        if at is not None:
            candidates.append(text.source[start:at] + new_symbol + text.source[at + len(symbol):end])
        left, right = text.segment(node.left), text.segment(node.right)
        candidates += [f"({left}) {new_symbol} {right}", f"{left} {new_symbol} ({right})",
                       f"({left}) {new_symbol} ({right})"]
        yield _Edit("binop", f"'{symbol}' -> '{new_symbol}'", new, _with_parens(candidates))


def _compare(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    if not isinstance(node, ast.Compare):
        return
    start, end = text.span(node)
    operands = [node.left, *node.comparators]
    for i, op in enumerate(node.ops):
        for new_op in _COMPARE_SWAPS.get(type(op), ()):
            new = copy.deepcopy(node)
            new.ops[i] = new_op()
            symbol, new_symbol = _SYMBOL[type(op)], _SYMBOL[new_op]
            at = _op_token_offset(text, text.span(operands[i])[1], text.span(operands[i + 1])[0], symbol)
            candidates = []
            if at is not None:
                candidates.append(text.source[start:at] + new_symbol + text.source[at + len(symbol):end])
            yield _Edit("compare", f"'{symbol}' -> '{new_symbol}'", new, _with_parens(candidates))


def _unary(node: ast.AST, text: _Text, parents: dict[int, ast.AST]) -> Iterator[_Edit]:
    # Removed: -x -> x, not x -> x (a negative number literal is the constant operator's business).
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not) and _number(node) is None:
        operand = text.segment(node.operand)
        name = "-" if isinstance(node.op, ast.USub) else "not "
        yield _Edit("unary", f"'{name.strip()}' removed", copy.deepcopy(node.operand), _with_parens([operand]))
    # Added: a minus in front of a returned value (each element of a returned tuple) or an assigned value.
    # Not where it can only crash: before a tuple or list, or a value unpacked into several names.
    parent = parents.get(id(node))
    targets = isinstance(parent, ast.Return) and parent.value is node
    if isinstance(parent, ast.Assign) and parent.value is node:
        targets = all(isinstance(t, ast.Name | ast.Attribute | ast.Subscript) for t in parent.targets)
    if isinstance(parent, ast.Tuple) and isinstance(parents.get(id(parent)), ast.Return):
        targets = node in parent.elts
    containers = ast.Tuple | ast.List | ast.ListComp | ast.Dict | ast.Set | ast.SetComp | ast.DictComp
    if targets and not isinstance(node, containers) and _number(node) is None:
        new = ast.UnaryOp(ast.USub(), copy.deepcopy(node))
        segment = text.segment(node)
        yield _Edit("unary", "'-' added", new, [f"-{segment}", f"-({segment})"])


def _constant(node: ast.AST, text: _Text, parents: dict[int, ast.AST]) -> Iterator[_Edit]:
    value = _number(node)
    if value is None:
        return
    parent = parents.get(id(node))
    if isinstance(parent, ast.UnaryOp) and _number(parent) is not None:
        return  # the 1 of -1: the literal -1 is mutated as a whole
    new_values = []
    if value in (0, 1):
        new_values.append(type(value)(1 - value))
    if value != 0:
        new_values += [value * 2, -value]
    for new_value in dict.fromkeys(new_values):  # ordered, without repeats
        new, literal = _literal(new_value)
        yield _Edit("constant", f"{text.segment(node)} -> {literal}", new, [literal, f"({literal})"])


def _call(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    """A call dropped: x.exp() -> x, torch.exp(x) -> x, float(x) -> x."""
    if not isinstance(node, ast.Call):
        return
    name, is_method = _call_name(node)
    if name is None:
        return
    if is_method:
        kept = node.func.value
    elif isinstance(node.func, ast.Attribute) or name in BUILTINS:
        if not node.args or isinstance(node.args[0], ast.Starred):
            return
        kept = node.args[0]
    else:
        return  # a call of the notebook's own function (f(z), encoder(x)) is not a wrapper to drop
    yield _Edit("call", f"call of {name}() dropped", copy.deepcopy(kept), _with_parens([text.segment(kept)]))


def _sum_mean(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return
    other = {"sum": "mean", "mean": "sum"}.get(node.func.attr)
    if other is None:
        return
    new = copy.deepcopy(node)
    new.func.attr = other
    start, end = text.span(node)
    func_end = text.span(node.func)[1]
    head = text.source[start:func_end]
    candidates = [head[: len(head) - len(node.func.attr)] + other + text.source[func_end:end]]
    yield _Edit("sum-mean", f"{node.func.attr} -> {other}", new, _with_parens(candidates))


def _replace_span(text: _Text, outer: ast.AST, inner: ast.AST, replacement: str) -> str:
    """The text of ``outer`` with the text of its sub-node ``inner`` replaced."""
    start, end = text.span(outer)
    inner_start, inner_end = text.span(inner)
    return text.source[start:inner_start] + replacement + text.source[inner_end:end]


def _other_dim(value: int) -> int:
    return -1 if value == 0 else 0


def _dim(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    # x.shape[-1] <-> x.shape[0]
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and node.value.attr in ("shape", "size") and isinstance(_number(node.slice), int)):
        old = _number(node.slice)
        new_value = _other_dim(old)
        new = copy.deepcopy(node)
        new.slice, literal = _literal(new_value)
        yield _Edit("dim", f"shape[{old}] -> shape[{new_value}]", new,
                    _with_parens([_replace_span(text, node, node.slice, literal)]))
        return
    if not isinstance(node, ast.Call):
        return
    name, is_method = _call_name(node)
    if name not in DIM_FUNCTIONS or not isinstance(node.func, ast.Attribute):  # not the builtin min/max
        return
    for i, keyword in enumerate(node.keywords):
        if keyword.arg == "dim" and isinstance(_number(keyword.value), int):
            old = _number(keyword.value)
            new = copy.deepcopy(node)
            new.keywords[i].value, literal = _literal(_other_dim(old))
            yield _Edit("dim", f"dim={old} -> dim={literal}", new,
                        _with_parens([_replace_span(text, node, keyword.value, literal)]))
    position = 0 if is_method else 1
    if len(node.args) > position and isinstance(_number(node.args[position]), int):
        old = _number(node.args[position])
        new = copy.deepcopy(node)
        new.args[position], literal = _literal(_other_dim(old))
        yield _Edit("dim", f"dim {old} -> {literal}", new,
                    _with_parens([_replace_span(text, node, node.args[position], literal)]))


def _keepdim(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    if not isinstance(node, ast.Call):
        return
    name, is_method = _call_name(node)
    if name not in KEEPDIM_FUNCTIONS or not isinstance(node.func, ast.Attribute):
        return
    for i, keyword in enumerate(node.keywords):
        if keyword.arg == "keepdim" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, bool):
            new = copy.deepcopy(node)
            new.keywords[i].value = ast.Constant(not keyword.value.value)
            literal = str(not keyword.value.value)
            yield _Edit("keepdim", f"keepdim={keyword.value.value} -> keepdim={literal}", new,
                        _with_parens([_replace_span(text, node, keyword.value, literal)]))
            return
    has_dim = any(k.arg == "dim" for k in node.keywords) or len(node.args) > (0 if is_method else 1)
    if has_dim:
        new = copy.deepcopy(node)
        new.keywords.append(ast.keyword("keepdim", ast.Constant(True)))
        segment = text.segment(node)
        body = segment[:-1].rstrip()
        separator = "" if body.endswith(("(", ",")) else ", "
        yield _Edit("keepdim", "keepdim=True added", new, _with_parens([f"{body}{separator}keepdim=True)"]))


def _argument(node: ast.AST, text: _Text) -> Iterator[_Edit]:
    """One argument removed: any keyword argument (generator=, dim=, dtype=), and the last positional one
    of a call with two or more (reparameterize(mu, logvar, generator) -> without generator) or of a
    reduction (x.sum(-1) -> x.sum()). Removing a call's only or first input (encoder(x) -> encoder(),
    math.log(k) -> math.log()) is left out: it can only raise, and would pad the killed share."""
    if not isinstance(node, ast.Call):
        return
    items = sorted([*node.args, *node.keywords], key=lambda a: text.span(a)[0])
    if not items:
        return
    name, _ = _call_name(node)
    positional = [a for a in node.args if not isinstance(a, ast.Starred)]
    removable = list(node.keywords)
    if positional and (len(node.args) >= 2 or (name in DIM_FUNCTIONS and isinstance(node.func, ast.Attribute))):
        if positional[-1] is node.args[-1] and (len(node.args) >= 2 or _call_name(node)[1]):
            removable.append(node.args[-1])
    start, end = text.span(node)
    for i, item in enumerate(items):
        if not any(item is r for r in removable):
            continue
        new = copy.deepcopy(node)
        if isinstance(item, ast.keyword):
            index = node.keywords.index(item)
            del new.keywords[index]
            label = f"argument {item.arg}=... removed" if item.arg else "argument **... removed"
        else:
            index = node.args.index(item)
            del new.args[index]
            label = f"argument {index + 1} ({text.segment(item)}) removed"
        item_start, item_end = text.span(item)
        if i + 1 < len(items):
            cut = (item_start, text.span(items[i + 1])[0])
        elif i > 0:
            cut = (text.span(items[i - 1])[1], item_end)
        else:
            cut = (item_start, item_end)
        candidate = text.source[start:cut[0]] + text.source[cut[1]:end]
        yield _Edit("argument", label, new, _with_parens([candidate, ast.unparse(new)]))


# --------------------------------------------------------------------------------------------
# Putting edits into the cell


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _replace_node(tree: ast.AST, target: ast.AST, new: ast.AST) -> ast.AST:
    """A copy of ``tree`` in which the node ``target`` (found by identity) is ``new``."""
    nodes = list(ast.walk(tree))
    index = next(i for i, n in enumerate(nodes) if n is target)
    tree_copy = copy.deepcopy(tree)
    copy_target = list(ast.walk(tree_copy))[index]
    for parent in ast.walk(tree_copy):
        for field, value in ast.iter_fields(parent):
            if value is copy_target:
                setattr(parent, field, new)
                return tree_copy
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is copy_target:
                        value[i] = new
                        return tree_copy
    raise ValueError("node not found in its tree")


def _dump(tree: ast.AST) -> str:
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _within(node: ast.AST, regions: list[tuple[int, int]]) -> bool:
    if not hasattr(node, "lineno") or node.end_lineno is None:
        return False
    return any(first <= node.lineno and node.end_lineno <= last for first, last in regions)


OPERATORS: tuple[Callable[..., Iterator[_Edit]], ...] = (
    _binop, _unary, _compare, _dim, _keepdim, _sum_mean, _call, _constant, _argument,
)
_NEEDS_PARENTS = {_unary, _constant}


def cell_mutants(source: str, cell_index: int = 0, grade_id: str = "") -> list[Mutant]:
    """Every single-site mutant of the solution regions of one cell (duplicates removed)."""
    regions = solution_lines(source)
    if not regions:
        return []
    tree = ast.parse(source)
    text = _Text(source)
    parents = _parents(tree)
    mutants: list[Mutant] = []
    seen = {source}
    for node in ast.walk(tree):
        if not _within(node, regions):
            continue
        for operator in OPERATORS:
            edits = operator(node, text, parents) if operator in _NEEDS_PARENTS else operator(node, text)
            for edit in edits:
                mutant = _apply(source, text, tree, node, edit, cell_index, grade_id)
                if mutant.valid and mutant.source in seen:
                    continue
                seen.add(mutant.source)
                mutants.append(mutant)
    return mutants


def _apply(source: str, text: _Text, tree: ast.AST, node: ast.AST, edit: _Edit, cell_index: int,
           grade_id: str) -> Mutant:
    """The mutant whose text parses to ``tree`` with ``node`` replaced by ``edit.new_node``."""
    expected = _dump(_replace_node(tree, node, edit.new_node))
    start, end = text.span(node)
    first_line, last_line = node.lineno, node.end_lineno
    before = "\n".join(text.lines[first_line - 1:last_line])
    for candidate in edit.candidates:
        mutated = source[:start] + candidate + source[end:]
        try:
            parsed = ast.parse(mutated)
            compile(mutated, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        if _dump(parsed) != expected:
            continue
        extra = candidate.count("\n") - source[start:end].count("\n")
        after = "\n".join(mutated.split("\n")[first_line - 1:last_line + extra])
        return Mutant(cell_index, grade_id, edit.kind, edit.description, first_line, before, after, mutated)
    return Mutant(cell_index, grade_id, edit.kind, edit.description, first_line, before, "", "", valid=False)


def notebook_mutants(nb) -> list[Mutant]:
    """Every mutant of every solution region of a notebook (an nbformat NotebookNode), in cell order."""
    out: list[Mutant] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or BEGIN not in cell.source:
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell{index}")
        out += cell_mutants(cell.source, index, grade_id)
    return out


def differing_sites(a: ast.AST, b: ast.AST) -> int:
    """How many disjoint subtrees differ between two trees (an independent check of "one site"):
    a node whose type, own fields or list lengths differ counts once, else its children are counted."""
    if type(a) is not type(b):
        return 1
    if isinstance(a, list):
        if len(a) != len(b):
            return 1
        return sum(differing_sites(x, y) for x, y in zip(a, b))
    if not isinstance(a, ast.AST):
        return int(a != b)
    count, scalar_differs = 0, False
    for (_field, x), (_, y) in zip(ast.iter_fields(a), ast.iter_fields(b)):
        if isinstance(x, ast.AST | list):
            if isinstance(x, list) and len(x) != len(y):
                return 1  # an argument removed or added: this node is the site
            count += differing_sites(x, y)
        elif x != y or type(x) is not type(y):
            scalar_differs = True
    return 1 if scalar_differs else count  # a node whose own fields differ is one site, whatever is below

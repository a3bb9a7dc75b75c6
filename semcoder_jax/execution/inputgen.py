"""Type-aware input mutation in the manner of EvalPlus, scored by coverage in the sandbox.

An input is argument text such that ``f(<input>)`` is the call (``"[1, 2], 3"``). Inputs are parsed
with ``ast.literal_eval`` only (never evaluated in the parent), mutated by type (ints ±1, floats
perturbed, bools flipped, strings edited, containers grown, shrunk and mutated recursively, values
swapped for "ingredients" found in the program and the seeds), and kept only if they fit the
parameters' type annotations and the function returns without exception inside the time limit.
Inputs that add coverage are kept first; the rest fill up to ``n`` once the coverage target or the
round budget is reached.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import random
import string
from typing import Any

from semcoder_jax.execution.coverage import function_shape, run_inputs

MAX_LEN = 64
MAX_TEXT = 2_000
_ATOMS = (int, float, bool, str, bytes, type(None))


@dataclasses.dataclass
class InputSet:
    inputs: list[str]
    line_coverage: float
    branch_coverage: float


def parse_args(text: str) -> tuple | None:
    """Argument text -> tuple of values (``None`` if not a tuple of literals)."""
    try:
        value = ast.literal_eval(f"({text},)") if text.strip() else ()
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, tuple) else None


def canonical_repr(value: Any) -> str:
    """``repr`` with every set's elements sorted: a set's own order follows string hashes, which differ
    between processes, and equal sets built in another order can print differently in one process."""
    t = type(value)
    if t is list:
        return "[" + ", ".join(map(canonical_repr, value)) + "]"
    if t is tuple:
        return "(" + ", ".join(map(canonical_repr, value)) + ("," if len(value) == 1 else "") + ")"
    if t is dict:
        return "{" + ", ".join(f"{canonical_repr(k)}: {canonical_repr(v)}" for k, v in value.items()) + "}"
    if t is set:
        return "{" + ", ".join(sorted(map(canonical_repr, value))) + "}" if value else "set()"
    return repr(value)


def format_args(args: tuple) -> str | None:
    """Tuple of values -> argument text that parses back to an equal tuple (``None`` if impossible),
    the same text in every process (``canonical_repr``)."""
    try:
        text = ", ".join(canonical_repr(a) for a in args)
    except (RecursionError, ValueError):
        return None
    if len(text) > MAX_TEXT:
        return None
    back = parse_args(text)
    if back is None or len(back) != len(args) or not _same(back, args):
        return None
    return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def ingredients(source: str, seeds: list[tuple]) -> dict[type, list]:
    """Constants of the program and atoms of the seed inputs, grouped by type."""
    pool: dict[type, set] = {t: set() for t in _ATOMS}
    try:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and type(node.value) in pool:
                v = node.value
                if not (isinstance(v, str) and len(v) > 100):
                    pool[type(v)].add(v)
    except SyntaxError:
        pass

    def visit(v: Any, depth: int = 0) -> None:
        if type(v) in pool:
            if not (isinstance(v, (str, bytes)) and len(v) > 100):
                pool[type(v)].add(v)
        elif depth < 4 and isinstance(v, (list, tuple, set, frozenset)):
            for x in v:
                visit(x, depth + 1)
        elif depth < 4 and isinstance(v, dict):
            for k, x in v.items():
                visit(k, depth + 1)
                visit(x, depth + 1)

    for seed in seeds:
        visit(seed)
    return {t: sorted(vs, key=repr) for t, vs in pool.items() if vs}


def _mutate_str(s: str, rng: random.Random, pool: dict) -> str:
    op = rng.randrange(6)
    alphabet = string.ascii_letters + string.digits + " _-.,!"
    chars = "".join(pool.get(str, [])) or alphabet
    i = rng.randint(0, len(s))
    if op == 0 or not s:
        return s[:i] + rng.choice(rng.choice((chars, alphabet))) + s[i:]
    if op == 1:
        return s[:i] + s[i + 1:]
    if op == 2:
        j = min(len(s) - 1, i)
        return s[:j] + rng.choice(alphabet) + s[j + 1:]
    if op == 3:
        j = rng.randint(i, len(s))
        return (s[:i] + s[i:j] * 2 + s[j:])[:MAX_LEN * 4]
    if op == 4 and pool.get(str):
        piece = rng.choice(pool[str])
        return s[:i] + piece + s[i:]
    return s.swapcase() if rng.random() < 0.5 else s[::-1]


def mutate_value(v: Any, rng: random.Random, pool: dict, depth: int = 0) -> Any:
    """One type-preserving mutation of ``v`` (sometimes swapped for a same-typed ingredient)."""
    t = type(v)
    if t in pool and rng.random() < 0.2:
        return rng.choice(pool[t])
    if t is bool:
        return not v
    if t is int:
        return v + rng.choice((-1, 1)) if rng.random() < 0.8 else rng.choice((0, -v, v * 2, 1))
    if t is float:
        if not math.isfinite(v):
            return 0.0
        return rng.choice((v + 1.0, v - 1.0, v * 2, v / 2, -v, round(v, 1), v + rng.uniform(-1, 1)))
    if t is str:
        return _mutate_str(v, rng, pool)
    if t is bytes:
        return _mutate_str(v.decode("latin-1"), rng, {}).encode("latin-1")
    if t in (list, tuple, set, frozenset):
        items = sorted(v, key=canonical_repr) if t in (set, frozenset) else list(v)
        op = rng.randrange(4)
        if op == 0 and len(items) < MAX_LEN:  # add
            if items:
                new = mutate_value(rng.choice(items), rng, pool, depth + 1)
            else:
                kinds = [k for k in (int, str) if k in pool] or [int]
                new = rng.choice(pool[rng.choice(kinds)]) if kinds[0] in pool else rng.randint(-5, 10)
            items.insert(rng.randint(0, len(items)), new)
        elif op == 1 and items:  # remove
            items.pop(rng.randrange(len(items)))
        elif items and depth < 4:  # mutate an element
            i = rng.randrange(len(items))
            items[i] = mutate_value(items[i], rng, pool, depth + 1)
        elif op == 3 and items:
            rng.shuffle(items)
        try:
            return t(items)
        except TypeError:  # unhashable element in a set
            return v
    if t is dict:
        items = list(v.items())
        op = rng.randrange(3)
        if op == 0 and len(items) < MAX_LEN:
            if items:
                k, x = rng.choice(items)
                items.append((mutate_value(k, rng, pool, depth + 1), mutate_value(x, rng, pool, depth + 1)))
            else:
                items.append((rng.choice(pool.get(str, ["a"])), rng.randint(0, 9)))
        elif op == 1 and items:
            items.pop(rng.randrange(len(items)))
        elif items and depth < 4:
            i = rng.randrange(len(items))
            items[i] = (items[i][0], mutate_value(items[i][1], rng, pool, depth + 1))
        try:
            return dict(items)
        except TypeError:
            return v
    return v


_SCALARS: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "complex": (int, float, complex), "bool": (bool,), "str": (str,),
    "bytes": (bytes,), "None": (type(None),), "NoneType": (type(None),),
}
_CONTAINERS: dict[str, type] = {
    "list": list, "List": list, "set": set, "Set": set, "frozenset": frozenset, "FrozenSet": frozenset,
    "dict": dict, "Dict": dict, "tuple": tuple, "Tuple": tuple,
}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.List
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def fits(value: Any, ann: ast.expr | None) -> bool:
    """Whether ``value`` has the type annotation ``ann`` says (read from the source, never evaluated).

    Builtin scalars, containers with their element types, ``Optional``, ``Union`` and ``|`` are checked;
    any other annotation (a class of the program, ``Sequence``, ``Any``) accepts every value.
    """
    if ann is None:
        return True
    if isinstance(ann, ast.Constant) and isinstance(ann.value, str):  # a quoted annotation
        try:
            return fits(value, ast.parse(ann.value, mode="eval").body)
        except SyntaxError:
            return True
    if isinstance(ann, ast.BinOp) and isinstance(ann.op, ast.BitOr):
        return fits(value, ann.left) or fits(value, ann.right)
    if isinstance(ann, ast.Subscript):
        outer = _name(ann.value)
        params = list(ann.slice.elts) if isinstance(ann.slice, ast.Tuple) else [ann.slice]
        if outer == "Optional":
            return value is None or fits(value, params[0])
        if outer == "Union":
            return any(fits(value, p) for p in params)
        kind = _CONTAINERS.get(outer or "")
        if kind is None:
            return True
        if not isinstance(value, kind):
            return False
        if kind is dict:
            return len(params) != 2 or all(fits(k, params[0]) and fits(v, params[1]) for k, v in value.items())
        if kind is tuple and not (len(params) == 2 and isinstance(params[1], ast.Constant) and params[1].value is ...):
            return len(params) == len(value) and all(fits(v, p) for v, p in zip(value, params))
        return all(fits(v, params[0]) for v in value)
    name = _name(ann)
    if name in _SCALARS:
        return isinstance(value, _SCALARS[name])
    if name in _CONTAINERS:
        return isinstance(value, _CONTAINERS[name])
    return True


def parameter_annotations(source: str, func_name: str) -> list[ast.expr | None]:
    """Annotations of the top-level function's positional parameters, in order (None where missing)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    node = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == func_name), None)
    if node is None:
        return []
    return [a.annotation for a in node.args.posonlyargs + node.args.args]


def mutate_input(args: tuple, rng: random.Random, pool: dict) -> tuple:
    """Mutate one or two arguments of an argument tuple."""
    if not args:
        return args
    out = list(args)
    for _ in range(1 if rng.random() < 0.7 else 2):
        i = rng.randrange(len(out))
        out[i] = mutate_value(out[i], rng, pool)
    return tuple(out)


def generate_inputs(source: str, func_name: str, seed_inputs: list[str], *, n: int = 20, coverage_target: float = 1.0,
                    seed: int = 0, sandbox=None, rounds: int = 6, batch: int = 48,
                    per_input_timeout_s: float = 1.0) -> InputSet:
    """Up to ``n`` valid, distinct inputs for ``func_name``, seeds first, chosen to raise coverage."""
    rng = random.Random(seed)
    shape = function_shape(source, func_name)
    annotations = parameter_annotations(source, func_name)
    seeds = [(text, parse_args(text)) for text in seed_inputs]
    pool = ingredients(source, [a for _, a in seeds if a is not None])
    lines: set[int] = set()
    arcs: set[tuple[int, int]] = set()
    kept: list[str] = []
    spare: list[str] = []
    parents: list[tuple] = []
    seen: set[str] = set()

    def absorb(entries: list[dict]) -> None:
        for e in entries:
            if not e["ok"]:
                continue
            new_lines = set(e["lines"]) - lines
            new_arcs = {tuple(a) for a in e["arcs"]} - arcs
            args = parse_args(e["input"])
            if args is None and e.get("args_repr"):  # a non-literal seed such as "'a-b'.split('-')"
                try:
                    value = ast.literal_eval(e["args_repr"])
                    args = value if isinstance(value, tuple) else None
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    args = None
            if args is not None:
                parents.append(args)
            if new_lines & shape.lines or new_arcs:
                if len(kept) < n:
                    kept.append(e["input"])
                    lines.update(e["lines"])
                    arcs.update(tuple(a) for a in e["arcs"])
            else:
                spare.append(e["input"])

    candidates = []
    for text, args in seeds:
        canonical = (format_args(args) if args is not None else None) or text
        if canonical not in seen:
            seen.add(canonical)
            candidates.append(canonical)
    if candidates:
        absorb(run_inputs(source, func_name, candidates, sandbox=sandbox, per_input_timeout_s=per_input_timeout_s))
    # Seeds are kept even if they add nothing new (they are the given examples).
    for text in candidates:
        if text in spare and len(kept) < n:
            spare.remove(text)
            kept.append(text)
    for _ in range(rounds):
        if not parents or len(kept) >= n or shape.score(lines, arcs)[0] >= coverage_target and shape.score(lines, arcs)[1] >= coverage_target:
            break
        batch_inputs = []
        for _ in range(batch * 4):
            if len(batch_inputs) >= batch:
                break
            args = mutate_input(rng.choice(parents), rng, pool)
            if not all(fits(a, t) for a, t in zip(args, annotations)):  # e.g. a str grown into a list[int]
                continue
            text = format_args(args)
            if text is not None and text not in seen:
                seen.add(text)
                batch_inputs.append(text)
        if not batch_inputs:
            break
        absorb(run_inputs(source, func_name, batch_inputs, sandbox=sandbox, per_input_timeout_s=per_input_timeout_s))
    for text in spare:
        if len(kept) >= n:
            break
        if text not in kept:
            kept.append(text)
    line_cov, branch_cov = shape.score(lines, arcs)
    return InputSet(inputs=kept, line_coverage=line_cov, branch_coverage=branch_cov)

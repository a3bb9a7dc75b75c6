"""HumanEval(+) and MBPP(+) as EvalPlus ships them: base tests are the original benchmark's inputs
(``base_input``), plus tests add EvalPlus's (``plus_input``). MBPP+ stores tuples, sets and complex
numbers as JSON lists/strings; ``mbpp_deserialize_inputs`` restores them per task exactly as
``evalplus.data.mbpp.mbpp_deserialize_inputs`` (evalplus 0.3.1) does."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

from eval.benchmarks import DATA_DIR, BenchmarkError
from semcoder_jax.jsonl import iter_jsonl

HUMANEVAL_PLUS = DATA_DIR / "HumanEvalPlus-v0.1.10.jsonl.gz"
MBPP_PLUS = DATA_DIR / "MbppPlus-v0.2.0.jsonl.gz"
REQUIRED = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")


@dataclasses.dataclass
class EvalPlusProblem:
    task_id: str
    dataset: str  # "humaneval" | "mbpp"
    prompt: str
    entry_point: str
    canonical_solution: str
    base_input: list
    plus_input: list
    atol: float


def load_evalplus(dataset: str, path: str | Path | None = None) -> list[EvalPlusProblem]:
    path = Path(path) if path else (HUMANEVAL_PLUS if dataset == "humaneval" else MBPP_PLUS)
    problems = []
    for lineno, row in iter_jsonl(path):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise BenchmarkError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        where = f"{path}:{lineno}"
        inputs = functools.partial(mbpp_deserialize_inputs, row["task_id"]) if dataset == "mbpp" else (lambda x: x)
        base, plus = _field(where, row, "base_input", inputs), _field(where, row, "plus_input", inputs)
        atol = _field(where, row, "atol", lambda x: float(x or 0))
        problems.append(
            EvalPlusProblem(
                task_id=row["task_id"],
                dataset=dataset,
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                canonical_solution=row["canonical_solution"],
                base_input=base,
                plus_input=plus,
                atol=atol,
            )
        )
    return problems


def _field(where: str, row: dict, name: str, convert: Callable[[Any], Any]) -> Any:
    """``convert(row[name])``; a value it cannot convert is an error naming the file, line and field."""
    try:
        return convert(row[name])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        raise BenchmarkError(f"{where}: field {name} of {row['task_id']!r}: {type(e).__name__}: {e}") from None


def _tuples(xs):
    return [tuple(x) for x in xs]


def _deep_tuple(x):
    return tuple(_deep_tuple(i) for i in x) if isinstance(x, list) else x


_TUPLE_ARGS = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740, 744, 809}
_TUPLE_ELEMS_OF_ARGS = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_TUPLE_ELEMS_OF_FIRST = {75, 413, 444, 753}
_TUPLE_SECOND = {106, 750}
_TUPLE_FIRST = {250, 405, 446, 617, 720, 763, 808}
_TUPLE_NESTED = {259, 401, 445}
_DEEP_TUPLE = {580, 615, 791}


def mbpp_deserialize_inputs(task_id: str, inputs: list) -> list[Any]:
    tid = int(task_id.split("/")[-1])
    if tid in _TUPLE_ARGS:
        return [_tuples(inp) for inp in inputs]
    if tid in _TUPLE_ELEMS_OF_ARGS:
        return [[_tuples(arg) for arg in inp] for inp in inputs]
    if tid in _TUPLE_ELEMS_OF_FIRST:
        return [[_tuples(inp[0])] + [inp[1]] for inp in inputs]
    if tid in _TUPLE_SECOND:
        return [[inp[0]] + [tuple(inp[1])] for inp in inputs]
    if tid == 115:
        return [[[set(item) if isinstance(item, list) and len(item) else {} for item in inp[0]]] for inp in inputs]
    if tid == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if tid in _TUPLE_FIRST:
        return [[tuple(inp[0])] + [inp[1]] for inp in inputs]
    if tid in _TUPLE_NESTED:
        return [_tuples([_tuples(arg) for arg in inp]) for inp in inputs]
    if tid == 278:
        step = [[[tuple(i) if isinstance(i, list) else i for i in inp[0]]] for inp in inputs]
        return [_tuples(inp) for inp in step]
    if tid == 307:
        return [[tuple(inp[0])] + [inp[1], inp[2]] for inp in inputs]
    if tid == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}] + inp[1:] for inp in inputs]
    if tid == 252:
        return [[complex(inp[0])] for inp in inputs]
    if tid in _DEEP_TUPLE:
        return [_deep_tuple(inp) for inp in inputs]
    return inputs

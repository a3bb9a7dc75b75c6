"""CRUXEval (800 functions ``f`` with one input/output pair, as Python literals)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from eval.benchmarks import DATA_DIR, BenchmarkError
from semcoder_jax.jsonl import iter_jsonl

CRUXEVAL = DATA_DIR / "cruxeval.jsonl.gz"


@dataclasses.dataclass
class CruxProblem:
    task_id: str  # "sample_<i>", the key of CRUXEval's generations JSON
    code: str
    input: str
    output: str


def load_cruxeval(path: str | Path | None = None) -> list[CruxProblem]:
    path = Path(path) if path else CRUXEVAL
    problems = []
    for lineno, row in iter_jsonl(path):
        missing = [k for k in ("code", "input", "output", "id") if k not in row]
        if missing:
            raise BenchmarkError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
        problems.append(CruxProblem(row["id"], row["code"], row["input"], row["output"]))
    return problems

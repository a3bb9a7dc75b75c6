"""Reference benchmark files used by tests and benchmarks: the copies the project ships in
``eval/benchmarks/data/`` (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from semcoder_jax import PROJECT_ROOT
from semcoder_jax.errors import SemcoderError

SEARCH_DIRS = (PROJECT_ROOT / "eval" / "benchmarks" / "data",)


def find(name: str) -> Path:
    for d in SEARCH_DIRS:
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise SemcoderError(f"{name}: not found in {', '.join(str(d) for d in SEARCH_DIRS)}")


def read_jsonl(name: str) -> list[dict]:
    path = find(name)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def humaneval() -> list[dict]:
    return read_jsonl("HumanEval.jsonl")


def cruxeval() -> list[dict]:
    return read_jsonl("cruxeval.jsonl")


def humaneval_program(problem: dict, completion: str | None = None) -> str:
    """prompt + completion (default: the canonical solution) + tests + ``check(entry_point)``."""
    body = problem["canonical_solution"] if completion is None else completion
    return f"{problem['prompt']}{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"

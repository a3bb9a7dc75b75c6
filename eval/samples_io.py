"""Reading samples to score: EvalPlus-style JSONL (``task_id`` with ``solution`` or ``completion``;
``answer`` for execution-prediction benchmarks) or CRUXEval's generations JSON
(``{"sample_0": ["...", ...], ...}``). Every bad row is an error naming the file and line. A raw
completion's ``finish_reason`` (as ``eval run`` writes samples) decides whether an LCB-Exec answer
was closed by its stop string or cut by the token limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from eval.backends import FINISH_REASONS, Completion
from eval.tasks import check_style, default_quotes, to_sample
from semcoder_jax.errors import SemcoderError
from semcoder_jax.jsonl import iter_jsonl

PROGRAM_BENCHMARKS = ("humaneval", "mbpp", "lcb-lite")


class SamplesError(SemcoderError):
    """A samples file that cannot be scored."""


def _first_string_field(row: dict, keys: Sequence[str], where: str) -> tuple[str, str]:
    """``(key, value)`` of the first of ``keys`` present in ``row``; its value must be a string."""
    key = next((k for k in keys if k in row), None)
    if key is None:
        raise SamplesError(f"{where}: row has none of the fields {', '.join(keys)}")
    value = row[key]
    if not isinstance(value, str):
        raise SamplesError(f"{where}: field {key} must be a string, got {type(value).__name__}")
    return key, value


def _sample_from_row(benchmark: str, problem: Any, row: dict, where: str, style: str, quotes: bool) -> str:
    if benchmark in PROGRAM_BENCHMARKS:
        key, value = _first_string_field(row, ("solution", "completion", "code"), where)
        if key == "completion" and benchmark == "lcb-lite":
            return to_sample(benchmark, problem, value, style)  # the code in it, as `eval run` extracts it
        if key == "completion":
            return problem.prompt + value  # as evalplus.evaluate does
        return value
    key, value = _first_string_field(row, ("answer", "completion", "generation"), where)
    if key == "answer":
        return value
    reason = row.get("finish_reason")  # as `eval run` writes it: read LCB-Exec answers as it read them
    if reason is not None and reason not in FINISH_REASONS:
        raise SamplesError(f"{where}: finish_reason must be one of {', '.join(FINISH_REASONS)} or null, got {reason!r}")
    return to_sample(benchmark, problem, Completion(value, reason), style, quotes)


def semcoder_raw_answer(raw: str, benchmark: str, quotes: bool = True) -> str:
    """The answer in one of SemCoder's raw CRUXEval generations (``generations_raw.json``: prompt
    and completion, cut before ``[/ANSWER]``), extracted as its ``process_cruxeval.py`` does: after the
    last ``[ANSWER]`` (the prompt's examples hold earlier ones), before the last ``[/ANS``; then the
    side of ``==`` the mode asks for and what follows an ``assert``; double quotes swapped back."""
    start = raw.rfind("ANSWER]") + len("ANSWER]") if "\nANSWER]" in raw else raw.rfind("[ANSWER]") + len("[ANSWER]")
    end = raw.rfind("[/ANS")
    answer = raw[start : len(raw) if end == -1 or end < start else end]
    if "==" in answer:
        answer = answer.split("==")[1 if benchmark == "cruxeval-o" else 0].strip()
    if "assert" in answer:
        answer = answer.split("assert")[1].strip()
    return answer.replace('"', "'") if quotes else answer


def read_samples(
    path: str | Path, benchmark: str, problems: Sequence[Any], *, style: str = "semcoder", quotes: bool | None = None
) -> dict[str, list[str]]:
    """``{task_id: [sample, ...]}`` in the benchmark's problem order. A raw completion of an
    execution-prediction benchmark or LCB-Lite is read as ``eval run`` reads one from a ``style``
    prompt (answers with ``quotes``, default per style: double quotes back to single ones). A
    CRUXEval JSON of SemCoder's raw generations (prompts hold ``[ANSWER]``) is read as SemCoder reads
    it (:func:`semcoder_raw_answer`; quotes swapped unless ``quotes`` is False), each sample kept."""
    check_style(benchmark, style)
    raw_quotes, quotes = quotes, default_quotes(style, quotes)
    path = Path(path)
    if not path.exists():
        raise SamplesError(f"{path}: file not found")
    by_id = {p.task_id: p for p in problems}
    out: dict[str, list[str]] = {}
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise SamplesError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
        except UnicodeDecodeError as e:
            raise SamplesError(f"{path}: not UTF-8 (byte {e.start})") from None
        except RecursionError:  # json's decoder recurses per nesting level
            raise SamplesError(f"{path}: JSON nested too deeply to read (expected {{task_id: [samples]}})") from None
        if not isinstance(data, dict):
            raise SamplesError(f"{path}: expected an object {{task_id: [samples]}}, got {type(data).__name__}")
        for task_id, values in data.items():
            where = f"{path}: key {task_id!r}"
            if task_id not in by_id:
                raise SamplesError(f"{where}: unknown task id for {benchmark}")
            if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                raise SamplesError(f"{where}: expected a non-empty list of strings")  # no samples: no pass@k at all
            if benchmark in PROGRAM_BENCHMARKS and benchmark != "lcb-lite":
                values = [v if f"def {by_id[task_id].entry_point}" in v else by_id[task_id].prompt + v for v in values]
            elif benchmark.startswith("cruxeval"):
                swap = True if raw_quotes is None else raw_quotes
                values = [semcoder_raw_answer(v, benchmark, swap) if "[ANSWER]" in v else v for v in values]
            out[task_id] = list(values)
    else:
        for lineno, row in iter_jsonl(path, error=SamplesError):
            where = f"{path}:{lineno}"
            task_id = row.get("task_id")
            if not isinstance(task_id, str):
                raise SamplesError(f"{where}: missing or non-string task_id")
            if task_id not in by_id:
                raise SamplesError(f"{where}: unknown task_id {task_id!r} for {benchmark}")
            out.setdefault(task_id, []).append(_sample_from_row(benchmark, by_id[task_id], row, where, style, quotes))
    if not out:
        raise SamplesError(f"{path}: no samples")
    return {p.task_id: out[p.task_id] for p in problems if p.task_id in out}


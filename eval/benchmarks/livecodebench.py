"""LiveCodeBench: code generation (lite, by release version) and code execution.

Read from the Hugging Face hub through ``datasets`` (``livecodebench/code_generation_lite`` with a
``version_tag``, ``livecodebench/execution-v2``) or from a local JSONL file with the same columns.
Private tests may be packed as base64 → zlib → pickle → JSON; they are unpacked with an unpickler
that refuses every global, so only plain str/bytes/list/dict/number pickles load.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import io
import json
import pickle
import re
import zlib
from pathlib import Path
from typing import Any, Iterable

from eval.benchmarks import BenchmarkError
from semcoder_jax.jsonl import iter_jsonl

CODE_GENERATION_HUB = "livecodebench/code_generation_lite"
EXECUTION_HUB = "livecodebench/execution-v2"
GENERATION_FIELDS = ("question_id", "question_content", "starter_code", "public_test_cases", "private_test_cases", "metadata")
EXECUTION_FIELDS = ("code", "input", "output", "function_name")


@dataclasses.dataclass
class LcbTest:
    input: str
    output: str
    testtype: str  # "stdin" | "functional"


@dataclasses.dataclass
class LcbGenerationProblem:
    task_id: str
    question_title: str
    question_content: str
    platform: str
    contest_date: str
    difficulty: str
    starter_code: str
    tests: list[LcbTest]  # public then private, as lcb_runner grades them
    func_name: str | None


@dataclasses.dataclass
class LcbExecutionProblem:
    task_id: str
    code: str
    input: str  # a full call, e.g. "f(nums = [1, 2])"
    output: str
    function_name: str


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def decode_test_cases(value: str | list) -> list[dict]:
    """Test cases given as a JSON string, a list, or base64(zlib(pickle(JSON string)))."""
    if isinstance(value, list):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        pass
    raw = zlib.decompress(base64.b64decode(value.encode("utf-8")))
    obj = _NoGlobalsUnpickler(io.BytesIO(raw)).load()
    return json.loads(obj) if isinstance(obj, (str, bytes)) else obj


def _tests(value: Any, where: str) -> list[LcbTest]:
    try:
        cases = decode_test_cases(value)
        return [LcbTest(str(c["input"]), str(c["output"]), str(c.get("testtype", "stdin"))) for c in cases]
    except Exception as e:  # noqa: BLE001 - any malformed packing is the row's fault
        raise BenchmarkError(f"{where}: cannot decode test cases ({type(e).__name__}: {e})") from None


# code_generation_lite's loading script maps a version tag to its JSONL files; newer ``datasets``
# no longer run loading scripts, so the files are fetched directly when the script path fails.
_LITE_FILES = ["test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl"]


def lite_files(version_tag: str) -> list[str]:
    """The files the dataset script selects: ``release_vN`` releases 1..N, ``release_latest`` all,
    ``vN`` release N alone, ``vM_vN`` releases M..N; any other tag is refused rather than mapped to
    another release's problems."""
    n = len(_LITE_FILES)
    if version_tag == "release_latest":
        return list(_LITE_FILES)
    cumulative = re.fullmatch(r"release_v(\d+)", version_tag)
    if cumulative and 1 <= int(cumulative[1]) <= n:
        return _LITE_FILES[: int(cumulative[1])]
    span = re.fullmatch(r"v(\d+)(?:_v(\d+))?", version_tag)
    if span and 1 <= int(span[1]) <= int(span[2] or span[1]) <= n:
        return _LITE_FILES[int(span[1]) - 1 : int(span[2] or span[1])]
    raise BenchmarkError(f"unknown LiveCodeBench version_tag {version_tag!r} (release_v1..release_v{n}, release_latest, "
                         f"v1..v{n} or vM_vN)")


def _hub_rows(hub_name: str, hub_kwargs: dict) -> Iterable[tuple[str, dict]]:
    try:
        import datasets
    except ImportError:
        raise BenchmarkError("LiveCodeBench needs `datasets` (pip install semcoder-jax[eval]) or a local --data file") from None
    try:
        ds = datasets.load_dataset(hub_name, split="test", **hub_kwargs)
        for i, row in enumerate(ds):
            yield f"{hub_name}[{i}]", dict(row)
        return
    except Exception as first:  # noqa: BLE001
        if "version_tag" not in hub_kwargs:
            raise BenchmarkError(f"cannot load {hub_name} from the hub ({type(first).__name__}: {first}); pass a local JSONL with --data") from None
        error = first
    try:
        from huggingface_hub import hf_hub_download

        paths = [hf_hub_download(hub_name, f, repo_type="dataset") for f in lite_files(hub_kwargs["version_tag"])]
    except BenchmarkError:
        raise
    except Exception as e:  # noqa: BLE001
        raise BenchmarkError(
            f"cannot load {hub_name} from the hub ({type(error).__name__}: {error}; {type(e).__name__}: {e}); pass a local JSONL with --data"
        ) from None
    for path in paths:
        for lineno, row in iter_jsonl(path):
            yield f"{hub_name}/{Path(path).name}:{lineno}", row


def _rows(path: str | Path | None, hub_name: str, hub_kwargs: dict) -> Iterable[tuple[str, dict]]:
    if path is not None:
        for lineno, row in iter_jsonl(path):
            yield f"{path}:{lineno}", row
        return
    yield from _hub_rows(hub_name, hub_kwargs)


def _parse_date(value: Any, what: str) -> datetime.datetime:
    """An ISO date or datetime (``2023-08-21`` or ``2023-08-21T00:00:00``) as a naive datetime."""
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    try:
        return datetime.datetime.fromisoformat(str(value)).replace(tzinfo=None)
    except ValueError:
        raise BenchmarkError(f"{what}: expected an ISO date such as 2023-08-21, got {value!r}") from None


def load_code_generation(
    path: str | Path | None = None,
    *,
    version_tag: str = "release_v1",
    start_date: str | None = None,
    end_date: str | None = None,
) -> list[LcbGenerationProblem]:
    """LCB-Lite problems; ``start_date``/``end_date`` (ISO) filter on contest_date as lcb_runner does."""
    problems = []
    # lcb_runner compares datetimes: ``strptime(start, "%Y-%m-%d") <= contest_date <= strptime(end, ...)``,
    # so a contest at midnight of the end date is in the window.
    start = _parse_date(start_date, "start_date") if start_date else None
    end = _parse_date(end_date, "end_date") if end_date else None
    kwargs = {"version_tag": version_tag, "trust_remote_code": True}
    for where, row in _rows(path, CODE_GENERATION_HUB, kwargs):
        missing = [k for k in GENERATION_FIELDS if k not in row]
        if missing:
            raise BenchmarkError(f"{where}: missing field(s) {', '.join(missing)}")
        date = str(row.get("contest_date", ""))
        if start_date or end_date:
            when = _parse_date(row.get("contest_date"), f"{where}: field contest_date")
            if (start and when < start) or (end and when > end):
                continue
        meta = row["metadata"]
        if isinstance(meta, str):
            try:
                meta = json.loads(meta or "{}")
            except json.JSONDecodeError:
                raise BenchmarkError(f"{where}: field metadata is not JSON") from None
        tests = _tests(row["public_test_cases"], where) + _tests(row["private_test_cases"], where)
        problems.append(
            LcbGenerationProblem(
                task_id=str(row["question_id"]),
                question_title=str(row.get("question_title", "")),
                question_content=row["question_content"],
                platform=str(row.get("platform", "")),
                contest_date=date,
                difficulty=str(row.get("difficulty", "")),
                starter_code=row["starter_code"] or "",
                tests=tests,
                func_name=(meta or {}).get("func_name"),
            )
        )
    return problems


def load_execution(path: str | Path | None = None) -> list[LcbExecutionProblem]:
    problems = []
    for where, row in _rows(path, EXECUTION_HUB, {}):
        missing = [k for k in EXECUTION_FIELDS if k not in row]
        if missing:
            raise BenchmarkError(f"{where}: missing field(s) {', '.join(missing)}")
        task_id = str(row.get("id", row.get("question_id", len(problems))))
        problems.append(LcbExecutionProblem(task_id, row["code"], row["input"], row["output"], row["function_name"]))
    return problems

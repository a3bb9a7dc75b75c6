"""JSONL records between stages: reading with file:line errors, atomic writing, rejects."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from semcoder_jax.errors import SemcoderError
from semcoder_jax.jsonl import iter_jsonl


class RecordError(SemcoderError):
    """A malformed input record; the message names the file and line."""


def read_jsonl(
    path: str | Path,
    *,
    skip_bad: bool = False,
    rejects: list[dict[str, Any]] | None = None,
    required: Iterable[str] = (),
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[dict[str, Any]]:
    """Parse every line; a bad one raises ``RecordError`` or, with ``skip_bad``, goes to ``rejects``.

    Bad: not a JSON object, a ``required`` field missing, text with a lone surrogate (``"\\ud800"``
    parses but cannot be written back as UTF-8), or a reason from ``check(row)``."""
    return [row for _, row in read_jsonl_lines(path, skip_bad=skip_bad, rejects=rejects, required=required, check=check)]


def read_jsonl_lines(
    path: str | Path,
    *,
    skip_bad: bool = False,
    rejects: list[dict[str, Any]] | None = None,
    required: Iterable[str] = (),
    check: Callable[[dict[str, Any]], str | None] | None = None,
    limit: int = 0,
) -> list[tuple[int, dict[str, Any]]]:
    """``read_jsonl`` with each row's line number, so later checks can name FILE:LINE too; with
    ``limit``, the first ``limit`` good rows: lines after them are not read, so not refused either."""
    path = Path(path)
    required = tuple(required)
    out: list[tuple[int, dict[str, Any]]] = []

    def bad(lineno: int, text: str, reason: str) -> None:
        if not skip_bad:
            raise RecordError(f"{path}:{lineno}: {reason}")
        if rejects is not None:
            rejects.append({"file": str(path), "line": lineno, "reason": reason, "text": text})

    for lineno, obj in iter_jsonl(path, error=RecordError, on_bad=bad):
        missing = [k for k in required if k not in obj]
        surrogate = None if missing else _lone_surrogate(obj)
        reason = f"missing field {missing[0]!r}" if missing else surrogate or (check(obj) if check else None)
        if reason:
            bad(lineno, json.dumps(obj, ensure_ascii=bool(surrogate)), reason)
        else:
            out.append((lineno, obj))
            if len(out) == limit:
                break
    return out


def _lone_surrogate(value: Any, where: str = "") -> str | None:
    """Where ``value`` holds text that is no valid Unicode (a lone surrogate), else None."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"field {where!r} holds a lone surrogate ({value[e.start]!r}), which is not valid Unicode"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _lone_surrogate(k, where) if isinstance(k, str) else None
        found = found or _lone_surrogate(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def write_jsonl_atomic(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write to a temporary name, fsync, rename: a reader sees the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(dumps(r) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return n


def write_json_atomic(path: str | Path, obj: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def iter_jsonl_files(paths: Iterable[str | Path]) -> Iterator[dict[str, Any]]:
    for p in paths:
        yield from read_jsonl(p)

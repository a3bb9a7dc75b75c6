"""Reading JSON lines (plain or gzip): the one reader, with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable, Iterator

from semcoder_jax.errors import SemcoderError

OnBad = Callable[[int, str, str], None]


def iter_jsonl(
    path: str | Path, *, error: type[SemcoderError] = SemcoderError, on_bad: OnBad | None = None
) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each non-blank line, which must be a JSON object.

    A bad line raises ``error("FILE:LINE: reason")``, or with ``on_bad`` is reported to
    ``on_bad(line_number, text, reason)`` and skipped, so callers can count it as a reject.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                reason = None if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"
            except json.JSONDecodeError as e:
                reason = f"not valid JSON ({e.msg} at column {e.colno})"
            if reason is None:
                yield lineno, row
            elif on_bad is None:
                raise error(f"{path}:{lineno}: {reason}")
            else:
                on_bad(lineno, line.rstrip("\n"), reason)

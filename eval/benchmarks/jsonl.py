"""Reading JSON lines (plain or gzip) with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from semcoder_jax.errors import SemcoderError


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each non-blank line; a row must be a JSON object."""
    path = Path(path)
    if not path.exists():
        raise SemcoderError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SemcoderError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise SemcoderError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row

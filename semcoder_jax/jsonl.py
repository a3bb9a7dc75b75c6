"""Reading JSON lines (plain or gzip): the one reader, with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
import zlib
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
    with opener(path, "rb") as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                line, reason = _decode(raw)
                if line is not None and not line.strip():
                    continue
                if reason is None:
                    try:
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            reason = f"expected a JSON object, got {type(row).__name__}"
                    except json.JSONDecodeError as e:
                        reason = f"not valid JSON ({e.msg} at column {e.colno})"
                    except RecursionError:
                        reason = "JSON nested too deeply to read"
                if reason is None:
                    yield lineno, row
                elif on_bad is None:
                    raise error(f"{path}:{lineno}: {reason}")
                else:
                    text = line if line is not None else raw.decode("utf-8", "replace")
                    on_bad(lineno, text.removesuffix("\n").removesuffix("\r"), reason)  # "\r\n" ends a line too
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise error(f"{path}: not a readable gzip file ({e})") from e


def _decode(raw: bytes) -> tuple[str | None, str | None]:
    """The line's text, or why it is not UTF-8: one bad line must not hide the file's other rows."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line)"

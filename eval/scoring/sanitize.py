"""EvalPlus's completion sanitiser (``evalplus.sanitize.sanitize`` as of evalplus 0.3.1), ported so
that scoring does not need evalplus installed. Same steps: pick the chat code block holding the
entry point, keep only definitions of it that contain a ``return``, normalise 3-space indents, cut at
the first top-level statement after it, and drop helper functions that do not parse."""

from __future__ import annotations

import ast
import re
from typing import Sequence


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return False
    return True


def _drop_top_level_lines(code: str, protect_before: str, keep_prefixes: Sequence[str], tails: Sequence[str]) -> str:
    lines = code.splitlines()
    cut: set[int] = set()
    armed = False
    for i, line in enumerate(lines):
        if not armed and line.startswith(protect_before):
            armed = True
            continue
        if not line.strip() or any(line.startswith(p) for p in keep_prefixes):
            continue
        if len(line) == len(line.lstrip()):
            cut.add(i)
        if any(line.rstrip().startswith(t) for t in tails):
            cut.update(range(i, len(lines)))
            break
    return "\n".join(line for i, line in enumerate(lines) if i not in cut)


def _four_space_indents(code: str) -> str:
    out = []
    for line in code.splitlines():
        out.append((" " if len(line) - len(line.lstrip()) == 3 else "") + line + "\n")
    return "".join(out)


def sanitize(code: str, entry_point: str, rm_prefix_lines: str | None = None, eofs: Sequence[str] = ()) -> str:
    """The program EvalPlus would execute for a raw model output ``code``."""
    if rm_prefix_lines is not None:
        code = "\n".join(line for line in code.splitlines() if not line.startswith(rm_prefix_lines))
    code = "\n" + code
    def_left = "def " + entry_point
    code = code.replace("\n```python\n", "\n```\n")
    for chunk in code.split("\n```\n"):
        if def_left in chunk:
            code = chunk
            break
    chunks = re.split(re.escape(def_left) + r"\s*\(", code)
    bodies = [c for c in chunks[1:] if "    return " in c.split("\ndef")[0]]
    def_left += "("
    body = def_left + def_left.join(bodies) if bodies else ""
    body = _four_space_indents(body)
    for eof in eofs:
        body = body.split(eof)[0]
    body = _drop_top_level_lines(body, def_left, ("def ", "import ", "from "), ('"""', "if", "print"))
    code = chunks[0] + body
    parts = code.split("\ndef ")
    kept = [parts[0]]
    for fn in parts[1:]:
        head = fn.strip()
        if head.startswith(entry_point + " ") or head.startswith(entry_point + "(") or _parses("\ndef " + fn):
            kept.append(fn)
    return "\ndef ".join(kept).strip()

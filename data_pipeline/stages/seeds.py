"""OSS-Instruct-style seeds: parsable AST subtrees (functions, classes, blocks) of Python files."""

from __future__ import annotations

import ast
import tokenize
from pathlib import Path
from typing import Any

from data_pipeline.config import DataConfig, resolve_path
from data_pipeline.stages.base import short_hash
from semcoder_jax.prompts import source_lines

_BLOCK_NODES = (ast.For, ast.While, ast.If, ast.With, ast.Try)


def extract_seeds(source: str, *, kinds: tuple[str, ...] = ("function", "class", "block"), min_lines: int = 3) -> list[dict[str, Any]]:
    """Every function, class and compound block of ``source`` that parses on its own."""
    tree = ast.parse(source)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            kind = "function"
        elif isinstance(node, ast.ClassDef):
            kind = "class"
        elif isinstance(node, _BLOCK_NODES):
            kind = "block"
        else:
            continue
        if kind not in kinds:
            continue
        segment = ast.get_source_segment(source, node, padded=False)
        if segment is None:
            continue
        segment = _dedent_segment(segment, node)
        if segment.count("\n") + 1 < min_lines:
            continue
        try:
            ast.parse(segment)
        except SyntaxError:
            continue
        out.append({"seed_kind": kind, "lineno": node.lineno, "name": getattr(node, "name", None), "code": segment})
    out.sort(key=lambda s: s["lineno"])
    return out


def _dedent_segment(segment: str, node: ast.stmt) -> str:
    """The segment moved left by the node's column. Lines that continue a multi-line string keep
    their text: moving them would change the string's value."""
    col = node.col_offset
    verbatim = _string_continuation_lines(node)
    lines = source_lines(segment)
    rest = [ln if i in verbatim else ln[col:] if ln[:col].strip() == "" else ln.lstrip()
            for i, ln in enumerate(lines[1:], start=node.lineno + 1)]
    return "\n".join([lines[0], *rest])


def _string_continuation_lines(node: ast.AST) -> set[int]:
    """Source line numbers that begin inside a string literal (f-strings whole) under ``node``."""
    out: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.JoinedStr) or isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes)):
            out.update(range(n.lineno + 1, n.end_lineno + 1))
        else:
            stack.extend(ast.iter_child_nodes(n))
    return out


def collect_seeds(config: DataConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seed records from every ``*.py`` under the corpus folders, plus rejects (unparsable files, repeated code)."""
    records: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    first_of: dict[str, str] = {}  # seed code -> id of its first occurrence
    for corpus in config.corpus_dirs:
        root = Path(resolve_path(corpus))
        if not root.exists():
            from data_pipeline.records import RecordError

            raise RecordError(f"corpus folder not found: {root} (config key corpus_dirs)")
        # A folder named ``x.py`` is no file to read (rglob still reads the files in it).
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*.py") if not p.is_dir())
        for path in files:
            rel = path.name if root.is_file() else str(path.relative_to(root))
            try:
                with tokenize.open(path) as f:  # as Python reads source: a BOM or a coding line decides the encoding
                    text = f.read()
                seeds = extract_seeds(text, kinds=tuple(config.seed_kinds), min_lines=config.min_seed_lines)
            except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError, OSError) as e:  # deep nesting; a dead link
                rejects.append({"record": {"source_file": rel}, "reason": "unparsable_file", "detail": (str(e).splitlines() or [type(e).__name__])[0]})
                continue
            for s in seeds:
                key = f"{rel}:{s['lineno']}:{s['seed_kind']}:{s['code']}"
                rid = f"seed-{short_hash(key)}"
                record = {"id": rid, "source_file": rel, **s}
                if s["code"] in first_of:  # a copy (two corpus folders, a vendored file): one problem trained twice
                    rejects.append({"record": record, "reason": "duplicate_seed", "detail": f"same code as {first_of[s['code']]}"})
                    continue
                first_of[s["code"]] = rid
                records.append(record)
    if config.max_seeds:
        records = records[: config.max_seeds]
    return records, rejects

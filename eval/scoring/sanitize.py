"""EvalPlus's completion sanitiser (``evalplus.sanitize.sanitize``, evalplus 0.3.1), ported from its
tree-sitter implementation to :mod:`ast` so that scoring does not need evalplus or tree-sitter.

Same steps: take the longest run of lines that parses; keep its top-level imports (not
``__future__``), then the undecorated classes, functions that contain a ``return``, and
assignments (named by a bare identifier target, else unnamed: kept only without an entry point,
the first one only) reachable from the entry point by name, every identifier tree-sitter sees
(import modules and match captures included) counting as a reference; if that leaves nothing,
return the longest parsable run itself.
"""

from __future__ import annotations

import ast


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return False
    return True


def code_extract(text: str) -> str:
    """The longest (by non-blank lines) contiguous run of lines that parses."""
    lines = text.split("\n")
    best, best_len = (0, 0), 0
    for i in range(len(lines)):
        for j in range(i + 1, len(lines)):
            length = sum(1 for line in lines[i : j + 1] if line.strip())
            if length > best_len and _parses("\n".join(lines[i : j + 1])):
                best, best_len = (i, j), length
    return "\n".join(lines[best[0] : best[1] + 1])


def _identifiers(node: ast.AST) -> set[str]:
    """Every identifier in ``node``, as tree-sitter's ``identifier`` nodes would list them."""
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            names.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            names.add(sub.attr)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, ast.keyword) and sub.arg:
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(sub.name)
        elif isinstance(sub, (ast.Global, ast.Nonlocal)):
            names.update(sub.names)
        elif isinstance(sub, ast.alias):
            names.update(sub.name.split("."))
            if sub.asname:
                names.add(sub.asname)
        elif isinstance(sub, ast.ImportFrom) and sub.module:
            names.update(sub.module.split("."))
        elif isinstance(sub, (ast.MatchAs, ast.MatchStar)) and sub.name:
            names.add(sub.name)
        elif isinstance(sub, ast.MatchMapping) and sub.rest:
            names.add(sub.rest)
        elif isinstance(sub, ast.MatchClass):
            names.update(sub.kwd_attrs)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return names


def _assigned_name(stmt: ast.Assign | ast.AnnAssign) -> str | None:
    """tree-sitter's name of an assignment: its target when that is a bare identifier (a parenthesised
    ``(x): int`` is not), else None."""
    if isinstance(stmt, ast.AnnAssign) and not stmt.simple:
        return None
    target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
    return target.id if isinstance(target, ast.Name) else None


def extract_target_code_or_empty(code: str, entry_point: str | None = None) -> str:
    code = code_extract(code)
    try:
        tree = ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return ""
    imports: list[ast.stmt] = []
    definitions: list[tuple[str | None, ast.stmt]] = []
    seen: set[str | None] = set()
    for stmt in tree.body:
        if isinstance(stmt, ast.Import) or (isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__"):
            imports.append(stmt)
            continue
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if stmt.decorator_list:
                continue  # a decorated definition is another node type in tree-sitter
            name: str | None = stmt.name
            if isinstance(stmt, ast.ClassDef) or any(isinstance(n, ast.Return) for n in ast.walk(stmt)):
                if name not in seen:
                    definitions.append((name, stmt))
                    seen.add(name)
            continue
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            name = _assigned_name(stmt)
            if name not in seen:
                definitions.append((name, stmt))
                seen.add(name)
    reachable: set[str | None] = set()
    if entry_point:
        deps = {name: _identifiers(stmt) for name, stmt in definitions}
        reachable, queue = {entry_point}, [entry_point]
        while queue:
            for dep in deps.get(queue.pop(0), ()):
                if dep not in reachable:
                    reachable.add(dep)
                    queue.append(dep)
    parts = [ast.get_source_segment(code, stmt) or "" for stmt in imports]
    parts += [ast.get_source_segment(code, stmt) or "" for name, stmt in definitions if not entry_point or name in reachable]
    return "\n".join(parts)


def sanitize(code: str, entry_point: str | None = None) -> str:
    """The program EvalPlus would execute for a raw model output ``code``."""
    sanitized = extract_target_code_or_empty(code, entry_point).strip()
    return sanitized or code_extract(code)

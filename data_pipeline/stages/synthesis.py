"""Problem + solution from each seed: an LLM (OSS-Instruct prompt) or, offline, the seed itself.

Offline mode turns a shipped seed function into a problem: its docstring less its doctest examples
(``>>>`` lines and the expected output under them) is the description and its ``>>> name(args)`` lines
are the seed inputs (``>>> name()``, the empty input, for a function without
parameters). Seeds without both are rejected (``no_offline_problem``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from data_pipeline.stages.base import Reject, StageContext, code_blocks

SYNTHESIS_PROMPT = """Gain inspiration from the following random code snippet to create a high-quality programming problem. Present your output in two distinct sections: [Problem Description] and [Solution].

Code snippet for inspiration:
```python
{seed}
```

Guidelines for each section:
1. [Problem Description]: This should be **completely self-contained**, providing all the contextual information one needs to understand and solve the problem. Assume common programming knowledge, but ensure that any specific context, variables, or code snippets pertinent to this problem are explicitly included. The problem must not need external resources (files, network, databases, the clock, randomness) nor uncommon third-party libraries.
2. [Solution]: First explain your reasoning briefly, then offer a comprehensive, **correct** solution as one Python function in a ```python block. After the solution, give 2 to 4 example calls of the function, one per line, in a section [Example Calls].
"""

# Markdown around a header (``### [Solution]``, ``**[Solution]:**``) belongs to the header, not to a section.
_SECTION = re.compile(r"(?:^[ \t]*#+[ \t]*)?\**\[(Problem Description|Solution|Example Calls)\]\**:?\**\s*",
                      re.IGNORECASE | re.MULTILINE)


def parse_synthesis_reply(text: str) -> dict[str, Any] | None:
    """``[Problem Description]`` / ``[Solution]`` sections; None if either is missing."""
    parts = _SECTION.split(text)
    sections: dict[str, str] = {}
    for i in range(1, len(parts) - 1, 2):
        sections[parts[i].lower()] = parts[i + 1].strip()
    problem = sections.get("problem description")
    solution_text = sections.get("solution")
    if not problem or not solution_text:
        return None
    blocks = code_blocks(solution_text)
    if not blocks:
        return None
    code = blocks[0].strip("\n")
    entry = first_function_name(code)
    if entry is None:
        return None
    calls = sections.get("example calls", "")
    # The entry point is the top-level function the example calls call (a helper may come first).
    defined = set(top_level_functions(code))
    called = [n for n in (called_name(ln.strip()) for ln in calls.splitlines()) if n in defined]
    if called:
        entry = called[0]
    seed_inputs = [a for a in (call_arguments(ln.strip(), entry) for ln in calls.splitlines()) if a is not None]
    return {"problem": problem, "solution": code, "response": solution_text, "entry_point": entry, "seed_inputs": seed_inputs}


def first_function_name(code: str) -> str | None:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            return node.name
    return None


def top_level_functions(code: str) -> list[str]:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]


def _unwrap_print(node: ast.expr) -> ast.expr:
    """``call`` of ``print(call)``: LLMs often write their example calls that way."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Call)):
        return node.args[0]
    return node


_LINE_MARK = re.compile(r"^(?:>>>\s*|[-*+]\s+|\d+[.)]\s+)")


def _call_text(line: str) -> str:
    """The code of an example line: without ``>>>``, a list marker (``-``, ``1.``), backticks or a trailing ``;``
    (LLMs often list their example calls as markdown; unparsed, a helper defined first became the entry point)."""
    line = _LINE_MARK.sub("", line.strip())
    quoted = re.match(r"`([^`]+)`", line)
    return (quoted.group(1) if quoted else line).strip().rstrip(";")


def called_name(line: str) -> str | None:
    """``name`` of a line ``name(...)`` or ``print(name(...))`` (see ``_call_text`` for what may surround it), else None."""
    line = _call_text(line)
    try:
        node = _unwrap_print(ast.parse(line, mode="eval").body)
    except SyntaxError:
        return None
    return node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None


def call_arguments(line: str, name: str) -> str | None:
    """``name(1, [2])`` (or ``print(name(1, [2]))``) -> ``"1, [2]"`` when it calls ``name`` with literal arguments."""
    line = _call_text(line)
    try:
        node = _unwrap_print(ast.parse(line, mode="eval").body)
    except SyntaxError:
        return None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name):
        return None
    try:
        for a in [*node.args, *(k.value for k in node.keywords)]:
            ast.literal_eval(a)
    except ValueError:
        return None
    call = ast.get_source_segment(line, node)  # the call alone, without a trailing comment
    inner = call[call.index("(") + 1 : call.rindex(")")]
    return inner.strip()


def offline_problem(seed: dict[str, Any]) -> dict[str, Any] | Reject:
    if seed.get("seed_kind") != "function":
        return Reject("no_offline_problem", f"{seed.get('seed_kind')} seed")
    tree = ast.parse(seed["code"])
    fn = tree.body[0]
    doc = ast.get_docstring(fn)
    if not doc:
        return Reject("no_offline_problem", "function without docstring")
    description, in_example = [], False
    for ln in doc.splitlines():  # an example's expected output runs to the next blank line, as in doctest
        in_example = ln.strip().startswith(">>>") or in_example and bool(ln.strip())
        if not in_example:
            description.append(ln)
    inputs = [a for a in (call_arguments(ln.strip(), fn.name) for ln in doc.splitlines() if ln.strip().startswith(">>>")) if a is not None]
    if not inputs:
        return Reject("no_offline_problem", "docstring without >>> examples")
    fn.body = fn.body[1:] or [ast.Pass()]
    solution = ast.unparse(fn)
    args = ast.unparse(fn.args)
    problem = "\n".join(description).strip() + f"\n\nImplement it as a Python function `{fn.name}({args})`."
    response = f"```python\n{solution}\n```"
    return {"problem": problem, "solution": solution, "response": response, "entry_point": fn.name, "seed_inputs": inputs}


def given_problem(seed: dict[str, Any]) -> dict[str, Any] | Reject:
    """A ready problem from ``problems_jsonl``: ``problem``, ``solution`` [, ``entry_point``, ``seed_inputs``]."""
    entry = seed.get("entry_point") or first_function_name(seed["solution"])
    if entry is None:
        return Reject("unparsable_solution", "no top-level function in solution")
    return {"problem": seed["problem"], "solution": seed["solution"], "entry_point": entry,
            "response": seed.get("response") or f"```python\n{seed['solution']}\n```",
            "seed_inputs": list(seed.get("seed_inputs") or seed.get("inputs") or [])}


def process(seed: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    if seed.get("seed_kind") == "problem":
        out = given_problem(seed)
    elif ctx.config.synthesis == "offline":
        out = offline_problem(seed)
    else:
        reply = ctx.llm.chat([{"role": "user", "content": SYNTHESIS_PROMPT.format(seed=seed["code"])}])
        out = parse_synthesis_reply(reply) if reply is not None else None
        if out is None:
            return Reject("unparsable_synthesis" if reply is not None else "llm_failed")
    if isinstance(out, Reject):
        return out
    rid = seed["id"].replace("seed-", "prob-", 1)
    return [{"id": rid, "seed_id": seed["id"], "source_file": seed.get("source_file"), **out}]

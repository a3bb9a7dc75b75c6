"""PYX-R: buggy solutions, the failing test, the faulty trace and a rubber-duck rationale + fix.

Bugs come from LLM samples that fail a test (``pyxr=llm``) or from mutation of the correct
solution (``pyxr=mutation``, offline). A record is accepted only if its ``[Refined]`` code passes
every test in the sandbox, and a bug only if its failing call passes the determinism check (the
rationale is written from that checked trace); a bug dropped there is noted
``pyxr.bug_nondeterministic`` or ``pyxr.bug_trace_unusable`` and the next one is tried.
"""

from __future__ import annotations

import ast
import copy
import random
import re
from typing import Any, Iterator

from data_pipeline.stages import annotator_trace
from data_pipeline.stages.base import Reject, StageContext, code_blocks, record_seed, sandbox_map
from data_pipeline.stages.monologue import checked_trace, fewshot_messages, training_response
from semcoder_jax import prompts

_SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
_SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv}
_SWAP_BOOL = {ast.And: ast.Or, ast.Or: ast.And}
_REFINED = re.compile(r"\[Refined\]\s*(.*?)\s*\[/Refined\]", re.DOTALL)


def mutants(code: str) -> Iterator[str]:
    """Every single-site mutant of ``code``: comparison, arithmetic, boolean, constant off-by-one."""
    tree = ast.parse(code)
    sites = list(ast.walk(tree))
    seen = {ast.unparse(tree)}
    for idx, node in enumerate(sites):
        variants = []
        if isinstance(node, ast.Compare):
            variants += [("ops", i, _SWAP_CMP[type(op)]()) for i, op in enumerate(node.ops) if type(op) in _SWAP_CMP]
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAP_BIN:
            variants.append(("op", None, _SWAP_BIN[type(node.op)]()))
        elif isinstance(node, ast.BoolOp):
            variants.append(("op", None, _SWAP_BOOL[type(node.op)]()))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            variants += [("value", None, node.value + 1), ("value", None, node.value - 1)]
        for attr, i, new in variants:
            clone = copy.deepcopy(tree)
            target = list(ast.walk(clone))[idx]
            if i is None:
                setattr(target, attr, new)
            else:
                getattr(target, attr)[i] = new
            text = ast.unparse(clone)
            if text not in seen:
                seen.add(text)
                yield text


def _test_assertion(entry: str, test: dict[str, str]) -> str:
    return f"assert {entry}({test['input']}) == {test['output']}"


def _failing(code: str, entry: str, tests: list[dict[str, str]], ctx: StageContext, timeout_s: float = 2.0) -> list[tuple[int, str]]:
    from semcoder_jax.execution import Job

    results = sandbox_map(ctx, [Job(code + "\n" + _test_assertion(entry, t), timeout_s=timeout_s) for t in tests])
    return [(i, r.status) for i, r in enumerate(results) if r.status != "passed"]


def refined_code(response: str) -> str | None:
    m = _REFINED.search(response)
    if not m:
        return None
    blocks = code_blocks(m.group(1))
    return (blocks[0] if blocks else m.group(1)).strip("\n")


def _mutation_bug(record: dict[str, Any], tests: list[dict[str, str]], ctx: StageContext) -> dict[str, Any] | None:
    entry = record["entry_point"]
    fixed = ast.unparse(ast.parse(record["solution"]))
    pool = list(mutants(fixed))
    random.Random(record_seed(record["id"], ctx.config.seed, "pyxr")).shuffle(pool)
    for buggy in pool[:16]:
        fails = [(i, s) for i, s in _failing(buggy, entry, tests, ctx) if s in ("failed", "error")]
        if not fails:
            continue
        test = tests[fails[0][0]]
        trace = checked_trace(buggy, test, ctx, "pyxr.bug", entry=entry)
        if trace is None:  # noted why; the next mutant may do
            continue
        response = annotator_trace.refine_rationale(
            buggy, fixed, test["input"], test["output"], trace, entry=entry, max_steps=ctx.config.max_trace_steps
        )
        return {"buggy": buggy, "failed_test": _test_assertion(entry, test), "response": response}
    return None


def _llm_bug(record: dict[str, Any], tests: list[dict[str, str]], ctx: StageContext) -> dict[str, Any] | None:
    """A bug with its fix, else None, noted once: as ``llm_failed`` without a reply, else as
    ``no_bug_found``."""
    entry = record["entry_point"]
    seed = record_seed(record["id"], ctx.config.seed, "pyxr") % (2**31)
    samples = ctx.llm.samples([{"role": "user", "content": prompts.render("nl2code", record["problem"])}], ctx.config.llm_samples, temperature=0.8, seed=seed)
    if samples is None:  # no reply: counted apart from samples that held no bug
        ctx.note("pyxr.llm_failed")
        return None
    for sample in samples:
        blocks = code_blocks(sample)
        buggy = (blocks[0] if blocks else sample).strip("\n")
        try:
            tree = ast.parse(buggy)
        except SyntaxError:
            continue
        if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry for n in tree.body):
            continue  # a missing or renamed function is not a bug to debug
        from semcoder_jax.execution import Job

        if sandbox_map(ctx, [Job(buggy)])[0].status != "passed":
            continue  # its own example code fails (input(), a wrong assert): every test would, whatever the function
        # As for mutants: a wrong answer or an exception; a timeout may be a slow but correct program.
        fails = [(i, s) for i, s in _failing(buggy, entry, tests, ctx) if s in ("failed", "error")]
        if not fails:
            continue
        # The failed test is the record's execution feedback: it must fail the same way on every run.
        if checked_trace(buggy, tests[fails[0][0]], ctx, "pyxr.bug", entry=entry, need_trace=False) is None:
            continue
        failed_test = _test_assertion(entry, tests[fails[0][0]])
        instruction = prompts.refine_instruction(record["problem"], buggy, failed_test)
        messages = fewshot_messages("refine") + [{"role": "user", "content": prompts.render("refine", instruction)}]
        reply = ctx.llm.chat(messages, seed=seed)
        if reply is None:
            ctx.note("pyxr.llm_failed")
            return None
        response = training_response(reply, "Refined")
        if response:
            return {"buggy": buggy, "failed_test": failed_test, "response": response}
    ctx.note("pyxr.no_bug_found")
    return None


def process(record: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    out = dict(record, refine=[])
    if ctx.config.pyxr == "none":
        return [out]
    tests = record["tests"][: max(1, ctx.config.pyxr_tests)]  # bugs are looked for on these; the fix must pass all
    if ctx.config.pyxr == "mutation":
        bug = _mutation_bug(record, tests, ctx)
        if bug is None:
            ctx.note("pyxr.no_bug_found")
    else:
        bug = _llm_bug(record, tests, ctx)  # notes why it has none
    if bug is None:
        return [out]
    fixed = refined_code(bug["response"])
    if fixed is None or _failing(fixed, record["entry_point"], record["tests"], ctx, timeout_s=ctx.config.exec_timeout_s):
        ctx.note("pyxr.refined_failed")
        return [out]
    out["refine"].append(bug)
    return [out]

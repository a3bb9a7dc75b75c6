"""Forward (output prediction) and backward (input prediction) monologues, verified by execution.

Annotators: ``builtin`` (from the real trace, see ``annotator_trace``) or ``llm`` (rejection
sampling with few-shot examples). Either way a monologue is kept only if its ``[ANSWER]`` assertion
passes in the sandbox and keeps the given input (forward) or output (backward), and only if the call
it states passes the determinism check (``checked_trace``; the built-in annotator writes from that
checked trace). A function without parameters gets no backward task (its only input is ``f()``),
counted in the stage's notes.
"""

from __future__ import annotations

import ast
import random
import re
from pathlib import Path
from typing import Any

from data_pipeline.stages import annotator_trace
from data_pipeline.stages.base import InfrastructureError, Reject, StageContext, record_seed, sandbox_map
from semcoder_jax import prompts

FEWSHOT_DIR = Path(__file__).resolve().parent.parent / "assets" / "fewshot"
_ANSWER = re.compile(r"\[ANSWER\]\s*(.*?)\s*\[/ANSWER\]", re.DOTALL)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_FunctionDef(self, node):
        if node.name == self.old:
            node.name = self.new
        self.generic_visit(node)
        return node

    def visit_Name(self, node):
        if node.id == self.old:
            node.id = self.new
        return node


def as_f(solution: str, entry: str) -> str:
    """The solution with its entry point renamed to ``f``, as execution prompts call it."""
    if entry == "f":
        return ast.unparse(ast.parse(solution))
    return ast.unparse(_Rename(entry, "f").visit(ast.parse(solution)))


def takes_no_arguments(code: str) -> bool:
    """``f`` of ``code`` has no parameters at all (not even ``*args``): ``f()`` is its only call."""
    fn = next((n for n in ast.parse(code).body if isinstance(n, ast.FunctionDef) and n.name == "f"), None)
    if fn is None:
        return False
    a = fn.args
    return not (a.posonlyargs or a.args or a.kwonlyargs or a.vararg or a.kwarg)


def extract_answer(response: str) -> str | None:
    m = _ANSWER.search(response)
    return m.group(1).strip() if m else None


def training_response(sample: str, block: str = "ANSWER") -> str | None:
    """An LLM sample in the training target's layout, ``[MONOLOGUE] … [/MONOLOGUE]`` then
    ``[ANSWER] … [/ANSWER]`` (PYX-R: ``[Refined]``) and nothing around them (evaluation prompts end
    with ``[MONOLOGUE]``, so a preamble or a postscript would be learnt as part of the answer);
    None without reasoning."""
    tag = re.escape(block)
    m = re.search(rf"\[MONOLOGUE\](.*?)\[/MONOLOGUE\]\s*\[{tag}\].*?\[/{tag}\]", sample, re.DOTALL)
    if m is None or not m.group(1).strip():
        return None
    return m.group(0)


def answer_parts(answer: str) -> tuple[str, str] | None:
    """(input text, output text) of ``assert f(<input>) == <output>``."""
    try:
        node = ast.parse(answer).body
    except SyntaxError:
        return None
    if len(node) != 1 or not isinstance(node[0], ast.Assert):
        return None
    test = node[0].test
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    call = test.left
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "f"):
        return None
    args = [ast.get_source_segment(answer, a) for a in call.args]
    args += [f"{'**' if k.arg is None else k.arg + '='}{ast.get_source_segment(answer, k.value)}" for k in call.keywords]
    return ", ".join(args), ast.get_source_segment(answer, test.comparators[0])


def _same_expr(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a, mode="eval")) == ast.dump(ast.parse(b, mode="eval"))
    except SyntaxError:
        return False


def _typed(value: Any) -> Any:
    """A hashable form of a literal that keeps types (``1``, ``1.0`` and ``True`` differ)."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_typed(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((_typed(k), _typed(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return (type(value).__name__, frozenset(_typed(v) for v in value))
    return (type(value).__name__, value)


def same_literal(a: str, b: str) -> bool:
    """Both texts are Python literals with the same value and the same types throughout."""
    try:
        return _typed(ast.literal_eval(a)) == _typed(ast.literal_eval(b))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def answer_acceptable(kind: str, response: str, test: dict[str, str]) -> str | None:
    """The assertion to execute if the response's answer keeps the given side fixed, else None.

    A forward answer must also state the real output as a literal (typed equality with the
    recorded output): ``assert f(2) == f(2)`` or ``== 4.0`` for ``4`` would pass ``==`` in the sandbox.
    """
    answers = _ANSWER.findall(response)
    if len(answers) != 1:  # none, or several (possibly different) answers
        return None
    parts = answer_parts(answers[0].strip())
    if parts is None:
        return None
    inp, out = parts
    if kind == "forward" and not (_same_expr(f"f({inp})", f"f({test['input']})") and same_literal(out, test["output"])):
        return None
    if kind == "backward" and not _same_expr(out, test["output"]):
        return None
    return answers[0].strip()


def verify(code: str, assertions: list[str], ctx: StageContext) -> list[bool]:
    from semcoder_jax.execution import Job

    results = sandbox_map(ctx, [Job(code + "\n" + a) for a in assertions])
    return [r.status == "passed" for r in results]


def fewshot_messages(kind: str) -> list[dict[str, str]]:
    """Worked examples (``assets/fewshot/<kind>.md``: prompt, ``-----``, response; ``=====`` between)."""
    path = FEWSHOT_DIR / f"{kind}.md"
    if not path.exists():
        return []
    messages = []
    for block in path.read_text(encoding="utf-8").split("\n=====\n"):
        prompt, _, response = block.partition("\n-----\n")
        messages += [{"role": "user", "content": prompt.strip()}, {"role": "assistant", "content": response.strip()}]
    return messages


def _llm_monologue(kind: str, code: str, test: dict[str, str], ctx: StageContext, seed: int) -> str | None:
    """The first sample whose answer passes, else None, noted once: as ``llm_failed`` without a
    reply, else as the kind's ``rejected``."""
    instruction = prompts.execution_instruction(code, **({"input": test["input"]} if kind == "forward" else {"output": test["output"]}))
    messages = fewshot_messages(kind) + [{"role": "user", "content": prompts.render(kind, instruction)}]
    samples = ctx.llm.samples(messages, ctx.config.llm_samples, temperature=0.8, seed=seed % (2**31))
    if samples is None:  # no reply: counted apart from samples that were wrong
        ctx.note("monologue.llm_failed")
        return None
    response = _first_passing(kind, code, test, samples, ctx)
    if response is None:
        ctx.note(f"monologue.{kind}_rejected")
    return response


def _first_passing(kind: str, code: str, test: dict[str, str], samples: list[str], ctx: StageContext) -> str | None:
    responses = [r for r in map(training_response, samples) if r is not None]
    candidates = [(r, answer_acceptable(kind, r, test)) for r in responses]
    candidates = [(r, a) for r, a in candidates if a is not None]
    if not candidates:
        return None
    ok = verify(code, [a for _, a in candidates], ctx)
    for (s, _), passed in zip(candidates, ok):
        if passed:
            return s.strip()
    return None


def checked_trace(code: str, test: dict[str, str], ctx: StageContext, prefix: str, *, entry: str = "f",
                  need_trace: bool = True) -> Any | None:
    """The trace of ``entry(<test input>)`` that the determinism check compared (no other trace may
    become training text), else None, noted as ``<prefix>_nondeterministic`` (another hash seed or
    identity order gives another result or trace, or the call reads the clock, randomness, …),
    ``<prefix>_determinism_timeout`` (a run of the check timed out and nothing else was found) or, with
    ``need_trace``, ``<prefix>_trace_unusable`` (the traced run is not the untraced one: the tracer
    stopped at the recursion limit, or the call ends otherwise traced)."""
    from semcoder_jax.execution import check_determinism

    report = check_determinism(code, f"{entry}({test['input']})", sandbox=ctx.sandbox, max_repr=ctx.config.max_repr)
    if report.sandbox_failure is not None:
        raise InfrastructureError(f"sandbox failure: {report.sandbox_failure}")
    if report.only_timed_out:
        ctx.note(f"{prefix}_determinism_timeout")
        return None
    if not report.deterministic:
        ctx.note(f"{prefix}_nondeterministic")
        return None
    if need_trace and not report.trace_usable:
        ctx.note(f"{prefix}_trace_unusable")
        return None
    return report.trace


def _builtin_monologue(kind: str, code: str, test: dict[str, str], trace: Any, ctx: StageContext) -> str | None:
    if trace.return_repr != test["output"]:
        return None
    if kind == "forward":
        return annotator_trace.forward_monologue(code, test["input"], trace, max_steps=ctx.config.max_trace_steps)
    return annotator_trace.backward_monologue(code, test["input"], test["output"], trace, max_steps=ctx.config.max_trace_steps)


def process(record: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    cfg = ctx.config
    code = as_f(record["solution"], record["entry_point"])
    tests = list(record["tests"])
    rng = random.Random(record_seed(record["id"], cfg.seed, "monologue"))
    order = rng.sample(range(len(tests)), len(tests))
    out = dict(record, code=code, forward=[], backward=[])
    wanted = {"forward": cfg.forward_per_problem, "backward": cfg.backward_per_problem}
    if wanted["backward"] and takes_no_arguments(code):  # its one input is the empty call: nothing to deduce
        ctx.note("monologue.backward_skipped_no_parameters", wanted["backward"])
        wanted["backward"] = 0
    pos = 0
    for kind in ("forward", "backward"):
        for done in range(wanted[kind]):
            if pos >= len(order):
                ctx.note(f"monologue.{kind}_no_test_left", wanted[kind] - done)
                break
            test = tests[order[pos]]
            pos += 1
            # The stages before checked one call of the solution as written; this is ``code`` (renamed,
            # reformatted: other line numbers) on this test, whose execution the monologue states.
            trace = checked_trace(code, test, ctx, f"monologue.{kind}", need_trace=cfg.annotator != "llm")
            if trace is None:  # noted why
                continue
            if cfg.annotator == "llm":  # notes why it has none
                response = _llm_monologue(kind, code, test, ctx, record_seed(record["id"], cfg.seed, f"{kind}{pos}"))
            else:
                response = _builtin_monologue(kind, code, test, trace, ctx)
                if response is not None:
                    answer = answer_acceptable(kind, response, test)
                    if answer is None or not verify(code, [answer], ctx)[0]:
                        response = None
                if response is None:
                    ctx.note(f"monologue.{kind}_rejected")
            if response is None:
                continue
            out[kind].append({"input": test["input"], "output": test["output"], "response": response})
    if not out["forward"] and not out["backward"]:
        ctx.note("monologue.problems_without_monologue")
    return [out]

"""Iterative self-refinement (the paper's Table 3): after the first generation, every problem that
still fails gets the refine prompt in the PYX-R training format (problem, current code, first failing
test as ``assert f(args) == expected``, optionally the tracer's view of the failing run), up to
``refine_rounds`` times, sampled as SemCoder's ``eval_finetune_refine.sh`` does (temperature 0.6 on
HumanEval, 0.8 otherwise, top-p 0.95, 512 new tokens); pass@1 is recorded after each round. The
reference solution never enters a prompt: expected outputs are shown, as a test report would show them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from eval.cache import GenerationCache
from eval.runner import GENERATIONS_FILE, generate_cached, generation_settings
from semcoder_jax import prompts as P

REFINABLE = ("humaneval", "mbpp", "lcb-lite")
REFINED_STOP = "[/Refined]"
# How the harnesses mark a value they show shortened (``_short`` in harness_evalplus.py / harness_lcb.py).
SHORTENED = {"humaneval": " ... ", "mbpp": " ... ", "lcb-lite": "...(truncated) ..."}


def passed(benchmark: str, detail: dict) -> bool:
    return bool(detail["plus_pass"] if benchmark in ("humaneval", "mbpp") else detail["passed"])


def problem_text(benchmark: str, problem: Any) -> str:
    if benchmark == "lcb-lite":
        starter = f"\n\n```python\n{problem.starter_code}\n```" if problem.starter_code else ""
        return problem.question_content + starter
    return problem.prompt


def failure_text(benchmark: str, problem: Any, code: str, detail: dict, with_trace: bool = False) -> str:
    """The failed test as PYX-R records show it, ``assert f(args) == expected``; without a failing
    input (the program did not load), or for stdin problems, what the test report says."""
    f = detail.get("failure") or {}
    if benchmark == "lcb-lite":
        f = detail
    lines = []
    call = _call(benchmark, problem, code, f)
    expected = _expected(benchmark, f.get("expected"))
    if call and expected is not None:
        lines.append(f"assert {call} == {expected}")
    else:
        if f.get("inputs") or f.get("input"):
            lines.append(f"Input: {f.get('inputs') or f.get('input')}")
        if f.get("expected") is not None:
            lines.append(f"Expected output: {f['expected']}")
        if f.get("output") is not None:
            lines.append(f"Actual output: {f['output']}")
        err = f.get("error") or (f.get("error_message") if benchmark == "lcb-lite" else "")
        if err:
            lines.append(f"Error: {err}")
    if with_trace and benchmark in ("humaneval", "mbpp") and f.get("input") and " ... " not in f["input"]:
        trace = _trace(code, f"{problem.entry_point}(*{f['input']})")
        if trace:
            lines.append(f"[Trace]\n{trace}\n[/Trace]")
    return "\n".join(lines) or "The code fails the tests."


def _call(benchmark: str, problem: Any, code: str, f: dict) -> str | None:
    """``entry(args)`` of the failing input in Python, or None for stdin problems, load failures and
    inputs shown shortened (`` ... ``), which no call could spell."""
    if benchmark in ("humaneval", "mbpp"):
        args = f.get("input")  # the repr of the argument list
        return f"{problem.entry_point}({args[1:-1]})" if args and args[0] in "[(" and SHORTENED[benchmark] not in args else None
    if benchmark == "lcb-lite" and problem.func_name and f.get("inputs") is not None and SHORTENED[benchmark] not in f["inputs"]:
        args = [_json_as_python(line) for line in f["inputs"].split("\n")]  # one JSON argument a line
        if None in args:
            return None
        owner = "Solution()." if "class Solution" in code else ""  # as the LCB harness calls it
        return f"{owner}{problem.func_name}({', '.join(args)})"
    return None


def _expected(benchmark: str, expected: str | None) -> str | None:
    """The expected value as Python: LCB's functional outputs are JSON (true, null), which the
    assertion would show as names. None when shown shortened: a shortened string is still a
    literal, and the assertion would state a test that does not exist."""
    if expected is None or SHORTENED[benchmark] in expected:
        return None
    if benchmark != "lcb-lite":
        return expected
    return _json_as_python(expected)


def _json_as_python(text: str) -> str | None:
    """A JSON value spelled as a Python literal (``true`` -> ``True``); None when it is not JSON
    (a value shown shortened)."""
    try:
        return repr(json.loads(text))
    except ValueError:
        return None


def _trace(code: str, call: str) -> str | None:
    try:
        from semcoder_jax.execution import render_concise, trace_call

        return render_concise(code, trace_call(code, call))
    except Exception:  # noqa: BLE001 - the trace is optional feedback
        return None


def extract_refined(completion: str) -> str | None:
    """The code of a ``[Refined]`` section (PYX-R's layout) or, without one, of the first ```` ```python ````
    block, as SemCoder's ``run_refine_evalplus.py`` reads it; None where there is neither."""
    text = completion.split(REFINED_STOP)[0]
    if "[Refined]" in text:
        code = text.split("[Refined]", 1)[1]
        fence = re.search(r"```[\w+-]*[ \t]*\r?\n(.*?)(?:```|$)", code, re.S)  # any language tag: ```py as PYX-R allows
        return (fence.group(1) if fence else code).strip("\n")
    fence = re.search(r"```python[ \t]*\r?\n(.*?)(?:```|$)", text, re.S)
    return fence.group(1).strip("\n") if fence else None


def refine(
    cfg: Any,
    problems: list,
    backend: Any,
    samples: dict[str, list[str]],
    first: Any,
    out_dir: Path,
    *,
    sandbox: Any = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """``{"pass@1": [round 0, round 1, ...], "refined": [problems refined per round]}``."""
    from eval.scoring import score
    from eval.scoring.sanitize import sanitize

    bench = cfg.benchmark
    if bench not in REFINABLE:
        raise ValueError(f"self-refinement is defined for {', '.join(REFINABLE)}, not {bench}")
    by_id = {p.task_id: p for p in problems}
    code = {t: s[0] for t, s in samples.items()}
    detail = {t: d[0] for t, d in first.details.items()}
    history = [_pass1(bench, detail)]
    refined_counts = []
    for rnd in range(1, cfg.refine_rounds + 1):
        failing = [t for t in code if not passed(bench, detail[t])]
        refined_counts.append(len(failing))
        if not failing:
            history.append(history[-1])
            continue
        prompts = {
            t: P.render("refine", P.refine_instruction(
                problem_text(bench, by_id[t]).strip(), code[t].strip(),
                failure_text(bench, by_id[t], code[t], detail[t], cfg.refine_with_trace),
            ))
            for t in failing
        }
        sampling = dict(n=1, temperature=cfg.refine_sampling_temperature, top_p=cfg.refine_top_p, top_k=0,
                        max_new_tokens=cfg.refine_max_new_tokens)
        cache = GenerationCache.for_run(out_dir / GENERATIONS_FILE, backend.identity(), generation_settings(
            cfg, refine_round=rnd, **sampling))
        # Seeds of their own: the first generation used seed .. seed + N*n - 1, round r the r-th range after it.
        outs = generate_cached(
            backend, prompts, cache, **sampling, stop=(REFINED_STOP,),
            seed=cfg.generation.seed + rnd * len(problems) * cfg.generation.n, batch_size=cfg.generation.batch_size,
        )
        new = {}
        for t in failing:
            body = extract_refined(outs[t][0])
            if body is None:
                continue
            if bench in ("humaneval", "mbpp"):
                imports = [ln for ln in by_id[t].prompt.splitlines() if ln.startswith(("import ", "from "))]
                body = "\n".join(imports + [sanitize(body, by_id[t].entry_point) or body])
            new[t] = body
        if new:
            res = score(bench, [by_id[t] for t in new], {t: [c] for t, c in new.items()}, sandbox=sandbox)
            for t, c in new.items():
                code[t], detail[t] = c, res.details[t][0]
        history.append(_pass1(bench, detail))
        log(f"refine round {rnd}: pass@1 {history[-1]:.1f}")
    return {"pass@1": history, "refined": refined_counts}


def _pass1(bench: str, detail: dict[str, dict]) -> float:
    return 100.0 * sum(passed(bench, d) for d in detail.values()) / max(1, len(detail))

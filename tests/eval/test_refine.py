"""Iterative self-refinement: rounds, cache keys, and the PYX-R prompt the model was trained on."""

import json
import pytest
from eval.config import EvalConfig
from eval.runner import run_eval


def test_refinement_rounds_improve_and_never_show_the_reference(tmp_path, sandbox, gt_cache, scripted_backend):
    from eval.benchmarks import load_problems

    problems = {p.task_id: p for p in load_problems("humaneval")[:3]}
    seen = []

    def answer(prompt):
        seen.append(prompt)
        if prompt.startswith("Debug and Refine"):
            for p in problems.values():
                if p.prompt.strip() in prompt:
                    return f"The bug is ...\n[Refined]\n```python\n{p.prompt}{p.canonical_solution}```\n"
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=3, refine_rounds=2)
    res = run_eval(cfg, scripted_backend(answer), tmp_path, sandbox=sandbox)
    assert res["refine"]["pass@1"] == [0.0, 100.0, 100.0]
    assert res["refine"]["refined"] == [3, 0]
    refine_prompts = [s for s in seen if s.startswith("Debug and Refine")]
    assert len(refine_prompts) == 3 and all("### Failed Test\n```python\nassert " in s for s in refine_prompts)
    for p in problems.values():
        body = p.canonical_solution.strip()
        assert all(body not in s for s in seen)


def test_refinement_cache_is_keyed_by_the_refinement_token_budget(tmp_path, sandbox, gt_cache, scripted_backend):
    # A rerun with a larger refine_max_new_tokens must not be served the truncated refinements of a
    # smaller budget from generations.jsonl.
    from eval.benchmarks import load_problems

    p = load_problems("humaneval")[0]
    budgets = []

    class Budgeted(scripted_backend):
        def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0):
            if prompts[0].startswith("Debug and Refine"):
                budgets.append(max_new_tokens)
            return super().generate(prompts, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=stop, seed=seed)

    def answer(prompt):
        if prompt.startswith("Debug and Refine"):
            code = f"{p.prompt}{p.canonical_solution}" if budgets[-1] >= 1024 else p.prompt + "    return"
            return f"[Refined]\n```python\n{code}```\n"
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=1, refine_rounds=1, refine_max_new_tokens=16)
    assert run_eval(cfg, Budgeted(answer), tmp_path, sandbox=sandbox)["refine"]["pass@1"] == [0.0, 0.0]
    cfg.refine_max_new_tokens = 1024
    assert run_eval(cfg, Budgeted(answer), tmp_path, sandbox=sandbox)["refine"]["pass@1"] == [0.0, 100.0]
    assert budgets == [16, 1024]


def test_refinement_prompt_is_the_pyx_r_training_format(tmp_path, sandbox, gt_cache, scripted_backend):
    # The refine model is trained on PYX-R records in the layout of SemCoder's run_refine_evalplus.py
    # ("### Problem / ### Buggy Solution / ### Failed Test" with an assertion); evaluation must ask in that format.
    from eval.benchmarks import load_problems
    from semcoder_jax import prompts as P

    p = load_problems("humaneval")[0]
    seen = []

    def answer(prompt):
        seen.append(prompt)
        return "    return None\n"

    cfg = EvalConfig(benchmark="humaneval", limit=1, refine_rounds=1)
    run_eval(cfg, scripted_backend(answer), tmp_path, sandbox=sandbox)
    code = json.loads((tmp_path / "samples.jsonl").read_text())["solution"]
    failed = "assert has_close_elements([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True"
    instruction = (f"### Problem\n{p.prompt.strip()}\n\n### Buggy Solution\n```python\n{code.strip()}\n```\n\n"
                   f"### Failed Test\n```python\n{failed}\n```\n")
    assert seen[1] == P.REFINE_TEMPLATE.format(instruction=instruction, response="")


@pytest.mark.parametrize("fence", ["```python", "```py", "```Python ", "```"])
def test_refined_code_is_read_whatever_the_fence_language_tag(fence):
    from eval.refine import extract_refined

    text = f"The bug ...\n[Refined]\n{fence}\ndef f(x):\n    return x + 1\n```\n"
    assert extract_refined(text) == "def f(x):\n    return x + 1"


def test_refinement_shows_the_failed_test_as_python_the_model_could_run():
    """LCB inputs are JSON lines (true, null) and LeetCode methods live on Solution; shortened
    inputs cannot be spelled as a call and stay a report."""
    import types

    from eval.refine import failure_text

    lcb = types.SimpleNamespace(func_name="pick")
    code = "class Solution:\n    def pick(self, xs, flag, other):\n        return xs[0]\n"
    detail = {"inputs": "[1, 2]\ntrue\nnull", "expected": "2", "output": "1"}
    assert failure_text("lcb-lite", lcb, code, detail) == "assert Solution().pick([1, 2], True, None) == 2"
    he = types.SimpleNamespace(entry_point="f")
    long = {"failure": {"input": "[[1, 2, ... , 9]]", "expected": "3", "output": "1"}}
    assert failure_text("humaneval", he, "def f(xs): return 1", long).splitlines()[0] == "Input: [[1, 2, ... , 9]]"


def test_lcb_expected_json_output_is_shown_as_python():
    # LCB functional outputs are JSON: `== true` / `== [null]` in the assertion would be NameErrors
    # in the failed test the model is asked to make pass.
    import types

    from eval.refine import failure_text

    lcb = types.SimpleNamespace(func_name="pick")
    code = "class Solution:\n    def pick(self, xs):\n        return False\n"
    assert failure_text("lcb-lite", lcb, code, {"inputs": "[1, 2]", "expected": "true", "output": "False"}) \
        == "assert Solution().pick([1, 2]) == True"
    assert failure_text("lcb-lite", lcb, code, {"inputs": "[1]", "expected": '[null, "a"]', "output": "[]"}) \
        == "assert Solution().pick([1]) == [None, 'a']"
    cut = failure_text("lcb-lite", lcb, code, {"inputs": "[1]", "expected": "[1, ...(truncated) ... 2]", "output": "[]"})
    assert "assert" not in cut and "Expected output: [1, ...(truncated) ... 2]" in cut


@pytest.mark.parametrize("bench, temperature", [("humaneval", 0.6), ("mbpp", 0.8)])
def test_refinement_samples_as_semcoder_with_seeds_of_its_own(tmp_path, sandbox, gt_cache, scripted_backend, bench, temperature):
    """SemCoder's eval_finetune_refine.sh samples each refinement (0.6 on HumanEval, 0.8 on MBPP, top-p 0.95,
    512 tokens); every round draws seeds the first generation and the other rounds do not use."""
    calls = []

    class Recording(scripted_backend):
        def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0):
            calls.append((prompts[0].startswith("Debug and Refine"), temperature, top_p, max_new_tokens,
                          [seed + i * n + j for i in range(len(prompts)) for j in range(n)]))
            return super().generate(prompts, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                    stop=stop, seed=seed)

    cfg = EvalConfig(benchmark=bench, limit=3, refine_rounds=2)
    cfg.generation.seed = 11
    run_eval(cfg, Recording(lambda p: "    return None\n"), tmp_path, sandbox=sandbox)
    refine_calls = [c for c in calls if c[0]]
    assert len(refine_calls) == 2 and {c[1:4] for c in refine_calls} == {(temperature, 0.95, 512)}
    seeds = [s for c in calls for s in c[4]]
    assert len(seeds) == len(set(seeds)) == 3 + 3 + 3


def test_refined_code_without_a_refined_section_is_the_first_python_block_as_semcoder_reads_it():
    from eval.refine import extract_refined

    assert extract_refined("The fix:\n```python\ndef f(x):\n    return x\n```\nmore ```python\nx\n```") == "def f(x):\n    return x"
    assert extract_refined("[MONOLOGUE]\nNo code at all.") is None


def test_a_shortened_string_is_never_stated_as_an_assertion():
    # A long string shown shortened is still a valid literal: asserting it would state a test that
    # does not exist, so the failure stays a report.
    import types

    from eval.refine import failure_text

    lcb = types.SimpleNamespace(func_name="pick")
    code = "class Solution:\n    def pick(self, s, k):\n        return ''\n"
    cut_in = failure_text("lcb-lite", lcb, code, {"inputs": '"abab...(truncated) ...abab"\n3', "expected": '"x"', "output": "''"})
    assert "assert" not in cut_in and 'Input: "abab...(truncated) ...abab"' in cut_in
    cut_out = failure_text("lcb-lite", lcb, code, {"inputs": '"ab"\n3', "expected": '"xy...(truncated) ...xy"', "output": "''"})
    assert "assert" not in cut_out and 'Expected output: "xy...(truncated) ...xy"' in cut_out
    he = types.SimpleNamespace(entry_point="f")
    long = {"failure": {"input": "['a']", "expected": "'zzzz ... zzzz'", "output": "'q'"}}
    text = failure_text("humaneval", he, "def f(s): return 'q'", long)
    assert "assert" not in text and "Expected output: 'zzzz ... zzzz'" in text

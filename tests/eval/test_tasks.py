"""Benchmark prompts, stop strings and answer extraction follow SemCoder and the official harnesses."""

import pytest
from eval.tasks import build_prompt, stop_strings, to_sample
from semcoder_jax import prompts as P


def test_cruxeval_output_prompt_is_semcoders_forward_format():
    code = "def f(s):\n\n    return s + 'a'"
    prompt = P.cruxeval_output_prompt(code, "'x'")
    assert prompt.startswith(P.FORWARD_TEMPLATE.split("{instruction}")[0])
    assert prompt.endswith('[PYTHON]\ndef f(s): # [L5]\n\n    return s + "a" # [L7]\nassert f("x") == ??\n[/PYTHON]\n[MONOLOGUE]\n')
    assert "'" not in prompt.split("[PYTHON]")[1]
    assert "'a'" in P.cruxeval_output_prompt(code, "'x'", quotes=False)


def test_cruxeval_input_prompt_is_semcoders_backward_format():
    prompt = P.cruxeval_input_prompt("def f(x):\n    return x", "'b'")
    assert prompt.startswith("Deduce the Semantic Constraints:")
    assert prompt.endswith('[PYTHON]\ndef f(x):\n    return x\nassert f(??) == "b"\n[/PYTHON]\n[MONOLOGUE]\n')


def test_baseline_prompts_are_the_official_ones():
    direct = P.cruxeval_output_prompt("def f(n):\n    return n", "3", style="direct", quotes=False)
    assert direct.endswith("[PYTHON]\ndef f(n):\n    return n\nassert f(3) == ??\n[/PYTHON]\n[ANSWER]\n")
    assert "assert f(\"x9j\") == \"x9ja\"" in direct
    cot = P.cruxeval_input_prompt("def f(x):\n    return x", "1", style="cot", quotes=False)
    assert cot.endswith("assert f(??) == 1\n[/PYTHON]\n[THOUGHT]\n")
    lcb = P.lcb_generation_prompt("Q?", "", style="generic")
    assert "### Question:\nQ?" in lcb and lcb.endswith("### Answer: (use the provided format with backticks)\n\n")


@pytest.mark.parametrize(
    "text,mode,expected",
    [
        ('steps...\n[ANSWER]\nassert f("a") == "ab"\n', "output", '"ab"'),
        ("[ANSWER]\nassert f([1, 2]) == [2]\n", "input", "f([1, 2])"),
        ("assert f(1) == 2\n[/ANSWER]\ntrailing == junk", "output", "2"),
        ("no answer at all", "output", "no answer at all"),
    ],
)
def test_extract_answer(text, mode, expected):
    assert P.extract_answer(text, mode) == expected


def test_quote_round_trip_in_samples():
    from eval.benchmarks.cruxeval import CruxProblem

    p = CruxProblem("sample_0", "def f(s):\n    return s + 'a'", "'x'", "'xa'")
    prompt = build_prompt("cruxeval-o", p)
    assert '"x"' in prompt and stop_strings("cruxeval-o") == ("[/ANSWER]",)
    assert to_sample("cruxeval-o", p, '...[ANSWER]\nassert f("x") == "xa"\n') == "'xa'"
    assert to_sample("cruxeval-o", p, '[ANSWER]\nassert f("x") == "xa"\n', quotes=False) == '"xa"'


def test_humaneval_prompt_and_sample_follow_semcoder():
    from eval.benchmarks import load_problems

    p = load_problems("humaneval")[0]
    prompt = build_prompt("humaneval", p)
    assert prompt.startswith("You are an exceptionally intelligent coding assistant")
    assert prompt.endswith("<Code>\n```python\n" + p.prompt.strip())
    sample = to_sample("humaneval", p, p.canonical_solution + "```\n\nprint('extra')")
    assert sample.startswith("from typing import List") and "print('extra')" not in sample
    mbpp = load_problems("mbpp")[0]
    assert build_prompt("mbpp", mbpp).endswith("Your code should satisfy the following assertion:\n```python\nassert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n```\n\n<Code>\n```python")


EVALPLUS_EOS = ["<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint("]


EVALPLUS_DIRECT_STOPS = {
    "humaneval": EVALPLUS_EOS + ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "],
    "mbpp": EVALPLUS_EOS + ['\n"""', "\nassert"],
}


@pytest.mark.parametrize("dataset", ["humaneval", "mbpp"])
def test_plain_style_stops_are_evalplus_direct_completion_stops(dataset):
    # A HumanEval completion stops at the next top-level def, as EvalPlus's codegen does: a helper the
    # model writes after the function is not part of the solution.
    assert sorted(stop_strings(dataset, "plain")) == sorted(EVALPLUS_DIRECT_STOPS[dataset])
    utility = pytest.importorskip("evalplus.provider.utility")
    assert utility.EOS + utility.extra_eos_for_direct_completion(dataset) == EVALPLUS_DIRECT_STOPS[dataset]


@pytest.mark.parametrize(
    "completion,style,expected",
    [
        # lcb_runner reads the stretch between the first two `==` up to [/ANSWER], else its first line
        ("[ANSWER]\nassert f(1) == 1\nassert f(2) == 2\n", "semcoder", "1"),
        ("[ANSWER]\nassert f(1) == [1,\n 2]\n", "semcoder", "[1,\n 2]"),
        ("assert f(1) == 3\n", "direct", "3"),
        # a raw lcb_runner output (generated past the tag to its `###` stop)
        ("steps\n[/THOUGHT]\n[ANSWER]\nassert f(1) == {1: 2,\n 3: 4}\n[/ANSWER]\n\n[PYTHON]\nassert g() == 5", "cot", "{1: 2,\n 3: 4}"),
        # cut by the token limit, no closing tag: lcb_runner reads the first line only
        ("assert f(1) == [1,\n 2, 3", "direct", "[1,"),
        ("[ANSWER]\nassert f(1) == [1,\n 2, 3", "semcoder", "[1,"),
        ("The call gives f(1) == 3\nThen the loop", "cot", "3"),
        ("The call gives f(1) == 3\nThen the loop\n", "cot", "3"),  # a chain of thought with no [ANSWER] never closed one
    ],
)
def test_lcb_exec_answers_are_read_as_lcb_runner_reads_them(completion, style, expected):
    """A completion cut at [/ANSWER] with a second assertion in it used to give `1\\nassert f(2)`
    (a syntax error, so a failure) where lcb_runner reads `1`; one cut by the token limit was read to
    its end as if closed, where lcb_runner reads its first line."""
    assert to_sample("lcb-exec", None, completion, style=style, quotes=False) == expected


def test_raw_completions_are_read_for_scoring_as_eval_run_reads_them(tmp_path):
    """`eval score` on raw completions swaps quotes back as `eval run` does for SemCoder's double-quoted
    prompts (and SemCoder's process_cruxeval.py on every raw generation): it used not to."""
    import json

    from eval.benchmarks import load_problems
    from eval.samples_io import read_samples

    problems = load_problems("cruxeval-o")[:3]
    path = tmp_path / "raw.jsonl"
    rows = [{"task_id": p.task_id, "completion": f'[ANSWER]\nassert f({P.double_quotes(p.input)}) == {P.double_quotes(p.output)}\n'}
            for p in problems]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for style, quotes in (("semcoder", None), ("direct", None), ("semcoder", False), ("direct", True)):
        read = read_samples(path, "cruxeval-o", problems, style=style, quotes=quotes)
        swap = style == "semcoder" if quotes is None else quotes
        assert read == {r["task_id"]: [to_sample("cruxeval-o", p, r["completion"], style, swap)] for r, p in zip(rows, problems)}
    assert read_samples(path, "cruxeval-o", problems) == {p.task_id: [p.output] for p in problems}


def test_raw_lcb_lite_completions_are_read_for_scoring_as_eval_run_reads_them(tmp_path):
    """`eval score --prompt-style generic` took LCB's fenced raw answer as the program itself (a
    syntax error, so a failure) where `eval run` grades the code between the fences."""
    import json

    from eval.benchmarks.livecodebench import LcbGenerationProblem, LcbTest
    from eval.samples_io import read_samples

    p = LcbGenerationProblem("q1", "t", "Print 1.", "atcoder", "2023-08-21", "easy", "", [LcbTest("", "1\n", "stdin")], None)
    path = tmp_path / "raw.jsonl"
    path.write_text(json.dumps({"task_id": "q1", "completion": "Here:\n```python\nprint(1)\n```\n"}) + "\n")
    assert read_samples(path, "lcb-lite", [p], style="generic") == {"q1": ["print(1)"]}
    path.write_text(json.dumps({"task_id": "q1", "completion": "print(1)\n"}) + "\n")  # semcoder: the code up to any fence
    assert read_samples(path, "lcb-lite", [p]) == {"q1": ["print(1)\n"]}


def test_plain_prompt_is_evalplus_direct_completion_prompt():
    """The plain style gave a base model the raw prompt, blank lines first for 141 HumanEval tasks,
    where EvalPlus 0.3.1's codegen gives ``prompt.strip() + "\\n"`` (and its solution continues that)."""
    from eval.benchmarks import load_problems

    p = load_problems("humaneval")[2]
    assert p.prompt.startswith("\n")
    prompt = build_prompt("humaneval", p, "plain")
    assert prompt == p.prompt.strip() + "\n"
    completion = "    return number % 1.0\n"
    assert to_sample("humaneval", p, completion, "plain", sanitize=False) == prompt + completion

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

"""Parsing the LLM's synthesised problems: sections, example calls, the entry point."""

import pytest
from data_pipeline.stages import Reject, synthesis


def test_parse_synthesis_reply():
    reply = ("[Problem Description]\nDouble a number.\n\n[Solution]\nMultiply by two.\n```python\ndef dbl(x):\n    return 2 * x\n```\n"
             "[Example Calls]\ndbl(3)\ndbl(-1)\nprint(1)\n")
    out = synthesis.parse_synthesis_reply(reply)
    assert out["problem"] == "Double a number."
    assert out["entry_point"] == "dbl" and out["seed_inputs"] == ["3", "-1"]
    assert synthesis.parse_synthesis_reply("no sections here") is None



@pytest.mark.parametrize("h", ["### [{}]", "**[{}]**", "**[{}]:**", "## **[{}]**"])
def test_markdown_around_section_headers_stays_out_of_the_sections(h):
    """LLMs often write ``### [Solution]`` or ``**[Solution]**``: the ``###``/``**`` ended up in the
    problem (the nl2code instruction) and the solution text (its response)."""
    reply = (f"{h.format('Problem Description')}\nDouble a number.\n\n{h.format('Solution')}\nMultiply by two.\n"
             f"```python\ndef dbl(x):\n    return 2 * x\n```\n\n{h.format('Example Calls')}\ndbl(3)\n")
    out = synthesis.parse_synthesis_reply(reply)
    assert out["problem"] == "Double a number."
    assert out["response"] == "Multiply by two.\n```python\ndef dbl(x):\n    return 2 * x\n```"
    assert out["seed_inputs"] == ["3"]

def test_call_arguments_ignore_a_trailing_comment():
    assert synthesis.call_arguments("dbl(3)  # -> (6)", "dbl") == "3"
    assert synthesis.call_arguments(">>> dbl([1, (2)])  # gives (2, 4)", "dbl") == "[1, (2)]"
    assert synthesis.call_arguments('dbl("é)")', "dbl") == '"é)"'


@pytest.mark.parametrize("calls", ["sum_primes([1, 2, 3])\nsum_primes([4])\n",
                                   "```python\nprint(sum_primes([1, 2, 3]))  # 5\n>>> print(sum_primes([4]))\nprint(len([1]))\n```\n",
                                   "- sum_primes([1, 2, 3])\n* `sum_primes([4])` gives 0\n",
                                   "1. `sum_primes([1, 2, 3])`\n2) sum_primes([4])  # 0\n"],
                         ids=["bare", "printed", "bullets", "numbered"])
def test_synthesis_entry_point_is_the_function_the_example_calls_call(calls):
    """Example calls as written, inside ``print(...)`` or as a markdown list, as LLMs often write them;
    a helper defined first is not the entry point."""
    reply = ("[Problem Description]\nSum the primes in a list.\n\n[Solution]\nUse a helper.\n```python\n"
             "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))\n\n"
             "def sum_primes(xs):\n    return sum(x for x in xs if is_prime(x))\n```\n"
             f"[Example Calls]\n{calls}")
    out = synthesis.parse_synthesis_reply(reply)
    assert out["entry_point"] == "sum_primes" and out["seed_inputs"] == ["[1, 2, 3]", "[4]"]
    assert synthesis.call_arguments("print(g(1), g(2))", "g") is None


def test_given_problems_skip_synthesis_in_any_mode():
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    seed = {"id": "seed-x", "seed_kind": "problem", "problem": "Add.", "solution": "def add(a, b):\n    return a + b", "seed_inputs": ["1, 2"]}
    for mode in ("offline", "llm"):
        (out,) = synthesis.process(seed, StageContext(DataConfig(synthesis=mode)))
        assert out["id"] == "prob-x" and out["entry_point"] == "add" and out["seed_inputs"] == ["1, 2"]
    assert isinstance(synthesis.process({**seed, "solution": "x = 1"}, StageContext(DataConfig())), Reject)


def test_offline_zero_argument_function_is_built_with_the_empty_call_forward_only():
    """``>>> f()`` gave the empty argument text, dropped as "no example": every function without
    parameters was rejected. Its one input is the empty call; a backward task (deduce the input)
    has nothing to deduce, so it is skipped and counted."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages import executability, inputs, monologue
    from data_pipeline.stages.base import StageContext
    from data_pipeline.stages.seeds import extract_seeds
    from semcoder_jax.prompts import execution_instruction

    src = 'def greeting():\n    """Join fixed words.\n    >>> greeting()\n    """\n    parts = ["hello", "world"]\n    return " ".join(parts)\n'
    seed = {"id": "seed-z", **extract_seeds(src, kinds=("function",))[0]}
    ctx = StageContext(DataConfig())
    try:
        (problem,) = synthesis.process(seed, ctx)
        assert problem["seed_inputs"] == [""] and "`greeting()`" in problem["problem"]
        (record,) = executability.process(problem, ctx)
        (record,) = inputs.process(record, ctx)
        assert record["tests"] == [{"input": "", "output": "'hello world'"}]
        (built,) = monologue.process(record, ctx)
        assert built["backward"] == [] and ctx.notes == {"monologue.backward_skipped_no_parameters": 1}
        ctx.config.forward_per_problem = 2  # a second forward task finds no test left: counted too
        monologue.process(record, ctx)
        assert ctx.notes["monologue.forward_no_test_left"] == 1
    finally:
        ctx.close()
    (fwd,) = built["forward"]
    assert fwd["response"].endswith("for the call `f()`.\n[/MONOLOGUE]\n[ANSWER]\nassert f() == 'hello world'\n[/ANSWER]")
    assert "assert f() == ??" in execution_instruction(built["code"], input=fwd["input"])


def test_offline_problem_leaves_doctest_outputs_out_of_the_description():
    """The lines after a ``>>>`` example are its expected output, not description: they were kept as
    stray lines of the problem."""
    from data_pipeline.stages.synthesis import offline_problem

    code = ('def double(x):\n    """Return x doubled.\n\n    >>> double(2)\n    4\n    >>> double([1])\n    [1, 1]\n\n'
            '    Works on anything with ``*``.\n    """\n    return x * 2')
    problem = offline_problem({"seed_kind": "function", "code": code})
    assert problem["seed_inputs"] == ["2", "[1]"]
    assert problem["problem"] == "Return x doubled.\n\n\nWorks on anything with ``*``.\n\nImplement it as a Python function `double(x)`."


@pytest.mark.parametrize("fence", ["```python", "```Python", "```PY", "```python3", "```", "```py  "])
def test_code_blocks_in_any_common_fence(fence):
    """```Python (as some models write it) was not a code block: the record was rejected."""
    from data_pipeline.stages.base import code_blocks

    assert code_blocks(f"Here:\n{fence}\ndef f(x):\n    return x\n```\ntext") == ["def f(x):\n    return x\n"]

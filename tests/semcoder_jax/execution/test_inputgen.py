import ast
import os
import random
import subprocess
import sys

import pytest

from semcoder_jax.execution import generate_inputs, measure_coverage, mutate_input, reference_data, run_inputs
from semcoder_jax.execution.coverage import function_shape
from semcoder_jax.execution.inputgen import fits, format_args, ingredients, mutate_value, parse_args

BRANCHY = """def f(s, n):
    out = []
    if n > 3:
        out.append('big')
    elif n < 0:
        return None
    for ch in s:
        if ch.isdigit():
            out.append(int(ch))
        else:
            out.append(ch.upper())
    return out
"""


def test_parse_and_format_round_trip():
    assert parse_args("[1, 2], 'a'") == ([1, 2], "a")
    assert parse_args("") == ()
    assert parse_args("__import__('os')") is None
    assert format_args(({1, 2}, (3,), {"k": [1.5]})) == "{1, 2}, (3,), {'k': [1.5]}"
    assert format_args((float("inf"),)) is None


@pytest.mark.parametrize("value", [7, -2.5, True, "hello", b"ab", [1, [2, 3]], (1, "a"), {3, 4}, {"a": 1}, frozenset({1})])
def test_mutation_keeps_the_type(value):
    rng = random.Random(0)
    pool = ingredients("x = 'zz' + str(42)", [(value,)])
    changed = 0
    for _ in range(30):
        m = mutate_value(value, rng, pool)
        assert type(m) is type(value)
        changed += m != value
    assert changed > 0


def test_mutate_input_changes_arguments_only_by_literal_values():
    rng = random.Random(1)
    args = ([1, 2, 3], "abc", 4)
    outs = {format_args(mutate_input(args, rng, ingredients("", [args]))) for _ in range(50)}
    assert len(outs) > 10
    assert all(len(ast.literal_eval(f"({o},)")) == 3 for o in outs if o)


@pytest.mark.parametrize(
    "annotation, good, bad",
    [
        ("int", [3, True], [3.0, "3", None]),
        ("float", [3, 2.5], ["2.5"]),
        ("list[int]", [[], [1, 2]], [["a"], [1, "a"], (1,)]),
        ("List[List[str]]", [[["a"], []]], [[["a", 1]]]),
        ("dict[str, int]", [{}, {"a": 1}], [{"a": "b"}, {1: 1}, [("a", 1)]]),
        ("tuple[int, str]", [(1, "a")], [(1, 2), (1,), [1, "a"]]),
        ("tuple[int, ...]", [(), (1, 2, 3)], [(1, "a")]),
        ("Optional[str]", [None, "a"], [1]),
        ("int | None", [None, 1], ["a"]),
        ("typing.Union[int, str]", [1, "a"], [[1]]),
        ("'list[int]'", [[1]], [["a"]]),
        ("Sequence[int]", [[1], "anything"], []),
        ("MyClass", [1, "a"], []),
    ],
)
def test_fits_reads_annotations_without_evaluating_them(annotation, good, bad):
    ann = ast.parse(annotation, mode="eval").body
    assert all(fits(v, ann) for v in good) and not any(fits(v, ann) for v in bad)


def test_generated_inputs_respect_type_hints(sandbox):
    """Mutation grew an empty ``list[int]`` with the program's string constants, and the function took them,
    so a ``list[int]`` parameter was traced with ``['many']``."""
    src = "def f(xs: list[int]) -> str:\n    if len(xs) > 2:\n        return 'many'\n    return 'few'\n"
    got = generate_inputs(src, "f", ["[]"], n=10, sandbox=sandbox)
    assert len(got.inputs) == 10
    assert all(isinstance(x, int) for text in got.inputs for x in parse_args(text)[0]), got.inputs


def test_function_shape_and_coverage(sandbox):
    shape = function_shape(BRANCHY, "f")
    assert shape.lines == frozenset(range(2, 13)) - {10}  # `else:` has no code
    assert {b[0] for b in shape.branches} == {3, 5, 7, 8}
    line_cov, branch_cov = measure_coverage(BRANCHY, "f", ["'a', 1"], sandbox=sandbox)
    assert line_cov == pytest.approx(7 / 10)
    assert 0 < branch_cov < 1
    full = measure_coverage(BRANCHY, "f", ["'a1', 5", "'', -1", "'b', 2"], sandbox=sandbox)
    assert full == (1.0, 1.0)


def test_each_input_runs_as_if_alone(sandbox):
    """The inputs of a batch shared one run of the program: a mutable default argument (or a global)
    that earlier calls changed made later inputs pass here that fail when traced alone, and the
    program's own SIGALRM handler must not take the per-input timer."""
    src = "def f(x, seen=[]):\n    seen.append(x)\n    return 10 // (len(seen) - 1)\n"
    assert [e["ok"] for e in run_inputs(src, "f", ["1", "2", "3"], sandbox=sandbox)] == [False] * 3
    loud = "import signal\nprint('x' * 100_000)\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n" \
           "def f(n):\n    while n:\n        pass\n    return n\n"
    entries = run_inputs(loud, "f", ["0", "1", "0"] + ["0"] * 20, sandbox=sandbox, per_input_timeout_s=0.2)
    assert [e["exc_type"] for e in entries[:3]] == [None, "timeout", None] and all(e["ok"] for e in entries[3:])


def test_a_slow_top_level_runs_once_per_batch_and_inputs_stay_apart(sandbox):
    """The top level ran again before every input, so one that builds a table at import took N times as
    long (and, past the job's deadline, fell back to one job per input). Now it runs once and each input
    runs in a fork of that state: the count of runs kept in ``builtins`` stays 1, and neither the mutable
    default nor ``builtins`` carries one input's changes to the next."""
    src = "import builtins, time\ntime.sleep(0.02)\nbuiltins.runs = getattr(builtins, 'runs', 0) + 1\n" \
          "def f(x, seen=[]):\n    seen.append(x)\n    builtins.runs += 10\n    return builtins.runs, len(seen)\n"
    entries = run_inputs(src, "f", [str(i) for i in range(10)], sandbox=sandbox)
    assert [e["return_repr"] for e in entries] == ["(11, 1)"] * 10, entries
    assert all(e["lines"] == [5, 6, 7] for e in entries)


def test_an_input_that_ignores_its_timer_is_killed_and_the_batch_goes_on(sandbox):
    """An input whose call turns SIGALRM off is killed once past its slice; the others keep their verdict."""
    src = "import signal, time\ntime.sleep(0.02)\n" \
          "def f(n):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while n:\n        pass\n    return n\n"
    entries = run_inputs(src, "f", ["0", "1", "0"], sandbox=sandbox, per_input_timeout_s=0.2)
    assert [(e["ok"], e["exc_type"]) for e in entries] == [(True, None), (False, "timeout"), (True, None)], entries


def test_generate_inputs_are_valid_distinct_and_raise_coverage(sandbox):
    result = generate_inputs(BRANCHY, "f", ["'ab', 1"], n=8, seed=0, sandbox=sandbox)
    assert result.inputs[0] == "'ab', 1"
    assert len(result.inputs) == len(set(result.inputs)) <= 8
    assert result.line_coverage == 1.0
    assert measure_coverage(BRANCHY, "f", result.inputs, sandbox=sandbox)[0] == result.line_coverage
    runs = sandbox.map([(BRANCHY + f"\nf({i})\n") for i in result.inputs])
    assert all(r.status == "passed" for r in runs)


def test_generate_inputs_drops_inputs_that_raise(sandbox):
    src = "def f(x):\n    if x == 3:\n        raise ValueError('three')\n    return 10 // (x - 5)\n"
    result = generate_inputs(src, "f", ["1"], n=10, seed=0, sandbox=sandbox)
    assert "3" not in result.inputs and "5" not in result.inputs
    assert all(isinstance(ast.literal_eval(i), int) for i in result.inputs)


@pytest.mark.slow
def test_mutation_raises_mean_line_coverage_on_cruxeval(sandbox):
    problems = reference_data.cruxeval()[::16]  # 50 functions
    base = [measure_coverage(p["code"], "f", [p["input"]], sandbox=sandbox)[0] for p in problems]
    grown = [generate_inputs(p["code"], "f", [p["input"]], n=10, seed=0, sandbox=sandbox).line_coverage for p in problems]
    assert all(g >= b for b, g in zip(base, grown))
    assert sum(grown) / len(grown) > sum(base) / len(base) + 0.03


def test_set_inputs_are_the_same_text_in_every_process():
    """Set order follows string hashes, which differ between processes: the same seed must still give the
    same inputs (a rebuild or a resumed run), and equal sets one text (the inputs are distinct)."""
    script = (
        "import random\n"
        "from semcoder_jax.execution.inputgen import format_args, ingredients, mutate_input\n"
        "args = ({'apple', 'banana', 'cherry', 'date'},)\n"
        "rng, pool = random.Random(0), ingredients('', [args])\n"
        "print([format_args(args)] + [format_args(mutate_input(args, rng, pool)) for _ in range(20)])\n"
    )
    outs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 2)}
    assert len(outs) == 1
    assert format_args(({"b", "a"}, [set(), {2, 1}])) == "{'a', 'b'}, [set(), {1, 2}]"


_LOST = {"status": "killed", "exc_type": "SandboxError", "exc_message": "the fork server exited while this job ran",
         "sandbox_failure": True}


@pytest.mark.parametrize("batch_response", [_LOST, {"status": "crashed", "exc_type": None}], ids=["batch", "retry"])
def test_a_sandbox_failure_is_an_error_not_a_failed_input(batch_response):
    """A lost fork server came back as every input failing with exc_type ``SandboxError``: coverage and
    the inputs kept were decided by the machine, not the program. The batch's answer and each retried
    input's are both checked."""
    from semcoder_jax.execution import SandboxConfig, SandboxError

    class LostServer:
        config = SandboxConfig()
        calls = 0

        def map_raw(self, jobs):
            self.calls += 1
            jobs = list(jobs)
            return [batch_response if self.calls == 1 else _LOST for _ in jobs]

    box = LostServer()
    with pytest.raises(SandboxError, match="fork server exited"):
        run_inputs("def f(x):\n    return x\n", "f", ["1", "2"], sandbox=box)
    assert box.calls == (1 if batch_response is _LOST else 2)

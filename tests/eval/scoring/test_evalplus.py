"""HumanEval(+)/MBPP(+) scoring: the reference solutions score 100%, empty/wrong/hostile ones 0."""

import ast

import pytest

from eval.benchmarks import load_problems
from eval.scoring import score
from eval.scoring.evalplus import EvalPlusSettings, score_evalplus

PLUS_SUBSET = EvalPlusSettings(max_plus_inputs=10)
# References that take over 5 s of CPU on all their plus inputs (77 s for Mbpp/599).
SPECIAL_ORACLES = frozenset({"HumanEval/32", "Mbpp/558", "Mbpp/581"})  # Mbpp/164 and 295 left MBPP+ in v0.2.0
HEAVY = frozenset({"HumanEval/15", "HumanEval/36", "HumanEval/59", "HumanEval/139", "Mbpp/123", "Mbpp/271",
                   "Mbpp/389", "Mbpp/392", "Mbpp/589", "Mbpp/592", "Mbpp/599", "Mbpp/603"})


@pytest.fixture(scope="module")
def humaneval():
    return load_problems("humaneval")


@pytest.fixture(scope="module")
def mbpp():
    return load_problems("mbpp")


def _canonical(problems):
    return {p.task_id: [p.prompt + p.canonical_solution] for p in problems}


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_on_base_and_plus_subset(name, sandbox, gt_cache, request):
    problems = request.getfixturevalue(name)
    assert len(problems) == {"humaneval": 164, "mbpp": 378}[name]
    res = score(name, problems, _canonical(problems), sandbox=sandbox, evalplus_settings=PLUS_SUBSET)
    failing = [t for t, d in res.details.items() if not d[0]["plus_pass"]]
    assert failing == []
    assert res.metrics["pass@1"] == 100.0 and res.metrics["plus_pass@1"] == 100.0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_canonical_solutions_score_100_on_all_plus_inputs(name, sandbox, gt_cache, request):
    """Every plus input of every third problem and of those with a special oracle. Left out: the
    references that take over 5 s of CPU on them (HEAVY: 12 of 542 problems but 80% of the CPU, run
    twice: reference and solution; big inputs, no special semantics). Every problem is checked on its
    first plus inputs above, and on all of them by ``benchmarks/eval_scoring.py``."""
    problems = [p for i, p in enumerate(request.getfixturevalue(name))
                if p.task_id not in HEAVY and (i % 3 == 0 or p.task_id in SPECIAL_ORACLES)]
    assert len(problems) == {"humaneval": 54, "mbpp": 128}[name]
    assert {t for t in SPECIAL_ORACLES if t.startswith(problems[0].task_id.split("/")[0])} <= {p.task_id for p in problems}
    # EvalPlus caps a task at 60 s; a reference can need more on a slow, shared machine, so this
    # correctness check lifts the cap (the per-input limits still apply).
    settings = EvalPlusSettings(timeout_per_task=1200.0)
    res = score(name, problems, _canonical(problems), sandbox=sandbox, evalplus_settings=settings)
    assert [t for t, d in res.details.items() if not d[0]["plus_pass"]] == []


def test_empty_and_wrong_solutions_score_zero(humaneval, sandbox, gt_cache):
    probs = humaneval[:12]
    samples = {}
    for i, p in enumerate(probs):
        wrong = p.prompt + "    return None\n"
        samples[p.task_id] = ["", wrong, p.prompt] if i % 2 else [wrong, "", "def unrelated():\n    return 1\n"]
    res = score("humaneval", probs, samples, sandbox=sandbox, evalplus_settings=PLUS_SUBSET)
    assert res.metrics["pass@1"] == 0.0 and res.metrics["plus_pass@1"] == 0.0
    assert all(not d["base_pass"] for ds in res.details.values() for d in ds)


def test_plus_tests_catch_what_base_tests_miss(humaneval, sandbox, gt_cache):
    # HumanEval/0 has_close_elements: the base inputs have at most 6 numbers, so looking at the first 6
    # only passes them; longer plus inputs catch it.
    p = humaneval[0]
    sloppy = p.prompt + ("    numbers = numbers[:6]\n"
                         "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
    res = score_evalplus([p], {p.task_id: [sloppy]}, sandbox=sandbox)
    r = res[p.task_id][0]
    assert (r.base_status, r.plus_status) == ("pass", "fail"), r
    assert len(ast.literal_eval(r.failure["input"])[0]) > 6, r.failure


def test_find_zero_accepts_any_root_within_atol(humaneval, sandbox, gt_cache):
    p = next(x for x in humaneval if x.task_id == "HumanEval/32")
    # Bisection finds a root the reference's Newton-style search need not find exactly.
    other = p.prompt + (
        "    lo, hi = -1.0, 1.0\n"
        "    while poly(xs, lo) * poly(xs, hi) > 0:\n"
        "        lo *= 2.0\n        hi *= 2.0\n"
        "    for _ in range(200):\n"
        "        mid = (lo + hi) / 2\n"
        "        if poly(xs, mid) * poly(xs, lo) > 0:\n            lo = mid\n        else:\n            hi = mid\n"
        "    return lo\n"
    )
    res = score_evalplus([p], {p.task_id: [other, p.prompt + "    return 1e9\n"]}, sandbox=sandbox, settings=PLUS_SUBSET)
    assert [r.plus_pass for r in res[p.task_id]] == [True, False]


HOSTILE = {
    "infinite loop": "    while True:\n        pass\n",
    "swallowed timeouts": "    while True:\n        try:\n            while True: pass\n        except BaseException:\n            pass\n",
    "sys.exit(0)": "    import sys\n    sys.exit(0)\n",
    "os._exit(0)": "    import os\n    os._exit(0)\n",
    "rm -rf": "    import os\n    os.system('rm -rf /tmp/should_not_exist_semcoder')\n    return True\n",
    "memory bomb": "    x = [0] * (10 ** 11)\n    return x\n",
    "print flood": "    while True:\n        print('x' * 100000)\n",
    "fork": "    import os\n    os.fork()\n    return False\n",
    "kill parent": "    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n",
}


def test_hostile_completions_are_contained_and_fail(humaneval, sandbox, gt_cache):
    p = humaneval[0]
    samples = {p.task_id: [p.prompt + body for body in HOSTILE.values()] + [p.prompt + p.canonical_solution]}
    res = score_evalplus([p], samples, sandbox=sandbox, settings=EvalPlusSettings(max_plus_inputs=10, min_time_limit=0.2))
    got = [r.plus_pass for r in res[p.task_id]]
    assert got == [False] * len(HOSTILE) + [True], dict(zip(list(HOSTILE) + ["canonical"], got))
    # the sandbox still serves after all that
    assert sandbox.run("x = 2", "x * 21").return_repr == "42"


def test_mbpp_inputs_are_deserialised_like_evalplus():
    from eval.benchmarks.evalplus import mbpp_deserialize_inputs

    assert mbpp_deserialize_inputs("Mbpp/2", [[[1, 2], [3]]]) == [[(1, 2), (3,)]]
    assert mbpp_deserialize_inputs("Mbpp/124", [[1, "1+2j"]]) == [(1.0, 1 + 2j)]
    assert mbpp_deserialize_inputs("Mbpp/580", [[[1, [2, 3]], 4]]) == [((1, (2, 3)), 4)]
    assert mbpp_deserialize_inputs("Mbpp/3", [[5]]) == [[5]]


MBPP_SPECIAL_ORACLES = {
    # Mbpp/2 (MBPP_OUTPUT_SET_EQ_TASKS): the shared elements in any order and container
    "Mbpp/2": "def similar_elements(a, b):\n    return sorted(set(a) & set(b), reverse=True)\n",
    # Mbpp/581: "height" as the perpendicular height (evalplus's _surface_Area)
    "Mbpp/581": "import math\ndef surface_Area(b, h):\n    s = math.sqrt((b / 2) ** 2 + h ** 2)\n    return round(b * b + 2 * b * s)\n",
    # Mbpp/558: numbers of different lengths padded with zeros (evalplus's _digit_distance_nums)
    "Mbpp/558": "def digit_distance_nums(a, b):\n    x, y = str(a), str(b)\n    m = max(len(x), len(y))\n    return sum(abs(int(c) - int(d)) for c, d in zip(x.zfill(m), y.zfill(m)))\n",
}


def test_mbpp_special_oracles_of_evalplus_0_3_1(mbpp, sandbox, gt_cache):
    by_id = {p.task_id: p for p in mbpp}
    probs = [by_id[t] for t in MBPP_SPECIAL_ORACLES]
    samples = {t: [by_id[t].prompt + s, by_id[t].prompt + f"def {by_id[t].entry_point}(*a):\n    return 12345\n"] for t, s in MBPP_SPECIAL_ORACLES.items()}
    res = score_evalplus(probs, samples, sandbox=sandbox, settings=EvalPlusSettings(max_plus_inputs=20))
    assert {t: [r.plus_pass for r in rs] for t, rs in res.items()} == {t: [True, False] for t in MBPP_SPECIAL_ORACLES}


def test_float_outputs_need_the_expected_type_and_length(humaneval, sandbox, gt_cache):
    # evalplus 0.3.1 compares floats with np.allclose only after type(out) == type(exp) (and equal
    # lengths): a tuple where a list of floats is expected fails, however close its values.
    p = next(x for x in humaneval if x.task_id == "HumanEval/21")
    body = "    lo, hi = min(numbers), max(numbers)\n    return {}((x - lo) / (hi - lo) for x in numbers)\n"
    samples = {p.task_id: [p.prompt + body.format("list"), p.prompt + body.format("tuple")]}
    res = score_evalplus([p], samples, sandbox=sandbox, settings=PLUS_SUBSET)
    assert [r.base_pass for r in res[p.task_id]] == [True, False]


def test_failure_report_shows_the_input_as_given_not_as_the_solution_left_it(humaneval, sandbox, gt_cache):
    # The failing input feeds refinement prompts (and the traced rerun): a solution that mutates its
    # arguments in place must not change what is reported.
    p = humaneval[0]
    mutating = p.prompt + "    numbers.reverse()\n    numbers.append(99.0)\n    return None\n"
    r = score_evalplus([p], {p.task_id: [mutating]}, sandbox=sandbox, settings=PLUS_SUBSET)[p.task_id][0]
    assert r.failure["index"] == 0 and r.failure["input"] == repr(p.base_input[0])


def test_ground_truth_in_parts_equals_one_job_per_split(mbpp, tmp_path, monkeypatch):
    """Plus inputs computed in several jobs give the same outputs, in order, as one job, and no
    part files are left behind."""
    import base64
    import json
    import pickle
    import zlib

    from eval.scoring import evalplus

    probs = [p for p in mbpp if p.task_id in ("Mbpp/2", "Mbpp/3", "Mbpp/559", "Mbpp/793")]  # 793: no plus inputs

    def outputs(parts, where):
        monkeypatch.setattr(evalplus, "GT_PARTS", parts)
        dirs = evalplus.ground_truth(probs, cache_dir=where)
        got = {}
        for p in probs:
            for split in evalplus.SPLITS:
                gt = json.loads((dirs[p.task_id] / f"{split}.json").read_text())
                values = [pickle.loads(o) for o in pickle.loads(zlib.decompress(base64.b64decode(gt["expected"])))]
                assert len(gt["times"]) == len(values) == len(evalplus.split_inputs(p, split))
                got[p.task_id, split] = values
            assert sorted(f.name for f in dirs[p.task_id].iterdir()) == sorted(
                f"{s}.{kind}" for s in evalplus.SPLITS for kind in ("json", "inputs.pkl"))
        return got

    assert outputs(4, tmp_path / "parts") == outputs(1, tmp_path / "whole")
    assert evalplus._parts(10, 4) == [(0, 2), (2, 5), (5, 7), (7, 10)] and evalplus._parts(0, 4) == [(0, 0)]


def test_float_tolerance_applies_to_floats_and_float_arrays_only_like_evalplus():
    # evalplus's is_floats: a float, a non-empty list/tuple of floats, or an np.ndarray of float32/64;
    # a numpy float32 *scalar* is none of these, so with atol 0 it is compared exactly.
    import numpy as np

    from eval.scoring.harness_evalplus import _is_floats

    assert [_is_floats(x) for x in (0.5, np.float64(0.5), [0.5, 1.0], (0.5,), np.array([0.5], dtype=np.float32))] == [True] * 5
    assert [_is_floats(x) for x in (np.float32(0.5), [], [0.5, 1], np.array([1]), "0.5")] == [False] * 5


def test_per_input_time_limit_is_factor_times_reference_time_with_a_floor(humaneval, sandbox, gt_cache):
    # evalplus: input i gets max(min_time_limit, gt_time_limit_factor * t_ref[i]); running past it is a
    # failed input ("fail", as unsafe_execute reports it), not a process timeout.
    p = humaneval[0]
    slow = p.prompt + "    import time\n    time.sleep(0.1)\n" + p.canonical_solution
    run = lambda **kw: score_evalplus([p], {p.task_id: [slow]}, sandbox=sandbox, base_only=True,  # noqa: E731
                                      settings=EvalPlusSettings(**kw))[p.task_id][0]
    generous = run(min_time_limit=0.02, gt_time_limit_factor=1e6)  # the reference takes microseconds
    floor = run(min_time_limit=1.0, gt_time_limit_factor=1.0)
    tight = run(min_time_limit=0.02, gt_time_limit_factor=1.0)
    assert (generous.base_status, floor.base_status, tight.base_status) == ("pass", "pass", "fail")
    assert tight.failure["index"] == 0 and "TimeLimit" in tight.failure["error"]


def test_mbpp_not_none_oracle(mbpp, sandbox, gt_cache):
    # MBPP_OUTPUT_NOT_NONE_TASKS (Mbpp/737 check_str returns a match object or None): only "not None"
    # is compared; a bool is compared with that, any other value by whether it is None.
    p = next(x for x in mbpp if x.task_id == "Mbpp/737")
    vowel = "string[:1] != '' and string[0] in 'aeiouAEIOU'"
    bodies = [f"return {vowel}", f"return 'yes' if {vowel} else None", f"return 'Valid' if {vowel} else 'Invalid'"]
    samples = {p.task_id: [f"def check_str(string):\n    {b}\n" for b in bodies]}
    res = score_evalplus([p], samples, sandbox=sandbox, settings=PLUS_SUBSET)
    assert [r.plus_pass for r in res[p.task_id]] == [True, True, False]


def test_task_atol_with_numpys_rtol(mbpp, sandbox, gt_cache):
    # Mbpp/82 (atol 1e-4): np.allclose(out, exp, rtol=1e-07, atol=1e-4). An error of 2e-4 is within
    # 1e-4 + 1e-7 * 4188.8 on the base input r=10, not on the plus input r=3.5 (volume 179.6).
    p = next(x for x in mbpp if x.task_id == "Mbpp/82")
    bodies = ["(4. / 3.) * math.pi * r ** 3 + 5e-5", "(4. / 3.) * 3.14159 * r ** 3", "(4. / 3.) * math.pi * r ** 3 + 2e-4"]
    samples = {p.task_id: [f"import math\ndef volume_sphere(r):\n    return {b}\n" for b in bodies]}
    res = score_evalplus([p], samples, sandbox=sandbox, settings=PLUS_SUBSET)
    assert [(r.base_pass, r.plus_pass) for r in res[p.task_id]] == [(True, True), (False, False), (True, False)]

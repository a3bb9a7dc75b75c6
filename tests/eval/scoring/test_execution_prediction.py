"""CRUXEval-I/O and LCB-Exec: official evaluate_score semantics."""

import pytest

from eval.benchmarks import load_problems
from eval.benchmarks.livecodebench import LcbExecutionProblem
from eval.scoring import score
from eval.scoring.execution_prediction import score_execution_prediction


@pytest.fixture(scope="module")
def crux():
    return load_problems("cruxeval-o")


def test_ground_truth_scores_100_in_both_modes(crux, sandbox):
    assert len(crux) == 800
    out = score("cruxeval-o", crux, {p.task_id: [p.output] for p in crux}, sandbox=sandbox)
    assert out.metrics["pass@1"] == 100.0
    inp = score("cruxeval-i", crux, {p.task_id: [f"f({p.input})"] for p in crux}, sandbox=sandbox)
    assert inp.metrics["pass@1"] == 100.0


def test_empty_and_wrong_answers_score_zero(crux, sandbox):
    probs = crux[:40]
    wrong = {p.task_id: ["", "object()", "f("] for p in probs}
    assert score("cruxeval-o", probs, wrong, sandbox=sandbox).metrics["pass@1"] == 0.0
    assert score("cruxeval-i", probs, wrong, sandbox=sandbox).metrics["pass@1"] == 0.0


def test_skip_rules_and_n(crux, sandbox):
    p = crux[0]
    res = score_execution_prediction(
        "cruxeval-o", [p],
        {p.task_id: [p.output, f"f({p.input})", "[]"]},  # the copied call is skipped, not run
        sandbox=sandbox,
    )
    assert res[p.task_id] == [True, False]  # n = 2: the skipped answer left n
    # input mode: an answer without "f(" is skipped; all skipped -> failed with the full n
    res = score_execution_prediction("cruxeval-i", [p], {p.task_id: [p.input, "x"]}, sandbox=sandbox)
    assert res[p.task_id] == [False, False]
    # a problem whose only answers are skipped counts as failed in the mean
    s = score("cruxeval-o", [p], {p.task_id: [f"f({p.input})"]}, sandbox=sandbox)
    assert s.metrics["pass@1"] == 0.0


def test_pass_at_5_over_sampled_answers(crux, sandbox):
    p = crux[1]
    answers = [p.output] + ["None"] * 9
    s = score("cruxeval-o", [p], {p.task_id: answers}, sandbox=sandbox)
    assert s.metrics["pass@1"] == pytest.approx(10.0)
    assert s.metrics["pass@5"] == pytest.approx(50.0)


def test_lcb_exec_uses_base_imports_and_skips_copied_calls(sandbox):
    prob = LcbExecutionProblem(
        task_id="e0",
        code="def countThings(nums: List[int]) -> int:\n    return len(Counter(nums))",
        input="countThings(nums = [1, 1, 2])",
        output="2",
        function_name="countThings",
    )
    res = score_execution_prediction(
        "lcb-exec", [prob], {"e0": ["2", "3", "countThings(nums = [1, 1, 2])"]}, sandbox=sandbox
    )
    assert res["e0"] == [True, False]
    all_skipped = score_execution_prediction("lcb-exec", [prob], {"e0": [prob.input]}, sandbox=sandbox)
    assert all_skipped["e0"] == [False]


def test_hostile_answers_are_contained(crux, sandbox):
    p = crux[2]
    hostile = ["__import__('os')._exit(0)", "(lambda: [0] * 10**11)()", "exec('while True: pass')", "__import__('os').system('true')"]
    s = score_execution_prediction("cruxeval-o", [p], {p.task_id: hostile}, sandbox=sandbox)
    assert s[p.task_id] == [False] * 4


def test_pass_at_5_is_reported_when_skipped_answers_shorten_a_problems_list(crux, sandbox):
    # CRUXEval's evaluate_generations computes pass@5 on every problem's list, however short the skip
    # rule left it (n - c < k gives 1.0); the metric must not vanish from the summary.
    p, q = crux[0], crux[1]
    answers = {p.task_id: [p.output] + ["None"] * 3 + [f"f({p.input})"] * 6, q.task_id: ["None"] * 10}
    s = score("cruxeval-o", [p, q], answers, sandbox=sandbox)
    assert s.metrics["pass@1"] == pytest.approx(100 * (1 / 4 + 0) / 2)
    assert s.metrics["pass@5"] == pytest.approx(100 * (1.0 + 0) / 2)


def test_details_and_sample_count_follow_the_samples_when_answers_are_skipped(crux, sandbox):
    # The official list drops a skipped answer; the per-sample details must not shift onto the next
    # sample (the copied call is not the one that passed) nor leave it out of n_samples.
    p = crux[0]
    s = score("cruxeval-o", [p], {p.task_id: [f"f({p.input})", p.output, "[]"]}, sandbox=sandbox)
    assert s.metrics["pass@1"] == pytest.approx(50.0)  # official n = 2
    assert [(d["passed"], d["skipped"]) for d in s.details[p.task_id]] == [(False, True), (True, False), (False, False)]
    assert s.summary()["n_samples"] == 3


def test_program_output_is_swallowed_as_the_official_check_does(sandbox):
    # CRUXEval's and LCB's check_correctness run the program under swallow_io: a correct answer whose
    # function prints megabytes still passes instead of hitting the sandbox's output limit.
    from eval.benchmarks.cruxeval import CruxProblem

    loud = CruxProblem("sample_0", "def f(x):\n    for _ in range(2000):\n        print('y' * 1000)\n    return x + 1", "1", "2")
    assert score_execution_prediction("cruxeval-i", [loud], {"sample_0": ["f(1)", "f(2)"]}, sandbox=sandbox)["sample_0"] == [True, False]


@pytest.mark.parametrize(
    "text,reason,expected",
    [
        # no line break before the tag, so the text reads as cut; the backend says its stop string closed it
        ("assert f(1) == [1,\n 2]", "stop", "[1,\n 2]"),
        ("assert f(1) == [1,\n 2]", None, "[1,"),
        # it ends as a closed answer does, but the token limit (or EOS) ended it: lcb_runner saw no tag
        ("assert f(1) == [1,\n 2]\n", "length", "[1,"),
        ("assert f(1) == [1,\n 2]\n", "eos", "[1,"),
        ("assert f(1) == [1,\n 2]\n", None, "[1,\n 2]"),  # no finish reason: the text decides, as before
        ("[ANSWER]\nassert f(1) == 3", "stop", "3"),
    ],
)
def test_lcb_exec_answers_follow_the_backends_finish_reason_before_the_text(text, reason, expected):
    """Whether an LCB-Exec answer was closed by [/ANSWER] or cut by the token limit was guessed from
    its text; backends that know why they stopped now decide it."""
    from eval.backends import Completion
    from eval.tasks import to_sample

    style = "semcoder" if text.startswith("[ANSWER]") else "direct"
    assert to_sample("lcb-exec", None, Completion(text, reason), style=style, quotes=False) == expected

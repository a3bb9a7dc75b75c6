"""LiveCodeBench loaders (local JSONL, packed private tests) and code-generation scoring."""

import base64
import json
import pickle
import zlib

import pytest

from eval.benchmarks import load_problems
from eval.benchmarks.livecodebench import decode_test_cases
from eval.scoring import score
from semcoder_jax.errors import SemcoderError


def _pack(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(obj)))).decode()


STDIN_ROW = {
    "question_title": "Sum", "question_content": "Read two integers and print their sum.", "platform": "atcoder",
    "question_id": "abc000_a", "contest_id": "abc000", "contest_date": "2024-05-01T00:00:00", "starter_code": "",
    "difficulty": "easy",
    "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
    "private_test_cases": _pack([{"input": "10 -4\n", "output": "6\n", "testtype": "stdin"}, {"input": "0 0\n", "output": "0", "testtype": "stdin"}]),
    "metadata": "{}",
}
FUNC_ROW = {
    "question_title": "Two Sum Count", "question_content": "Return the number of distinct values.", "platform": "leetcode",
    "question_id": "3000", "contest_id": "weekly-1", "contest_date": "2024-06-01T00:00:00",
    "starter_code": "class Solution:\n    def distinct(self, nums: List[int]) -> int:\n        ",
    "difficulty": "easy",
    "public_test_cases": json.dumps([{"input": "[1, 1, 2]", "output": "2", "testtype": "functional"}]),
    "private_test_cases": json.dumps([{"input": "[]", "output": "0", "testtype": "functional"}]),
    "metadata": json.dumps({"func_name": "distinct"}),
}


@pytest.fixture()
def lcb_file(tmp_path):
    path = tmp_path / "lcb.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (STDIN_ROW, FUNC_ROW)) + "\n")
    return path


def test_loads_local_rows_and_unpacks_private_tests(lcb_file):
    problems = load_problems("lcb-lite", path=lcb_file)
    assert [p.task_id for p in problems] == ["abc000_a", "3000"]
    assert [t.input for t in problems[0].tests] == ["1 2\n", "10 -4\n", "0 0\n"]
    assert problems[1].func_name == "distinct"
    assert load_problems("lcb-lite", path=lcb_file, start_date="2024-05-15") [0].task_id == "3000"


def test_restricted_unpickler_refuses_globals():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    packed = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(pickle.UnpicklingError):
        decode_test_cases(packed)


def test_bad_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    row = dict(STDIN_ROW, private_test_cases="@@not-base64@@")
    path.write_text(json.dumps(FUNC_ROW) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(SemcoderError, match=r"bad\.jsonl:2: cannot decode test cases"):
        load_problems("lcb-lite", path=path)


def test_code_generation_scoring_stdin_and_functional(lcb_file, sandbox):
    problems = load_problems("lcb-lite", path=lcb_file)
    samples = {
        "abc000_a": [
            "a, b = map(int, input().split())\nprint(a + b)\n",
            "import sys\nif __name__ == '__main__':\n    a, b = map(int, sys.stdin.read().split())\n    print(a + b)\n",
            "a, b = map(int, input().split())\nprint(a - b)\n",
            "while True:\n    pass\n",
            "",
        ],
        "3000": [
            "class Solution:\n    def distinct(self, nums):\n        return len(set(nums))\n",
            "class Solution:\n    def distinct(self, nums):\n        return len(nums)\n",
        ],
    }
    res = score("lcb-lite", problems, samples, sandbox=sandbox)
    assert [d["passed"] for d in res.details["abc000_a"]] == [True, True, False, False, False]
    assert [d["passed"] for d in res.details["3000"]] == [True, False]
    assert res.details["abc000_a"][2]["error_code"] == -2
    assert res.metrics["pass@1"] == pytest.approx(100 * (2 / 5 + 1 / 2) / 2)


def test_lcb_execution_local_rows(tmp_path, sandbox):
    path = tmp_path / "exec.jsonl"
    rows = [{"question_id": "1", "contest_id": "c", "contest_date": "2024", "difficulty": "easy", "function_name": "add",
             "code": "def add(a, b):\n    return a + b", "input": "add(a = 1, b = 2)", "output": "3", "id": "exec_0",
             "problem_id": "p", "numsteps": 5}]
    path.write_text(json.dumps(rows[0]) + "\n")
    problems = load_problems("lcb-exec", path=path)
    assert score("lcb-exec", problems, {"exec_0": ["3"]}, sandbox=sandbox).metrics["pass@1"] == 100.0


def test_version_tags_map_to_release_files():
    from eval.benchmarks.livecodebench import lite_files

    assert lite_files("release_v1") == ["test.jsonl"]
    assert lite_files("release_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert lite_files("v2") == ["test2.jsonl"]
    assert lite_files("v1_v3") == ["test.jsonl", "test2.jsonl", "test3.jsonl"]
    assert lite_files("release_latest") == lite_files("release_v6")
    for tag in ("latest", "release_v0", "release_v7", "v0", "v7", "v3_v2"):  # not silently another release
        with pytest.raises(SemcoderError, match="version_tag"):
            lite_files(tag)


def test_date_window_includes_contests_on_its_end_date_like_lcb_runner(lcb_file, tmp_path):
    # lcb_runner: strptime(start) <= datetime.fromisoformat(contest_date) <= strptime(end); the rows'
    # contest dates are midnight, so a window ending on a contest's day contains it.
    ids = lambda **kw: [p.task_id for p in load_problems("lcb-lite", path=lcb_file, **kw)]  # noqa: E731
    assert ids(end_date="2024-05-01") == ["abc000_a"]
    assert ids(start_date="2024-05-01", end_date="2024-06-01") == ["abc000_a", "3000"]
    assert ids(start_date="2024-05-02", end_date="2024-05-31") == []
    bad = tmp_path / "nodate.jsonl"
    bad.write_text(json.dumps(dict(STDIN_ROW, contest_date="soon")) + "\n")
    with pytest.raises(SemcoderError, match=r"nodate\.jsonl:1: field contest_date"):
        load_problems("lcb-lite", path=bad, end_date="2024-05-01")


def test_generic_style_generation_stops_at_lcbs_stop_token(lcb_file):
    # lcb_runner generates with stop "###": a base model that goes on to a next "### Question" with its
    # own code block would otherwise be graded on that block (extract_code takes the last one).
    from eval.backends import cut_at_stop
    from eval.tasks import stop_strings, to_sample

    p = load_problems("lcb-lite", path=lcb_file)[0]
    raw = "```python\nprint(sum(map(int, input().split())))\n```\n\n### Question:\nNext one\n\n### Answer:\n```python\nprint(0)\n```\n"
    completion = cut_at_stop(raw, stop_strings("lcb-lite", "generic"))
    assert to_sample("lcb-lite", p, completion, style="generic") == "print(sum(map(int, input().split())))"


def test_extract_code_follows_lcb_runner():
    # lcb_runner's extract_code: fences are lines *containing* ```, the last two delimit the code, and
    # with fewer than two nothing is graded (an unfenced completion is not run as a program).
    from eval.scoring.livecodebench import extract_code

    assert extract_code("Solution:\n  ```python\n  print(1)\n  ```\n") == "  print(1)"
    assert extract_code("```python\nprint(0)\n```\nBetter:\n```python\nprint(1)\n```") == "print(1)"
    assert extract_code("print(sum(map(int, input().split())))\n") == ""
    assert extract_code("```python\nprint(1)\n") == ""


def test_repeated_task_ids_are_refused_naming_the_file(tmp_path):
    # execution-v2 holds several programs per question_id; a local export without its `id` column
    # used to collapse them silently into one problem per question (fewer problems, other counts).
    path = tmp_path / "exec.jsonl"
    rows = [{"question_id": "7", "function_name": "f", "code": f"def f(a):\n    return a + {k}", "input": "f(a = 1)",
             "output": str(1 + k)} for k in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SemcoderError, match=rf"{path}: task id '7' appears more than once"):
        load_problems("lcb-exec", path=path)


def test_output_lcb_does_not_capture_cannot_fail_a_program(sandbox):
    # lcb_runner leaves a call-based solution's prints and a program's stderr on its process's own
    # streams: debug output never decides a verdict, so it must not reach the sandbox's output limit.
    from eval.benchmarks.livecodebench import LcbGenerationProblem, LcbTest
    from eval.scoring.livecodebench import score_code_generation

    func = LcbGenerationProblem("f", "", "", "", "", "", "", [LcbTest("3", "6", "functional")], "double")
    stdin = LcbGenerationProblem("s", "", "", "", "", "", "", [LcbTest("3\n", "6\n", "stdin")], None)
    programs = {
        "f": ["class Solution:\n    def double(self, a):\n        for i in range(2000):\n"
              "            print('debug', i, 'x' * 1000)\n        return a * 2"],
        "s": ["import sys\nfor i in range(2000):\n    print('debug', i, 'x' * 1000, file=sys.stderr)\nprint(int(input()) * 2)"],
    }
    res = score_code_generation([func, stdin], programs, sandbox=sandbox)
    assert [res[t][0]["passed"] for t in ("f", "s")] == [True, True], res


def test_metadata_func_name_picks_call_based_grading_like_lcb_runner(sandbox):
    # lcb_runner's get_evaluation_sample passes metadata["func_name"] as fn_name, and run_test grades
    # call-based whenever it is set, whatever the tests' testtype says; without it, stdin grading.
    from eval.benchmarks.livecodebench import LcbGenerationProblem, LcbTest
    from eval.scoring.livecodebench import score_code_generation

    tests = [LcbTest("3", "6", "stdin")]
    named = LcbGenerationProblem("named", "", "", "", "", "", "", tests, "double")
    unnamed = LcbGenerationProblem("unnamed", "", "", "", "", "", "", tests, None)
    call_based = "class Solution:\n    def double(self, a):\n        return a * 2\n"
    stdin = "print(int(input()) * 2)\n"
    res = score_code_generation([named, unnamed], {"named": [call_based, stdin], "unnamed": [call_based, stdin]}, sandbox=sandbox)
    assert {t: [r["passed"] for r in rs] for t, rs in res.items()} == {"named": [True, False], "unnamed": [False, True]}


def test_output_comparison_follows_lcb_runner(sandbox):
    # stdin (grade_stdio): whole output and each line stripped, then per line string equality or
    # Decimal equality of the whitespace-split tokens; no float tolerance. Call-based: ==, with a
    # returned tuple (top level only) read as a list.
    from eval.benchmarks.livecodebench import LcbGenerationProblem, LcbTest
    from eval.scoring.livecodebench import score_code_generation

    stdin = LcbGenerationProblem("s", "", "", "", "", "", "", [LcbTest("x\n", "1 2\n0.50\nYES\n", "stdin")], None)
    printed = {
        'print("1 2"); print("0.50"); print("YES")': True,
        'print("  1 2  "); print("0.5"); print("YES"); print(); print()': True,  # stripped; Decimal 0.5 == 0.50
        'print("1  2"); print("5e-1"); print("YES")': True,  # tokens compared as Decimals
        'print("1 2"); print("0.5000001"); print("YES")': False,  # no tolerance
        'print("1 2"); print("0.50"); print("yes")': False,
        'print("1 2"); print(); print("0.50"); print("YES")': False,  # a blank line inside counts
        'print("1 2 0.50 YES")': False,
    }
    func = LcbGenerationProblem("f", "", "", "", "", "", "", [LcbTest("1", "[0.3, [1, 2]]", "functional")], "g")
    returned = {
        "return [0.3, [1, 2]]": True,
        "return (0.3, [1, 2])": True,  # a top-level tuple is a list
        "return [0.3, (1, 2)]": False,  # a nested one is not
        "return [0.1 + 0.2, [1, 2]]": False,  # exact equality
    }
    programs = {"s": list(printed), "f": [f"class Solution:\n    def g(self, a):\n        {body}\n" for body in returned]}
    res = score_code_generation([stdin, func], programs, sandbox=sandbox)
    assert [r["passed"] for r in res["s"]] == list(printed.values()), res["s"]
    assert [r["passed"] for r in res["f"]] == list(returned.values()), res["f"]

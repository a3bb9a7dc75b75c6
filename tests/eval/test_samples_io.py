"""Reading samples files: errors name the file, and what `eval run` wrote is read as it read it."""

import json

import pytest

from eval.samples_io import SamplesError, read_samples


@pytest.mark.parametrize("name,where", [("generations.json", r"generations\.json:"), ("samples.jsonl", r"samples\.jsonl:1:")])
def test_deeply_nested_json_is_an_error_naming_the_file_not_a_recursion_traceback(tmp_path, name, where):
    from eval.benchmarks import load_problems

    path = tmp_path / name
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(SamplesError, match=where + r".*nested too deeply"):
        read_samples(path, "cruxeval-o", load_problems("cruxeval-o")[:2])


def test_eval_score_reads_lcb_exec_completions_with_the_finish_reason_eval_run_wrote(tmp_path):
    from eval.backends import Completion
    from eval.benchmarks.livecodebench import LcbExecutionProblem
    from eval.runner import write_samples

    prob = LcbExecutionProblem(task_id="e0", code="def f(x):\n    return x", input="f(x = 1)", output="[1, 2]", function_name="f")
    text = "assert f(1) == [1,\n 2]\n"
    completions = {"e0": [Completion(text, "stop", 9), Completion(text, "length", 16), Completion(text)]}
    write_samples(tmp_path, "lcb-exec", completions, {"e0": ["a", "b", "c"]})
    rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert [(r.get("finish_reason"), r.get("tokens")) for r in rows] == [("stop", 9), ("length", 16), (None, None)]
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "answer"}) + "\n" for r in rows))
    assert read_samples(raw, "lcb-exec", [prob], style="direct") == {"e0": ["[1,\n 2]", "[1,", "[1,\n 2]"]}
    raw.write_text(json.dumps({"task_id": "e0", "completion": text, "finish_reason": "cut"}) + "\n")
    with pytest.raises(SamplesError, match=r"raw\.jsonl:1: finish_reason must be one of stop, eos, length or null, got 'cut'"):
        read_samples(raw, "lcb-exec", [prob], style="direct")

"""HumanEval(+)/MBPP(+) loading: a row whose inputs or atol cannot be read names its file, line and field."""

import json

import pytest

from eval.benchmarks import BenchmarkError, load_problems


def _row(task_id, **fields):
    return {"task_id": task_id, "prompt": "", "entry_point": "f", "canonical_solution": "", "base_input": [],
            "plus_input": [], "atol": 0, **fields}


@pytest.mark.parametrize("name, row, field", [
    ("mbpp", _row("Mbpp/2", plus_input=[[1, 2]]), "plus_input"),  # Mbpp/2's arguments are tuples
    ("humaneval", _row("HumanEval/0", atol="x"), "atol"),
])
def test_unreadable_field_names_file_line_and_field(tmp_path, name, row, field):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(_row(row["task_id"])) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(BenchmarkError, match=rf"data.jsonl:2: field {field} of '{row['task_id']}'"):
        load_problems(name, path=path)

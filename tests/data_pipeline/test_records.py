"""JSONL records: a malformed line names its file and line, and ``skip_bad`` counts it."""

import json

import pytest
from data_pipeline.records import RecordError, read_jsonl


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text('{"a": 1}\n{"a": 2\n[1, 2]\n{"a": 3}\n')
    with pytest.raises(RecordError, match=rf"{p}:2: not valid JSON"):
        read_jsonl(p)
    rejects = []
    rows = read_jsonl(p, skip_bad=True, rejects=rejects)
    assert rows == [{"a": 1}, {"a": 3}]
    assert [(r["line"], r["text"]) for r in rejects] == [(2, '{"a": 2'), (3, "[1, 2]")]
    assert "expected a JSON object" in rejects[1]["reason"]


def test_text_with_a_lone_surrogate_is_a_bad_line_not_a_crash_at_writing(tmp_path):
    from data_pipeline.records import write_jsonl_atomic

    p = tmp_path / "in.jsonl"
    p.write_text('{"a": "ok \\u00e9"}\n{"a": {"b": ["x", "cut \\ud83d"]}}\n')
    with pytest.raises(RecordError, match=rf"{p}:2: field 'a.b.1' holds a lone surrogate"):
        read_jsonl(p)
    rejects = []
    assert read_jsonl(p, skip_bad=True, rejects=rejects) == [{"a": "ok \u00e9"}]
    write_jsonl_atomic(tmp_path / "rejects.jsonl", rejects)  # the reject itself can be written
    assert read_jsonl(tmp_path / "rejects.jsonl")[0]["line"] == 2


def test_problem_rows_with_fields_of_the_wrong_type_are_bad_lines(tmp_path):
    from data_pipeline import build
    from data_pipeline.config import DataConfig

    p = tmp_path / "problems.jsonl"
    good = {"problem": "Add.", "solution": "def add(a, b):\n    return a + b", "seed_inputs": ["1, 2"]}
    p.write_text("\n".join(json.dumps(r) for r in [
        good, {**good, "problem": None}, {**good, "solution": "def g(a):\n    return a", "seed_inputs": "1, 2"}]) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), corpus_dirs=[str(tmp_path / "empty")], problems_jsonl=str(p))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordError, match=rf"{p}:2: field 'problem' is not text"):
        build.source_records(cfg)
    cfg.skip_bad = True
    records, rejects = build.source_records(cfg)
    assert [r["problem"] for r in records] == ["Add."]
    assert [(r["record"]["line"], r["detail"]) for r in rejects] == [
        (2, "field 'problem' is not text"), (3, "field 'seed_inputs' is not a list of argument texts")]

"""JSONL records: a malformed line names its file and line, and ``skip_bad`` counts it."""

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

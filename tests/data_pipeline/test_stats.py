"""``semcoder data stats`` on folders that are not a finished build."""

import pytest

from data_pipeline.records import RecordError
from data_pipeline.stats import load_report


def test_a_corrupt_report_names_the_file(tmp_path):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "report.json").write_text('{"rows": 1,\n')
    with pytest.raises(RecordError, match=rf"{tmp_path / 'report.json'}:2: not valid JSON"):
        load_report(tmp_path)
    (tmp_path / "report.json").unlink()
    with pytest.raises(RecordError, match="report.json: not found"):
        load_report(tmp_path)

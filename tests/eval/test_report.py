"""``eval report --png``: the chart goes where the user asked, and the command says where."""

import json

import pytest


@pytest.mark.parametrize(
    "given, written",
    [
        ("charts", "charts/report.png"),  # an existing folder: was charts.png, reported as "wrote charts"
        ("new/", "new/report.png"),  # a folder to make
        ("chart", "chart.png"),  # no suffix: matplotlib adds .png; the message said "chart"
        ("chart.svg", "chart.svg"),  # another format matplotlib writes is kept
    ],
)
def test_png_path_is_the_file_written_and_the_one_reported(given, written, tmp_path, monkeypatch, capsys):
    from semcoder_jax.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "charts").mkdir()
    results = tmp_path / "res"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({"benchmark": "cruxeval-o", "model": "m", "summary": {"pass@1": 12.5}}))
    assert main(["eval", "report", str(results), "--no-paper", "--png", given]) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"wrote {written}"
    assert (tmp_path / written).is_file()
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file() and "res" not in p.parts}
    assert made == {written}

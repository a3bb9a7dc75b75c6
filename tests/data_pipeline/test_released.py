"""Reading SemCoder's released PYX / PYX-R rows."""

import json
import re
import pytest
from data_pipeline.records import RecordError
from semcoder_jax import prompts


def test_released_rows(tmp_path):
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text("\n".join(json.dumps(r) for r in [
        {"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"},
        {"nl": "", "fwd_mnl": "[PYTHON]\ndef f(x): return x\nassert f(1) == ??\n[/PYTHON]", "bwd_mnl": "", "response": "[ANSWER]assert f(1) == 1[/ANSWER]"},
        {"nl": "", "fwd_mnl": "", "bwd_mnl": "[PYTHON]...[/PYTHON]", "response": "r"},
        {"nl": "both", "fwd_mnl": "set", "bwd_mnl": "", "response": "r"}]) + "\n")
    pyxr_path = tmp_path / "pyxr.jsonl"
    pyxr_path.write_text(json.dumps({"fault": "### Problem\n...", "response": "[MONOLOGUE]..."}) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx), pyxr=str(pyxr_path)))
    with pytest.raises(RecordError, match=r"pyx\.jsonl:4: expected exactly one of nl/fwd_mnl/bwd_mnl"):
        released_records(cfg)
    cfg.skip_bad = True
    recs, stages = released_records(cfg)
    assert [r["kind"] for r in recs] == ["nl2code", "forward", "backward", "refine"]
    assert recs[1]["prompt"] == prompts.render("forward", "[PYTHON]\ndef f(x): return x\nassert f(1) == ??\n[/PYTHON]")
    assert stages["released_pyx"] == {"in": 4, "kept": 3, "out": 3, "rejected": {"malformed_row": 1}, "notes": {}}


def test_released_pyx_rows_with_null_or_non_text_fields_are_rejected(tmp_path):
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text("\n".join(json.dumps(r) for r in [
        {"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"},
        {"nl": "Write sub.", "fwd_mnl": None, "bwd_mnl": None, "response": None},
        {"nl": "Write mul.", "fwd_mnl": 7, "bwd_mnl": "", "response": "def mul(a, b): return a * b"}]) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", skip_bad=True, released=ReleasedConfig(pyx=str(pyx)))
    recs, stages = released_records(cfg)
    assert [r["response"] for r in recs] == ["def add(a, b): return a + b"]
    assert stages["released_pyx"]["rejected"] == {"malformed_row": 2} and stages["released_pyx"]["in"] == 3


def test_released_paths_are_found_as_the_configs_other_paths(tmp_path, monkeypatch):
    """``problems_jsonl`` and the corpus folders are found from the project root when not from the
    working folder; ``released.pyx`` was not, so a relative path in a shipped config worked only from the root."""
    from data_pipeline import config
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "pyxr").write_text(json.dumps({"fault": "### Problem\n...", "response": "[MONOLOGUE]..."}) + "\n")
    monkeypatch.setattr(config, "PROJECT_ROOT", root)
    monkeypatch.chdir(tmp_path)
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyxr="data/pyxr"))
    recs, stages = released_records(cfg)
    assert [r["kind"] for r in recs] == ["refine"] and stages["released_pyxr"]["kept"] == 1


def test_released_errors_name_the_file_line_not_the_row_count(tmp_path):
    """Errors said "row N", counting parsed rows: blank and skipped bad lines made N point elsewhere."""
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    good = json.dumps({"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"})
    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text(f"\n{good}\n\n{json.dumps({'nl': 'Write sub.', 'response': ''})}\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx)))
    with pytest.raises(RecordError, match="^" + re.escape(f"{pyx}:4: missing or empty field 'response'") + "$"):
        released_records(cfg)
    pyx.write_text(f"{good}\n{{not json\n\n{json.dumps({'fault': 'x', 'response': 'y'})}\n{good.replace('add', 'plus')}\n")
    cfg.skip_bad = True
    recs, stages = released_records(cfg)
    assert len(recs) == 2 and stages["released_pyx"]["rejected"] == {"malformed_jsonl": 1, "malformed_row": 1}
    rejects = [json.loads(ln) for ln in (tmp_path / "out/stages/released_pyx/rejects-00000.jsonl").read_text().splitlines()]
    assert rejects[0]["record"]["line"] == 2
    assert rejects[1]["detail"] == f"{pyx}:4: expected exactly one of nl/fwd_mnl/bwd_mnl non-empty, got none"


def test_released_limit_reads_no_line_past_its_rows(tmp_path):
    """``released.limit=1`` still read the whole file: a bad line past the limit stopped the build,
    or with ``skip_bad`` was counted a reject although later good rows were not counted at all."""
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    good = json.dumps({"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"})
    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text(f"{{not json\n{good}\n{good}\n{{not json\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx), limit=1))
    with pytest.raises(RecordError, match=re.escape(f"{pyx}:1: not valid JSON")):  # within the limit: still refused
        released_records(cfg)
    cfg.skip_bad = True
    recs, stages = released_records(cfg)
    assert [r["response"] for r in recs] == ["def add(a, b): return a + b"]
    assert stages["released_pyx"] == {"in": 2, "kept": 1, "out": 1, "rejected": {"malformed_jsonl": 1}, "notes": {}}
    pyx.write_text(f"{good}\n{{not json\n")
    cfg.skip_bad = False
    assert len(released_records(cfg)[0]) == 1


def test_released_parquet_rows_are_read_and_named_by_row_index(tmp_path):
    """The hub serves parquet; a downloaded file was read as JSON lines and failed on its bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyxr = tmp_path / "pyxr.parquet"
    pq.write_table(pa.Table.from_pylist([{"fault": "### Problem\n...", "response": "[MONOLOGUE]..."},
                                         {"fault": "### Problem\n...", "response": ""}]), pyxr)
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyxr=str(pyxr)))
    with pytest.raises(RecordError, match="^" + re.escape(f"{pyxr} row 1: missing or empty field 'response'") + "$"):
        released_records(cfg)
    cfg.skip_bad = True
    recs, stages = released_records(cfg)
    assert [r["kind"] for r in recs] == ["refine"] and stages["released_pyxr"]["rejected"] == {"malformed_row": 1}


def test_released_rows_with_values_json_cannot_hold_are_rejected_not_fatal(tmp_path):
    """A parquet row whose ``response`` is bytes is "not text"; with skip_bad its reject was written as
    JSON and the build stopped on a TypeError instead."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx = tmp_path / "pyx.parquet"
    pq.write_table(pa.table({"nl": ["Write add.", "Write sub."], "response": [b"def add(a, b): return a + b", b"\xff"]}), pyx)
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", skip_bad=True, released=ReleasedConfig(pyx=str(pyx)))
    recs, stages = released_records(cfg)
    assert recs == [] and stages["released_pyx"]["rejected"] == {"malformed_row": 2}
    rejects = [json.loads(ln) for ln in (tmp_path / "out/stages/released_pyx/rejects-00000.jsonl").read_text().splitlines()]
    assert [r["detail"] for r in rejects] == [f"{pyx} row {i}: field 'response' is not text" for i in (0, 1)]
    assert rejects[1]["record"]["response"] == repr(b"\xff")


def test_a_rebuild_without_rejects_leaves_no_earlier_rejects_behind(tmp_path):
    """Rejects were written only when there were some, so an earlier build's file stayed and contradicted the report."""
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyxr = tmp_path / "pyxr.jsonl"
    good = json.dumps({"fault": "### Problem\n...", "response": "[MONOLOGUE]..."})
    pyxr.write_text(f"{good}\n{json.dumps({'fault': 'x', 'response': ''})}\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", skip_bad=True, released=ReleasedConfig(pyxr=str(pyxr)))
    rejects = tmp_path / "out/stages/released_pyxr/rejects-00000.jsonl"
    assert released_records(cfg)[1]["released_pyxr"]["rejected"] == {"malformed_row": 1} and rejects.exists()
    pyxr.write_text(f"{good}\n")
    assert released_records(cfg)[1]["released_pyxr"]["rejected"] == {} and not rejects.exists()
    pyxr.write_text(f"{good}\n{json.dumps({'fault': 'x', 'response': ''})}\n")
    assert released_records(cfg)[1]["released_pyxr"]["rejected"] == {"malformed_row": 1} and rejects.exists()
    pyx = tmp_path / "pyx.jsonl"  # a rebuild that no longer reads PyX-R drops its rejects with its report
    pyx.write_text(json.dumps({"nl": "Write add.", "response": "def add(a, b): return a + b"}) + "\n")
    cfg.released = ReleasedConfig(pyx=str(pyx))
    assert "released_pyxr" not in released_records(cfg)[1] and not rejects.exists()


def test_a_local_copy_of_the_hub_dataset_is_read_with_datasets(tmp_path, monkeypatch):
    """A folder (``huggingface-cli download semcoder/PyX --local-dir DIR``) was opened as a JSONL file."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from data_pipeline.released import load_rows

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")  # not one more copy in ~/.cache a run

    folder = tmp_path / "PyX"
    (folder / "data").mkdir(parents=True)
    rows = [{"nl": "", "fwd_mnl": "fwd", "bwd_mnl": "", "response": f"r{i}"} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "data" / "train-00000-of-00001.parquet")
    assert load_rows(str(folder)) == [(f"{folder}[train] row {i}", row) for i, row in enumerate(rows)]
    with pytest.raises(RecordError, match=re.escape(f"cannot load {folder}[test] from the local folder")):
        load_rows(str(folder), "test")


def _pyx_row(i: int) -> dict:
    return {"nl": f"Write add{i}.", "fwd_mnl": "", "bwd_mnl": "", "response": f"def add{i}(a, b): return a + b + {i}"}


def test_released_ids_follow_the_rows_text_not_their_place(tmp_path):
    """Ids were the row's position: dropping or re-ordering rows gave every later row another id, so
    splits.json and decontamination reports named other rows."""
    from data_pipeline import splits
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    rows = [_pyx_row(i) for i in range(20)]
    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx)))
    id_of = {r["response"]: r["id"] for r in released_records(cfg)[0]}
    assert len(set(id_of.values())) == 20 and all(re.fullmatch(r"pyx-[0-9a-f]{16}", i) for i in id_of.values())
    split_of = splits.assign([{"id": i} for i in id_of.values()], 0.3, seed=0)
    kept = rows[::-1][:-3]  # re-ordered, three rows filtered out
    pyx.write_text("".join(json.dumps(r) + "\n" for r in kept))
    again = released_records(cfg)[0]
    assert {r["response"]: r["id"] for r in again} == {r["response"]: id_of[r["response"]] for r in kept}
    assert all(split_of[rid] == s for rid, s in splits.assign(again, 0.3, seed=0).items())
    # The same instruction under another field, or text differing by one space, is another row.
    other = [{**rows[0], "nl": "", "fwd_mnl": rows[0]["nl"]}, {**rows[0], "response": rows[0]["response"] + " "}]
    pyx.write_text("".join(json.dumps(r) + "\n" for r in [rows[0], *other]))
    assert len({r["id"] for r in released_records(cfg)[0]}) == 3


def test_released_exact_duplicate_rows_are_rejected_and_counted(tmp_path):
    """Two identical rows would be trained on twice and, with text-based ids, share one id."""
    from data_pipeline.config import DataConfig, ReleasedConfig
    from data_pipeline.released import released_records

    pyx, pyxr = tmp_path / "pyx.jsonl", tmp_path / "pyxr.jsonl"
    pyx.write_text("".join(json.dumps(r) + "\n" for r in [_pyx_row(0), _pyx_row(1), _pyx_row(0), _pyx_row(0)]))
    fault = {"fault": "### Problem\n...", "response": "[MONOLOGUE]..."}
    pyxr.write_text(json.dumps(fault) + "\n" + json.dumps(fault) + "\n")
    cfg = DataConfig(output_dir=str(tmp_path / "out"), source="released", released=ReleasedConfig(pyx=str(pyx), pyxr=str(pyxr)))
    recs, stages = released_records(cfg)  # not a malformed row: refused without skip_bad neither
    assert [r["response"] for r in recs] == [_pyx_row(0)["response"], _pyx_row(1)["response"], fault["response"]]
    assert stages["released_pyx"] == {"in": 4, "kept": 2, "out": 2, "rejected": {"duplicate_row": 2}, "notes": {}}
    assert stages["released_pyxr"]["rejected"] == {"duplicate_row": 1} and stages["released_pyxr"]["in"] == 2
    rejects = [json.loads(ln) for ln in (tmp_path / "out/stages/released_pyx/rejects-00000.jsonl").read_text().splitlines()]
    assert [r["detail"] for r in rejects] == [f"{pyx}:{n}: the same text as {pyx}:1 ({recs[0]['id']})" for n in (3, 4)]
    assert rejects[0]["record"] == _pyx_row(0)


@pytest.mark.slow  # loads the tokenizer and TensorFlow
def test_a_rebuild_from_a_filtered_released_file_keeps_the_other_rows_split(tmp_path):
    """splits.json of a rebuild in the same folder names the same rows for the rows both files hold."""
    from data_pipeline import runner_local
    from data_pipeline.config import DataConfig, ReleasedConfig

    rows = [_pyx_row(i) for i in range(12)]
    pyx = tmp_path / "pyx.jsonl"
    out = tmp_path / "out"

    def build(rows):
        pyx.write_text("".join(json.dumps(r) + "\n" for r in rows))
        cfg = DataConfig(output_dir=str(out), source="released", released=ReleasedConfig(pyx=str(pyx)), seq_len=256,
                         tfrecord_shards=1, validation_fraction=0.3)
        runner_local.run(cfg, progress=False)
        split = json.loads((out / "splits.json").read_text())
        response = {r["id"]: r["response"] for r in map(json.loads, (out / "records" / "nl2code.jsonl").read_text().splitlines())}
        return {response[rid]: name for name in ("train", "validation") for rid in split[name]}

    before = build(rows)
    after = build(rows[5:] + rows[1:4])  # rows 0 and 4 dropped, the rest re-ordered
    assert set(before.values()) == {"train", "validation"} and len(after) == 10
    assert after == {r: s for r, s in before.items() if r in after}

"""The local runner: resume safety and checks before any stage runs."""

import json
import pytest
from semcoder_jax.config import ConfigError


def test_resuming_with_other_stage_settings_is_refused_naming_them(tmp_path):
    """A rerun with another num_shards reused the finished shards 0..n-1 of the old sharding: half
    the records were lost (or, with more shards, repeated) without a word."""
    from data_pipeline import build, runner_local
    from data_pipeline.cli import load

    out = [f"output_dir={tmp_path}"]
    cfg = load("demo", out)
    build.save_config(cfg)
    runner_local.run_stages(cfg, progress=False, only_source=True)
    seeds = sorted(r["id"] for i in range(cfg.num_shards) for r in build.read_shard(cfg, "seeds", i))
    with pytest.raises(ConfigError, match=r"num_shards: 4 -> 2.*delete"):
        runner_local.run_stages(load("demo", out + ["num_shards=2"]), progress=False, only_source=True)
    with pytest.raises(ConfigError, match="num_shards"):
        build.save_config(load("demo", out + ["num_shards=2"]))
    assert "num_shards: 4" in (tmp_path / "config.yaml").read_text()  # still describes the shards
    with pytest.raises(ConfigError, match=r"decontam\.ngram: 10 -> 8; llm\.model: 'gpt-4o-mini' -> 'm'"):
        runner_local.run_stages(load("demo", out + ["llm.model=m", "decontam.ngram=8"]), progress=False, only_source=True)
    # A settings file from before a stage setting existed (here: max_trace_steps) still resumes.
    settings = tmp_path / "stages" / "settings.json"
    settings.write_text(json.dumps({k: v for k, v in json.loads(settings.read_text()).items() if k != "max_trace_steps"}))
    runner_local.run_stages(load("demo", out), progress=False, only_source=True)
    # Settings of the final step alone keep the finished shards.
    runner_local.run_stages(load("demo", out + ["seq_len=512", "train_kinds=[refine]", "workers=1"]), progress=False, only_source=True)
    assert sorted(r["id"] for i in range(cfg.num_shards) for r in build.read_shard(cfg, "seeds", i)) == seeds


def test_a_tokenizer_that_does_not_load_stops_the_build_before_any_stage(tmp_path):
    """Only the last step tokenises: a wrong path used to cost a whole build before failing."""
    from data_pipeline import runner_local
    from data_pipeline.cli import load

    cfg = load("demo", [f"output_dir={tmp_path}", f"tokenizer={tmp_path / 'no-such-tokenizer'}"])
    with pytest.raises(ConfigError, match=r"data config: tokenizer: cannot load tokenizer .*no-such-tokenizer"):
        runner_local.run(cfg, progress=False)
    assert not (tmp_path / "stages").exists()


def test_a_build_with_no_rows_to_train_on_fails_after_writing_its_rejects(tmp_path, capsys):
    """Every record rejected (or none at all) finished with one empty shard and exit code 0; only
    the trainer refused it, later."""
    from data_pipeline import build, runner_local
    from data_pipeline.cli import load
    from data_pipeline.records import read_jsonl
    from semcoder_jax.cli.main import main

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text(json.dumps({"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "x " * 3000}) + "\n")
    out = tmp_path / "out"
    args = ["data", "build", "--config", "released", "--no-progress", f"output_dir={out}", f"released.pyx={pyx}",
            "released.pyxr=null", "seq_len=256", "tfrecord_shards=1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no training rows survived the build (rejected by stage: tokenize_pack: too_long=1)" in err
    assert str(out / "records" / "rejects.jsonl") in err
    assert [r["reason"] for r in read_jsonl(out / "records" / "rejects.jsonl")] == ["too_long"]
    assert json.loads((out / "report.json").read_text())["stages"]["tokenize_pack"]["rejected"] == {"too_long": 1}
    corpus = tmp_path / "empty_corpus"
    corpus.mkdir()
    cfg = load("demo", [f"output_dir={tmp_path / 'out2'}", f"corpus_dirs=[{corpus}]", "num_shards=1"])
    with pytest.raises(build.EmptyBuildError, match=r"no training rows survived the build \(no input records\)"):
        runner_local.run(cfg, progress=False)


def test_an_empty_build_with_a_validation_fraction_fails_as_empty_after_writing_its_report(tmp_path, capsys):
    """With nothing to split, the split refused the build first: "set validation_fraction=0", no report."""
    from semcoder_jax.cli.main import main

    pyx = tmp_path / "pyx.jsonl"
    pyx.write_text(json.dumps({"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "x " * 3000}) + "\n")
    out = tmp_path / "out"
    args = ["data", "build", "--config", "released", "--no-progress", f"output_dir={out}", f"released.pyx={pyx}",
            "released.pyxr=null", "seq_len=256", "tfrecord_shards=1", "validation_fraction=0.2"]
    assert main(args) == 2
    assert "no training rows survived the build (rejected by stage: tokenize_pack: too_long=1)" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["stages"]["tokenize_pack"]["rejected"] == {"too_long": 1}

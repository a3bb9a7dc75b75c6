"""The local runner: resume safety and checks before any stage runs."""

import json
from types import SimpleNamespace

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


CORPUS = {"a.py": "def one(x):\n    y = x + 1\n    return y\n\n\ndef two(x):\n    y = x * 2\n    return y\n",
          "b.py": "def three(x):\n    y = x - 3\n    return y\n\n\ndef four(x):\n    y = x // 4\n    return y\n"}


def _fake_stages(version: dict, calls: list):
    """Stage functions that stamp each record with the stage's current ``version`` (fast, no sandbox)."""
    from data_pipeline.stages.base import STAGE_ORDER

    def make(stage):
        def fn(record, ctx):
            if version.get("die_at") == (stage, record["id"]):
                raise KeyboardInterrupt  # a kill part-way through the stage
            calls.append(stage)
            return [{**record, stage: version.get(stage, 1)}]
        return fn
    return {s: make(s) for s in STAGE_ORDER}


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """A 2-shard build of four seeds through fake stages; ``code[stage]`` fakes an edit of that stage's code."""
    from data_pipeline import build, runner_local
    from data_pipeline.cli import load
    from data_pipeline.stages import base

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text)
    cfg = load("demo", [f"output_dir={tmp_path / 'out'}", f"corpus_dirs=[{corpus}]", "num_shards=2", "seed_kinds=[function]"])
    version, calls, code = {}, [], {}
    real = base.code_fingerprint

    def fingerprint(stage):
        fp = real(stage)
        if stage not in code:
            return fp
        modules = {**fp["modules"], f"data_pipeline.stages.{stage}": code[stage]}
        return {**fp, "modules": modules, "digest": f"edited-{code[stage]}"}

    monkeypatch.setattr(build, "code_fingerprint", fingerprint)
    monkeypatch.setattr(runner_local, "stage_functions", lambda: _fake_stages(version, calls))

    def run():
        calls.clear()
        runner_local.run_stages(cfg, progress=False)
        return build.final_problems(cfg)
    return SimpleNamespace(cfg=cfg, corpus=corpus, version=version, calls=calls, code=code, run=run)


def _done_mtimes(cfg, stage):
    from data_pipeline import build

    return [build.shard_paths(cfg, stage, i)[2].stat().st_mtime_ns for i in range(cfg.num_shards)]


def test_resume_redoes_the_stages_whose_code_changed_and_those_after(fake_build, caplog):
    """A resume reused every finished shard whatever code built it: an edited monologue stage (or an
    upgraded package) left the old monologues in the build, silently."""
    b = fake_build
    cfg, version, calls, code, run = b.cfg, b.version, b.calls, b.code, b.run
    first = run()
    assert len(first) == 4 and all(r["monologue"] == 1 for r in first) and calls.count("synthesis") == 4
    kept = {s: _done_mtimes(cfg, s) for s in ("seeds", "synthesis", "executability", "inputs")}
    assert run() == first and calls == []  # the same code: nothing is redone, nothing said
    code["monologue"], version["monologue"] = "v2", 2
    with caplog.at_level("WARNING", logger="data_pipeline.build"):
        second = run()
    assert all(r["monologue"] == 2 for r in second) and len(second) == 4
    assert sorted(set(calls)) == ["decontam", "monologue", "pyxr"] and calls.count("monologue") == 4
    assert {s: _done_mtimes(cfg, s) for s in kept} == kept  # the stages before were not redone
    (message,) = [r.getMessage() for r in caplog.records]
    assert "monologue: 2 of 2 shards (changed: data_pipeline.stages.monologue)" in message
    assert "pyxr: 2 of 2 shards (made from shards that are redone)" in message and "synthesis" not in message
    assert "build with the code that made them" in message


def test_a_kill_while_redoing_stale_shards_leaves_no_old_record_behind(fake_build):
    """The later stages' shards are removed before the redo starts: a kill during it must not leave
    pyxr shards made from the old monologues to be reused next time."""
    b = fake_build
    version, code, run = b.version, b.code, b.run
    first = run()
    code["monologue"], version["monologue"] = "v2", 2
    version["die_at"] = ("monologue", first[-1]["id"])
    with pytest.raises(KeyboardInterrupt):
        run()
    version.pop("die_at")
    version["pyxr"] = 2  # tells the pyxr shards made in this run from those of the first
    final = run()
    assert [(r["monologue"], r["pyxr"]) for r in final] == [(2, 2)] * 4


def test_shards_with_no_or_unreadable_code_record_are_redone(fake_build):
    """Shards of a build from before fingerprints were recorded, or with a truncated .done, cannot be
    told to match the code: they are redone, not trusted."""
    import json

    from data_pipeline import build

    b = fake_build
    cfg, version, calls, run = b.cfg, b.version, b.calls, b.run
    run()
    done0 = build.shard_paths(cfg, "inputs", 0)[2]
    report = json.loads(done0.read_text())
    done0.write_text(json.dumps({k: v for k, v in report.items() if k != "code"}))
    build.shard_paths(cfg, "pyxr", 1)[2].write_text('{"in": ')
    version.update(inputs=2, pyxr=2)
    final = run()
    # Shard 0 from inputs on, shard 1 from pyxr on; the record ids sort across shards.
    by_shard = [{r["id"] for r in build.read_shard(cfg, "decontam", i)} for i in range(2)]
    assert {(r["id"] in by_shard[0], r["inputs"], r["pyxr"]) for r in final} == {(True, 2, 2), (False, 1, 2)}
    assert sorted(calls) == ["decontam"] * 4 + ["inputs"] * 2 + ["monologue"] * 2 + ["pyxr"] * 4


def test_an_edited_corpus_redoes_the_source_and_every_stage(fake_build, caplog):
    """Finished source shards were reused after the corpus changed: new seeds never entered the build."""
    b = fake_build
    corpus, calls, run = b.corpus, b.calls, b.run
    run()
    (corpus / "c.py").write_text("def five(x):\n    y = x % 5\n    return y\n")
    with caplog.at_level("WARNING", logger="data_pipeline.build"):
        final = run()
    assert len(final) == 5 and calls.count("synthesis") == 5
    assert "seeds: 2 of 2 shards (the source records changed" in caplog.text


def test_finishing_refuses_shards_built_by_other_code(fake_build):
    """Beam workers running another version wrote shards the launcher then packed with its own."""
    import json

    from data_pipeline import build
    from data_pipeline.records import RecordError

    cfg, run = fake_build.cfg, fake_build.run
    run()
    done = build.shard_paths(cfg, "pyxr", 1)[2]
    report = json.loads(done.read_text())
    report["code"] = {**report["code"], "digest": "other", "python": "3.99"}
    done.write_text(json.dumps(report))
    with pytest.raises(RecordError, match=r"pyxr/shard-00001\.done: stage pyxr shard 1 was built by other code .*Python 3\.99"):
        build.final_problems(cfg)


def test_code_fingerprint_ignores_layout_but_not_code(tmp_path):
    from data_pipeline.stages.base import tree_fingerprint

    pkg = tmp_path / "data_pipeline" / "stages"
    pkg.mkdir(parents=True)
    (tmp_path / "semcoder_jax").mkdir()
    (tmp_path / "semcoder_jax" / "helper.py").write_text("def h(x):\n    return x + 1\n")
    (tmp_path / "data_pipeline" / "config.py").write_text("A = 1\n")
    stage = pkg / "mono.py"
    stage.write_text('"""Doc."""\nfrom data_pipeline.config import A\n\ndef f(x):\n    from semcoder_jax import helper\n    return helper.h(x)\n')
    first = tree_fingerprint(tmp_path, "mono")
    assert set(first["modules"]) == {"data_pipeline.stages.mono", "semcoder_jax.helper"}  # config is no record code
    stage.write_text('"""Other doc."""\nfrom data_pipeline.config import A  # a comment\n\n\ndef f(x):\n    """Why."""\n'
                     '    from semcoder_jax import helper\n\n    return helper.h( x )\n')
    (tmp_path / "data_pipeline" / "config.py").write_text("A = 2\n")
    assert tree_fingerprint(tmp_path, "mono")["digest"] == first["digest"]
    (tmp_path / "semcoder_jax" / "helper.py").write_text("def h(x):\n    return x + 2\n")  # a module it imports
    changed = tree_fingerprint(tmp_path, "mono")
    assert changed["digest"] != first["digest"]
    assert [k for k in first["modules"] if first["modules"][k] != changed["modules"][k]] == ["semcoder_jax.helper"]


def test_a_stage_result_that_is_no_records_is_rejected_with_a_reason():
    """A stage returning [] lost its record uncounted; a dict was spread into the shard as its keys."""
    from data_pipeline import build
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.base import StageContext

    results = {"a": [], "b": {"id": "b"}, "c": None, "d": [{"no": "id"}], "e": [{"id": "e"}, {"id": "e2"}]}
    outputs, rejects, report = build.apply_stage(lambda r, ctx: results[r["id"]], [{"id": k} for k in results],
                                                 StageContext(DataConfig()), workers=1)
    assert [o["id"] for o in outputs] == ["e", "e2"]
    assert {r["record"]["id"]: r["reason"] for r in rejects} == {
        "a": "stage_error:no_output", "b": "stage_error:bad_output", "c": "stage_error:bad_output", "d": "stage_error:bad_output"}
    assert report["in"] == report["kept"] + sum(report["rejected"].values()) == 5


def test_code_fingerprint_follows_modules_named_in_strings_and_the_files_stages_read(tmp_path, monkeypatch):
    """The sandbox starts its fork server as ``python -m semcoder_jax.execution.forkserver`` and the
    monologue stage reads its few-shot prompts from ``assets/fewshot``: editing either changed no
    fingerprint, so shards made by the old code were kept."""
    from data_pipeline.stages import base

    for stage in ("monologue", "pyxr"):
        assert {"semcoder_jax.execution.forkserver", "data_pipeline/assets/fewshot/forward.md"} <= set(base.code_fingerprint(stage)["modules"])
    assert "semcoder_jax.execution.forkserver" in base.code_fingerprint("executability")["modules"]
    pkg = tmp_path / "data_pipeline" / "stages"
    pkg.mkdir(parents=True)
    (tmp_path / "semcoder_jax").mkdir()
    server, shots = tmp_path / "semcoder_jax" / "server.py", tmp_path / "data_pipeline" / "shots"
    server.write_text("SEED = 0\n")
    shots.mkdir()
    (shots / "forward.md").write_text("prompt\n-----\nanswer\n")
    (pkg / "mono.py").write_text('import subprocess, sys\n\ndef f():\n    subprocess.run([sys.executable, "-m", "semcoder_jax.server"])\n')
    monkeypatch.setattr(base, "MODULE_DATA", {"data_pipeline.stages.mono": ("data_pipeline/shots",)})
    first = base.tree_fingerprint(tmp_path, "mono")
    server.write_text("SEED = 1\n")
    second = base.tree_fingerprint(tmp_path, "mono")
    (shots / "forward.md").write_text("prompt\n-----\nanother answer\n")
    third = base.tree_fingerprint(tmp_path, "mono")
    assert len({first["digest"], second["digest"], third["digest"]}) == 3
    assert [k for k in third["modules"] if third["modules"][k] != second["modules"][k]] == ["data_pipeline/shots/forward.md"]

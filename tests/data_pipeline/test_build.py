"""End-to-end builds of the offline demo: verified answers, trace-faithful monologues, TFRecords
that read back exactly, resumability after SIGKILL, Beam == local, and decontamination."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from data_pipeline import build, runner_local
from data_pipeline.cli import load
from data_pipeline.records import read_jsonl
from data_pipeline.stages.monologue import extract_answer
from semcoder_jax import PROJECT_ROOT
from semcoder_jax.packed_schema import feature_spec

pytestmark = pytest.mark.slow

PLANTED = '''def f(nums):
    """Pair each number with its count, largest first.
    >>> f([1, 1, 3, 1, 3, 1])
    """
    output = []
    for n in nums:
        output.append((nums.count(n), n))
    output.sort(reverse=True)
    return output
'''
SLICE_FUNCS = ("rotate_left", "balance_brackets", "to_base", "mask_digits", "flatten_once")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    cfg = load("demo", [f"output_dir={tmp_path_factory.mktemp('demo')}"])
    report = runner_local.run(cfg, progress=False)
    return cfg, report


@pytest.fixture(scope="module")
def slice_corpus(tmp_path_factory):
    """Five shipped seed functions plus a CRUXEval program planted among them."""
    from data_pipeline.stages.seeds import extract_seeds

    d = tmp_path_factory.mktemp("corpus")
    chunks = []
    for f in sorted((PROJECT_ROOT / "data_pipeline/assets/seed_corpus").glob("*.py")):
        chunks += [s["code"] for s in extract_seeds(f.read_text(), kinds=("function",)) if s["name"] in SLICE_FUNCS]
    (d / "funcs.py").write_text("\n\n\n".join(chunks) + "\n")
    (d / "planted.py").write_text(PLANTED)
    return d


def slice_overrides(corpus, out):
    return [f"output_dir={out}", f"corpus_dirs=[{corpus}]", "num_shards=3", "tfrecord_shards=2", "seq_len=1024"]


@pytest.fixture(scope="module")
def slice_ref(slice_corpus, tmp_path_factory):
    cfg = load("demo", slice_overrides(slice_corpus, tmp_path_factory.mktemp("ref")))
    return cfg, runner_local.run(cfg, progress=False)


def outputs_of(out: Path) -> dict[str, bytes]:
    files = sorted(out.glob("tfrecords/*.tfrecord")) + sorted(out.glob("records/*.jsonl"))
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def test_demo_builds_and_every_answer_passes(demo):
    from semcoder_jax.execution import Job, Sandbox

    cfg, report = demo
    out = Path(cfg.output_dir)
    kinds = report["records_by_kind"]
    assert kinds["nl2code"] == 30 and kinds["forward"] >= 25 and kinds["backward"] >= 25 and kinds["refine"] >= 15
    prev_out = None
    for name, st in report["stages"].items():
        assert st["in"] == st["kept"] + sum(st["rejected"].values()), name
        if prev_out is not None and name != "tokenize_pack":
            assert st["in"] == prev_out, name
        prev_out = st["out"]
    jobs, names = [], []
    for kind in ("forward", "backward"):
        for r in read_jsonl(out / "records" / f"{kind}.jsonl"):
            answer = extract_answer(r["response"])
            assert answer == f"assert f({r['input']}) == {r['output']}"
            assert ("?? == " not in r["prompt"]) and r["prompt"].count("[PYTHON]") == 1
            jobs.append(Job(r["code"] + "\n" + answer))
            names.append(r["id"])
    with Sandbox() as box:
        results = box.map(jobs)
    failed = [n for n, res in zip(names, results) if res.status != "passed"]
    assert not failed and len(jobs) == kinds["forward"] + kinds["backward"]
    from data_pipeline.stages.pyxr import refined_code

    jobs, expect = [], []
    for r in read_jsonl(out / "records" / "refine.jsonl"):
        assert "### Execution Simulation" in r["response"] and "### Root Cause Analysis" in r["response"]
        buggy = re.search(r"### Buggy Solution\n```python\n(.*?)\n```", r["prompt"], re.S).group(1)
        failed_test = re.search(r"### Failed Test\n```python\n(.*?)\n```", r["prompt"], re.S).group(1)
        jobs += [Job(refined_code(r["response"]) + "\n" + failed_test), Job(buggy + "\n" + failed_test)]
        expect += [True, False]
    with Sandbox() as box:
        assert [res.status == "passed" for res in box.map(jobs)] == expect  # the fix passes, the bug fails


_SETS = re.compile(r"^- (?:Before that, )?\[L(\d+)\]: `.*?` sets (.*)\.$")
_PAIR = re.compile(r"`([A-Za-z_]\w*)` to `(.*?)`(?=, `|$)")


def test_builtin_monologue_values_come_from_the_trace(demo):
    from semcoder_jax.execution import Sandbox, trace_call

    cfg, _ = demo
    out = Path(cfg.output_dir)
    checked = 0
    with Sandbox() as box:
        for kind in ("forward", "backward"):
            for r in read_jsonl(out / "records" / f"{kind}.jsonl"):
                trace = trace_call(r["code"], f"f({r['input']})", sandbox=box, max_repr=cfg.max_repr)
                frame = next(e for e in trace.events if e["kind"] == "call")
                facts = {(e["line"], k, v) for e in trace.events if e["kind"] == "line" and e["frame"] == frame["frame"]
                         for k, v in e["locals"].items()}
                for line in r["response"].splitlines():
                    m = _SETS.match(line)
                    if m:
                        pairs = _PAIR.findall(m.group(2))
                        assert pairs, line
                        for name, value in pairs:
                            assert (int(m.group(1)) - 4, name, value) in facts, (r["id"], line)
                            checked += 1
                    if "binds " in line and "no arguments" not in line:
                        for name, value in _PAIR.findall(line.split("binds ", 1)[1].replace(" and `", ", `").rstrip(".")):
                            assert frame["locals"][name] == value, (r["id"], line)
                            checked += 1
                    m = re.fullmatch(r"The function returns `(.*)` for the input `(.*)`\.", line) or re.fullmatch(
                        r"- \[L\d+\]: the function returns `(.*)`\.", line) or re.fullmatch(
                        r"- The final output `(.*)` is returned at .*", line)
                    if m:
                        assert m.group(1) == trace.return_repr == r["output"], (r["id"], line)
                        assert m.lastindex == 1 or m.group(2) == r["input"], (r["id"], line)
                        checked += 1
                    if line.startswith("The input `"):
                        assert f"`{r['input']}` makes `f` return `{trace.return_repr}`" in line
    assert checked > 200


def test_tfrecords_read_back_exactly(demo, tokenizer):
    import tensorflow as tf

    from data_pipeline.tfds_builder import builder

    cfg, report = demo
    out = Path(cfg.output_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    seq_len = manifest["seq_len"]
    files = [str(out / f) for f in manifest["splits"]["train"]["files"]]
    from data_pipeline.tfrecords import sha256_file

    assert all(sha256_file(out / f) == h for f, h in manifest["checksums"].items())
    ds = tf.data.TFRecordDataset(files).map(lambda x: tf.io.parse_single_example(x, feature_spec(seq_len)))
    rows = [{k: v.numpy() for k, v in ex.items()} for ex in ds]
    assert len(rows) == manifest["splits"]["train"]["rows"] == report["rows"]

    expected = Counter()
    for f in sorted((out / "records").glob("*.jsonl")):
        if f.stem == "rejects":
            continue
        for r in read_jsonl(f):
            p = tokenizer(r["prompt"], add_special_tokens=False)["input_ids"]
            q = tokenizer(r["response"], add_special_tokens=False)["input_ids"]
            expected[(tuple([32013, *p, *q, 32014]), tuple([0] * (len(p) + 1) + [1] * (len(q) + 1)))] += 1
    got = Counter()
    for row in rows:
        seg, pos, ids, mask = row["segment_ids"], row["positions"], row["input_ids"], row["loss_mask"]
        n_seg = seg.max()
        used = int((seg > 0).sum())
        assert (seg[used:] == 0).all() and (ids[used:] == 0).all() and (mask[used:] == 0).all() and (pos[used:] == 0).all()
        assert (np.diff(seg[:used]) >= 0).all() and set(seg[:used]) == set(range(1, n_seg + 1))
        # Attention allowed = causal and same segment: each token sees exactly its own segment's prefix.
        allowed = (seg[:, None] == seg[None, :]) & (seg[:, None] > 0) & np.tri(seq_len, dtype=bool)
        for s in range(1, n_seg + 1):
            idx = np.flatnonzero(seg == s)
            assert (pos[idx] == np.arange(len(idx))).all() and ids[idx[0]] == 32013
            assert allowed[idx].sum(axis=1).tolist() == list(range(1, len(idx) + 1))
            assert not allowed[idx][:, seg != s].any()
            got[(tuple(ids[idx].tolist()), tuple(mask[idx].tolist()))] += 1
    assert got == expected

    tfds_rows = list(builder(out).as_dataset(split="train").as_numpy_iterator())
    assert len(tfds_rows) == len(rows)
    assert sorted(r["input_ids"].tolist() for r in tfds_rows) == sorted(r["input_ids"].tolist() for r in rows)


def test_decontamination_removes_planted_cruxeval_program(slice_ref):
    cfg, report = slice_ref
    out = Path(cfg.output_dir)
    dec = report["stages"]["decontam"]
    assert dec["rejected"] == {"edit_similarity": 1}
    (rej,) = [r for i in range(cfg.num_shards) for r in read_jsonl(build.shard_paths(cfg, "decontam", i)[1])]
    assert rej["record"]["solution"].startswith("def f(nums):") and "cruxeval.jsonl:sample_0" in rej["detail"]
    assert not any("nums.count(n)" in r["response"] for r in read_jsonl(out / "records" / "nl2code.jsonl"))
    assert report["records_by_kind"]["nl2code"] == len(SLICE_FUNCS)


def test_killed_build_resumes_to_identical_tfrecords(slice_ref, slice_corpus, tmp_path):
    ref_cfg, _ = slice_ref
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "semcoder_jax.cli.main", "data", "build", "--config", "demo", "--no-progress",
           *slice_overrides(slice_corpus, out)]
    env = dict(os.environ, **{build.CRASH_ENV: "9"})
    first = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == -9, first.stderr[-2000:]
    done = sorted(p.relative_to(out) for p in out.glob("stages/*/shard-*.done"))
    assert 0 < len(done) < 3 * 7 and not (out / "manifest.json").exists()
    mtimes = {p: (out / p).stat().st_mtime_ns for p in done}
    env.pop(build.CRASH_ENV)
    second = subprocess.run(cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    # Finished shards were skipped (unless the stages' code was edited in between: stderr says so).
    assert all((out / p).stat().st_mtime_ns == t for p, t in mtimes.items()), second.stderr[-2000:]
    assert outputs_of(out) == outputs_of(Path(ref_cfg.output_dir))


def test_beam_direct_runner_matches_local(slice_ref, slice_corpus, tmp_path, monkeypatch):
    from data_pipeline import runner_beam

    ref_cfg, ref_report = slice_ref
    # More shards than seeds: empty shards never reach a Beam stage and are completed by the launcher;
    # records do not depend on the sharding, so the output still equals the 3-shard local build.
    cfg = load("demo", slice_overrides(slice_corpus, tmp_path / "beam") + ["num_shards=8"])
    write, written = build.write_shard, []

    def fail_after_ten(*args):  # the first run dies part-way through the stages; the second resumes it
        if len(written) >= 10:
            raise RuntimeError("worker lost")
        written.append(args[1])
        write(*args)

    monkeypatch.setattr(build, "write_shard", fail_after_ten)
    with pytest.raises(Exception, match="worker lost"):
        runner_beam.run(cfg, progress=False)
    monkeypatch.undo()
    done = sorted(Path(cfg.output_dir).glob("stages/*/*.done"))
    assert len(done) == 10 and set(written) == {"seeds", "synthesis"}
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    report = runner_beam.run(cfg, progress=False)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # finished shards were not redone
    assert report["runner"] == "beam"
    assert outputs_of(Path(cfg.output_dir)) == outputs_of(Path(ref_cfg.output_dir))
    strip = lambda st: {k: {kk: vv for kk, vv in v.items() if kk != "wall_s"} for k, v in st.items()}
    assert strip(report["stages"]) == strip(ref_report["stages"])


def test_beam_refuses_stage_shards_its_workers_wrote_elsewhere(slice_corpus, tmp_path, monkeypatch):
    # Workers that do not share output_dir leave the launcher without stage shards; completing those
    # as empty would finish a build with no records and no error.
    from data_pipeline import runner_beam
    from semcoder_jax.errors import SemcoderError

    cfg = load("demo", slice_overrides(slice_corpus, tmp_path / "out"))
    write = build.write_shard
    monkeypatch.setattr(build, "write_shard", lambda config, stage, *a: write(config, stage, *a) if stage == build.SOURCE_STAGE else None)
    with pytest.raises(SemcoderError, match=r"synthesis/shard-00000\.done.*every worker"):
        runner_beam.run_stages(cfg)


def test_malformed_problem_line_cli_error_and_skip_bad(slice_corpus, tmp_path):
    bad = tmp_path / "problems.jsonl"
    bad.write_text('{"problem": "Add.", "solution": "def add(a, b):\\n    return a + b", "seed_inputs": ["1, 2"]}\n{"problem": oops}\n')
    cmd = [sys.executable, "-m", "semcoder_jax.cli.main", "data", "build", "--config", "demo", "--no-progress",
           f"output_dir={tmp_path / 'o'}", f"problems_jsonl={bad}", f"corpus_dirs=[{slice_corpus}]"]
    res = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert f"{bad}:2: not valid JSON" in res.stderr and "Traceback" not in res.stderr
    again = '{"problem": "Add.", "solution": "def add(a, b):\\n    return a + b", "seed_inputs": ["3, 4"]}\n'
    bad.write_text(bad.read_text() + again)  # the same problem and solution: trained twice if kept
    cfg = load("demo", [f"output_dir={tmp_path / 'o2'}", f"problems_jsonl={bad}", f"corpus_dirs=[{slice_corpus}]", "skip_bad=true", "num_shards=2"])
    runner_local.run_stages(cfg, progress=False, only_source=True)
    reports = build.stage_reports(cfg)["seeds"]
    assert reports["in"] == reports["out"] + 2 == len(SLICE_FUNCS) + 1 + 1 + 1 + 1
    rejects = sorted((r for i in range(2) for r in read_jsonl(build.shard_paths(cfg, "seeds", i)[1])), key=lambda r: r["reason"])
    assert [r["reason"] for r in rejects] == ["duplicate_problem", "malformed_jsonl"]
    assert rejects[0]["record"]["seed_inputs"] == ["3, 4"]
    assert (rejects[1]["record"]["line"], rejects[1]["record"]["text"]) == (2, '{"problem": oops}')


def test_stats_cli_prints_report_and_writes_plots(demo, capsys):
    from semcoder_jax.cli.main import main

    cfg, _ = demo
    assert main(["data", "stats", cfg.output_dir]) == 0
    text = capsys.readouterr().out
    assert "decontam" in text and "padding" in text
    for name in ("lengths.png", "coverage.png", "rejections.png"):
        assert (Path(cfg.output_dir) / "plots" / name).stat().st_size > 1000


def test_train_kinds_selects_the_stage_of_training(slice_ref, slice_corpus, tmp_path):
    """PYX-R alone for the refinement stage; finished stages are reused, other kinds are counted out."""
    import shutil

    cfg, _ = slice_ref
    out = tmp_path / "pyxr"
    shutil.copytree(cfg.output_dir, out)
    refine_cfg = load("demo", slice_overrides(slice_corpus, out) + ["train_kinds=[refine]"])
    report = runner_local.run(refine_cfg, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    by_kind = manifest["counts"]["records_by_kind"]
    assert set(manifest["counts"]["packed_by_kind"]) == {"refine"}
    stage = report["stages"]["tokenize_pack"]
    assert stage["rejected"]["kind_not_trained"] == sum(n for k, n in by_kind.items() if k != "refine")
    assert stage["in"] == stage["out"] + sum(stage["rejected"].values())
    from semcoder_jax.config import ConfigError

    with pytest.raises(ConfigError, match=r"train_kinds: expected a non-empty subset .* got \['poetry'\]"):
        load("demo", slice_overrides(slice_corpus, out) + ["train_kinds=[poetry]"])


VAL_FRACTION = 0.4


def build_with_validation(slice_ref, slice_corpus, out, fraction=VAL_FRACTION):
    """The slice's finished stages copied to ``out`` and finalised with ``validation_fraction``."""
    import shutil

    cfg, _ = slice_ref
    if not out.exists():
        shutil.copytree(cfg.output_dir, out)
    val_cfg = load("demo", slice_overrides(slice_corpus, out) + [f"validation_fraction={fraction}"])
    return val_cfg, runner_local.run(val_cfg, progress=False)


@pytest.fixture(scope="module")
def slice_val(slice_ref, slice_corpus, tmp_path_factory):
    return build_with_validation(slice_ref, slice_corpus, tmp_path_factory.mktemp("val") / "out")


def test_validation_split_holds_out_whole_problems(slice_val, tokenizer):
    from data_pipeline.tfds_builder import builder
    from semcoder_jax.train.input import read_tfrecord_rows, resolve_tfrecords

    cfg, report = slice_val
    out = Path(cfg.output_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "validation"}
    decoded = {}
    for split, entry in manifest["splits"].items():
        files, rows, seq_len, max_runs, file_rows = resolve_tfrecords(str(out), split)
        assert file_rows == entry["shard_rows"]
        assert files == [str(out / f) for f in entry["files"]] and all(Path(f).name.startswith(f"{split}-") for f in files)
        assert seq_len == cfg.seq_len and max_runs == manifest["max_segments"] >= entry["max_segments"]
        batch = read_tfrecord_rows(files, seq_len)
        assert len(batch["input_ids"]) == rows == entry["rows"] == sum(entry["shard_rows"]) > 0
        assert len(list(builder(out).as_dataset(split=split).as_numpy_iterator())) == rows
        decoded[split] = Counter(tuple(ids[seg == s].tolist()) for ids, seg in zip(batch["input_ids"], batch["segment_ids"])
                                 for s in range(1, seg.max() + 1))
    assert manifest["max_segments"] == max(e["max_segments"] for e in manifest["splits"].values())

    records = {r["id"]: r for f in sorted((out / "records").glob("*.jsonl")) if f.stem != "rejects" for r in read_jsonl(f)}
    too_long = {r["record"]["id"] for r in read_jsonl(out / "records" / "rejects.jsonl")}
    ids = json.loads((out / "splits.json").read_text())
    train, val = set(ids["train"]), set(ids["validation"])
    assert train and val and not train & val and train | val == set(records) - too_long  # every packed record in one split
    problem_of = lambda rid: records[rid]["problem_id"]
    assert all(rid.startswith(problem_of(rid) + "-") for rid in records)
    assert not {problem_of(r) for r in train} & {problem_of(r) for r in val}
    for split, rids in (("train", train), ("validation", val)):  # the shards hold exactly their split's records
        expected = Counter()
        for rid in rids:
            p = tokenizer(records[rid]["prompt"], add_special_tokens=False)["input_ids"]
            q = tokenizer(records[rid]["response"], add_special_tokens=False)["input_ids"]
            expected[(tokenizer.bos_token_id, *p, *q, tokenizer.eos_token_id)] += 1
        assert decoded[split] == expected, split
        entry = manifest["splits"][split]
        assert entry["examples"] == len(rids) and entry["problems"] == len({problem_of(r) for r in rids})

    stage = report["stages"]["tokenize_pack"]
    assert stage["in"] == stage["out"] + sum(stage["rejected"].values()) == len(records)
    assert stage["out"] == len(train) + len(val) and stage["rejected"].get("too_long", 0) == len(too_long)
    assert stage["notes"]["held_out_validation"] == len(val) == report["validation"]["examples"]
    assert report["examples"] == len(train) and manifest["counts"]["packed_by_kind"] == dict(Counter(records[r]["kind"] for r in train))
    assert manifest["tokens"] == manifest["splits"]["train"]["tokens"]


def test_validation_split_is_deterministic_and_stale_shards_go(slice_val, slice_ref, slice_corpus, tmp_path):
    cfg, _ = slice_val
    again, _ = build_with_validation(slice_ref, slice_corpus, tmp_path / "again")
    assert (Path(again.output_dir) / "splits.json").read_bytes() == (Path(cfg.output_dir) / "splits.json").read_bytes()
    assert outputs_of(Path(again.output_dir)) == outputs_of(Path(cfg.output_dir))
    # The same folder rebuilt without a validation split: the earlier validation shards are gone and
    # the output is that of a build that never held anything out.
    build_with_validation(slice_ref, slice_corpus, tmp_path / "again", fraction=0.0)
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train"} and not (tmp_path / "again" / "splits.json").exists()
    assert outputs_of(tmp_path / "again") == outputs_of(Path(slice_ref[0].output_dir))


def test_trainer_evaluates_on_the_built_validation_split(slice_val, tmp_path):
    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.trainer import train

    cfg, report = slice_val
    manifest = json.loads((Path(cfg.output_dir) / "manifest.json").read_text())
    # The vocabulary stays (the rows hold DeepSeek-Coder ids); a narrower, 1-layer body cuts the compile.
    train_cfg = load_train_config(None, [
        "model=tiny", "model.num_layers=1", "model.hidden_size=16", "model.intermediate_size=32", "model.num_heads=2",
        "model.num_kv_heads=1", f"data.path={cfg.output_dir}", f"data.seq_len={cfg.seq_len}", "data.global_batch_size=2",
        "max_steps=1", "validation.every=1", "tensorboard=false", "mesh.num_devices=1", "mesh.fsdp=1",
        f"run_dir={tmp_path / 'run'}",
    ])
    (record,) = train(train_cfg)
    # Every response token of the held-out examples is scored once (a segment's first token is prompt).
    assert record["eval_tokens"] == manifest["splits"]["validation"]["tokens"]["target"] > 0
    assert 0 < record["eval_loss"] < 20


def test_records_of_kinds_a_rebuild_no_longer_has_are_removed(tmp_path):
    """records/<kind>.jsonl of an earlier build in the same folder stayed beside the new ones."""
    from data_pipeline.config import DataConfig, ReleasedConfig

    pyx, pyxr = tmp_path / "pyx.jsonl", tmp_path / "pyxr.jsonl"
    pyx.write_text(json.dumps({"nl": "Write add.", "fwd_mnl": "", "bwd_mnl": "", "response": "def add(a, b): return a + b"}) + "\n")
    pyxr.write_text(json.dumps({"fault": "### Problem\nAdd.", "response": "[Refined]\ndef add(a, b): return a + b\n[/Refined]"}) + "\n")
    out = tmp_path / "out"
    for released in (ReleasedConfig(pyx=str(pyx), pyxr=str(pyxr)), ReleasedConfig(pyxr=str(pyxr))):
        runner_local.run(DataConfig(output_dir=str(out), source="released", released=released, seq_len=256, tfrecord_shards=1), progress=False)
    assert sorted(p.name for p in (out / "records").glob("*.jsonl")) == ["refine.jsonl", "rejects.jsonl"]


class _Killed(BaseException):
    """Stands for SIGKILL in-process: no ``except Exception`` clean-up runs."""


def _released_config(out: Path, pyx: Path, **over):
    from data_pipeline.config import DataConfig, ReleasedConfig

    return DataConfig(output_dir=str(out), source="released", released=ReleasedConfig(pyx=str(pyx), pyxr=None), seq_len=128, **over)


def _pyx(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"nl": f"Write add{i}.", "fwd_mnl": "", "bwd_mnl": "",
                                        "response": f"def add{i}(a, b):\n    return a + b + {i}"}) + "\n" for i in range(n)))
    return path


def _without_wall_s(value):
    if isinstance(value, dict):
        return {k: _without_wall_s(v) for k, v in value.items() if k != "wall_s"}
    return [_without_wall_s(v) for v in value] if isinstance(value, list) else value


def _hidden_leftovers(out: Path) -> list[str]:
    """What a build left hidden in OUT besides its lock file (harmless: the next build locks it again)."""
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") and p.name != build.LOCK_FILE)


def final_output(out: Path) -> dict[str, object]:
    """Each entry of the final step's output (None where absent), timings left out."""
    snap: dict[str, object] = {}
    for name in build.FINAL_ENTRIES:
        p = out / name
        if p.is_dir():
            snap[name] = {str(f.relative_to(p)): f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()}
        elif p.exists():
            snap[name] = _without_wall_s(json.loads(p.read_text()))
        else:
            snap[name] = None
    return snap


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    """An output folder holding build ``old`` (validation split, 2 shards), the config of build ``new``
    (other records, no validation split, 1 shard) for the same folder, and each one's output."""
    import shutil

    tmp = tmp_path_factory.mktemp("final")
    out = tmp / "out"
    old_cfg = _released_config(out, _pyx(tmp / "old.jsonl", 6), validation_fraction=0.4, tfrecord_shards=2)
    new_cfg = _released_config(out, _pyx(tmp / "new.jsonl", 9), tfrecord_shards=1)
    runner_local.run(new_cfg, progress=False)
    new = final_output(out)
    shutil.rmtree(out)
    runner_local.run(old_cfg, progress=False)
    old = final_output(out)
    assert old["splits.json"] and new["splits.json"] is None and old["records"] != new["records"]
    shutil.copytree(out, tmp / "old-copy")
    return tmp / "old-copy", new_cfg, old, new


def _killed_at(point, two_builds, out, monkeypatch):
    """``out`` holding the old build, then the new build killed at ``point``; False if it never got there."""
    import shutil

    base, new_cfg, _, _ = two_builds
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(base, out)

    def kill():
        raise _Killed

    monkeypatch.setenv(build.FINAL_CRASH_ENV, point)
    monkeypatch.setattr(build, "_kill_self", kill)
    try:
        runner_local.run(new_cfg, progress=False)
    except _Killed:
        return True
    finally:
        monkeypatch.delenv(build.FINAL_CRASH_ENV)
    return False


def test_a_kill_in_the_final_step_leaves_one_whole_output_and_the_next_build_completes(two_builds, monkeypatch):
    """A build killed while packing left the old manifest beside a mix of new and old shards. Now,
    killed anywhere in the final step: a manifest describes exactly the files beside it, tfrecords/
    is one build's whole folder (or, for an instant with no manifest, none), and the next run ends
    with the new output and no leftover folder."""
    from semcoder_jax.train.input import DataError, resolve_tfrecords

    _, new_cfg, old, new = two_builds
    out = Path(new_cfg.output_dir)
    assert _killed_at("pack", two_builds, out, monkeypatch)
    assert final_output(out) == old and (out / build.STAGING_DIR).is_dir()
    runner_local.run(new_cfg, progress=False)
    assert final_output(out) == new and not _hidden_leftovers(out)
    points = 0
    while _killed_at(f"commit:{points + 1}", two_builds, out, monkeypatch):
        points += 1
        now = final_output(out)
        for name, value in now.items():
            assert value in (old[name], new[name], None), (points, name)
        if now["manifest.json"] is not None:
            side = old if now["manifest.json"] == old["manifest.json"] else new
            assert now == side, points
        else:
            assert now["tfrecords"] is not None or (out / build.READY_DIR / "tfrecords").is_dir(), points
        try:  # the trainer reads one build's whole train split, or nothing
            files = resolve_tfrecords(str(out), "train").files
        except DataError as e:
            assert now["tfrecords"] is None and "no manifest.json and no *.tfrecord files" in str(e), points
        else:
            got = {Path(f).name: Path(f).read_bytes() for f in files}
            assert got in ({k: v for k, v in side["tfrecords"].items() if k.startswith("train-")} for side in (old, new)), points
        build.recover_final(out)
        assert final_output(out) == new and not _hidden_leftovers(out), points
    assert points == 9  # manifest aside; tfrecords, records aside and in; splits.json aside; report aside and in; manifest in


def test_a_failure_while_packing_leaves_the_earlier_output_and_no_staging(two_builds, monkeypatch, tmp_path):
    import dataclasses
    import shutil

    from data_pipeline import tfrecords

    base, new_cfg, old, _ = two_builds
    out = tmp_path / "out"
    shutil.copytree(base, out)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tfrecords, "write_shards", broken)
    with pytest.raises(OSError, match="disk full"):
        runner_local.run(dataclasses.replace(new_cfg, output_dir=str(out)), progress=False)
    assert final_output(out) == old and not _hidden_leftovers(out)


def test_a_symlinked_output_entry_is_refused_not_replaced(tmp_path):
    """OUT/tfrecords linked to a bigger disk: the commit moved the link aside and deleted it, so the
    new shards landed on OUT's disk and the old ones stayed behind the link, unused."""
    from semcoder_jax.config import ConfigError

    elsewhere = tmp_path / "big-disk" / "tfrecords"
    elsewhere.mkdir(parents=True)
    (elsewhere / "train-00000-of-00001.tfrecord").write_bytes(b"old")
    out = tmp_path / "out"
    out.mkdir()
    (out / "tfrecords").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ConfigError, match=r"out/tfrecords is a symbolic link .*make output_dir the link"):
        runner_local.run(_released_config(out, _pyx(tmp_path / "pyx.jsonl", 2), tfrecord_shards=1), progress=False)
    assert (out / "tfrecords").is_symlink() and not (out / "manifest.json").exists()
    assert [p.name for p in elsewhere.iterdir()] == ["train-00000-of-00001.tfrecord"]


def test_a_second_build_into_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    """A second build removed the first one's .final-staging (taken for a killed build's) while the
    first was writing it, and both wrote the same stage shards."""
    import socket

    from semcoder_jax.config import ConfigError

    out = tmp_path / "out"
    (out / build.STAGING_DIR).mkdir(parents=True)
    (out / build.STAGING_DIR / "manifest.json").write_text("{}")
    with build.output_lock(out):  # the first build (flock: per open file, so as another process meets it)
        with pytest.raises(ConfigError, match="another build is writing to this output_dir") as e:
            runner_local.run(_released_config(out, _pyx(tmp_path / "pyx.jsonl", 2), tfrecord_shards=1), progress=False)
        assert str(e.value) == (f"{out}: another build is writing to this output_dir (pid {os.getpid()} on "
                                f"{socket.gethostname()}); wait for it to end, or use another output_dir")
        assert (out / build.STAGING_DIR / "manifest.json").exists() and not (out / "manifest.json").exists()
    with build.output_lock(out):  # let go with the first build
        pass


def test_an_output_folder_that_cannot_be_locked_builds_with_a_warning(tmp_path, monkeypatch, caplog):
    """As `semcoder train` does: a file system without locks (ENOLCK on NFS without a lock service)
    does not stop the build, but the user is told that nothing guards the folder."""
    import errno
    import fcntl

    def no_locks(f, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="data_pipeline.build"), build.output_lock(out) as locked:
        assert locked is False
    assert (f"{out}: cannot lock the output folder (No locks available); building without the guard against a "
            "second build there") in caplog.text


def test_an_output_folder_that_cannot_rename_folders_is_refused_before_the_build(tmp_path, monkeypatch):
    """On a bucket mount that renames files but not folders the build ran to its end and then failed
    moving its output in, with an OSError naming a hidden folder."""
    from semcoder_jax.config import ConfigError

    real = os.rename

    def files_only(src, dst):
        if Path(src).is_dir():
            raise OSError(95, "Operation not supported")
        real(src, dst)

    monkeypatch.setattr(build.os, "rename", files_only)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"out: this filesystem cannot rename a folder \(\[Errno 95\] Operation not supported\)"):
        runner_local.run(_released_config(out, _pyx(tmp_path / "pyx.jsonl", 2), tfrecord_shards=1), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [build.LOCK_FILE]

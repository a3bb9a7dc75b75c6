"""Train configs: presets load, bad keys and meshes fail with one clear line before any compute;
the launch scripts run the command they should."""

import json
import os
import subprocess
import sys

import jax
import pytest

from semcoder_jax import CONFIG_DIR, PROJECT_ROOT
from semcoder_jax.cli.main import main
from semcoder_jax.config import ConfigError
from semcoder_jax.train.config import MeshConfig, load_train_config
from semcoder_jax.train.mesh import create_mesh
from semcoder_jax.train.optimizer import make_optimizer, make_schedule, warmup_steps
from semcoder_jax.train.config import OptimizerConfig


@pytest.mark.parametrize("path", sorted((CONFIG_DIR / "train").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_train_configs_load(path):
    cfg = load_train_config(str(path))
    assert cfg.data.global_batch_size % cfg.data.micro_batches == 0


def test_paper_hyperparameters():
    cfg = load_train_config(str(CONFIG_DIR / "train" / "semcoder-6.7b.yaml"))
    assert (cfg.optimizer.lr, cfg.optimizer.min_lr, cfg.data.global_batch_size, cfg.data.seq_len, cfg.data.epochs) == (5e-5, 5e-6, 512, 2048, 2)
    assert cfg.model.hidden_size == 4096 and cfg.init_from == "hf:deepseek-ai/deepseek-coder-6.7b-base"
    refine = load_train_config(str(CONFIG_DIR / "train" / "semcoder-6.7b-refine.yaml"))
    assert refine.optimizer.lr == 1e-5 and refine.init_from.startswith("orbax:runs/semcoder-6.7b")
    # SemCoder's scripts/train/finetune_refine.sh: --warmup_steps 5 --lr_scheduler_type cosine (to 0).
    assert (refine.optimizer.warmup_steps, refine.optimizer.min_lr, refine.optimizer.clip_norm) == (5, 0.0, 1.0)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG_DIR / "mesh").glob("*.yaml")))
def test_mesh_presets_load(name):
    assert isinstance(load_train_config(None, [f"mesh={name}"]).mesh, MeshConfig)


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: tiny\noptimizer:\n  lrate: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*lrate"):
        load_train_config(str(path))
    with pytest.raises(ConfigError, match="warmup_stepz"):
        load_train_config(None, ["optimizer.warmup_stepz=3"])


def test_loss_chunk_size_is_null_zero_or_positive():
    """A chunk that does not divide the row is padded with zero-weight positions (``head_loss``)."""
    assert load_train_config(None, ["data.seq_len=64", "loss_chunk_size=16"]).loss_chunk_size == 16
    assert load_train_config(None, ["data.seq_len=64", "loss_chunk_size=24"]).loss_chunk_size == 24
    assert load_train_config(None, ["loss_chunk_size=0"]).loss_chunk_size == 0
    with pytest.raises(ConfigError, match=r"loss_chunk_size \(-1\) must be null, 0 \(whole rows\) or a positive"):
        load_train_config(None, ["data.seq_len=64", "loss_chunk_size=-1"])


@pytest.mark.parametrize("override, message", [
    ("optimizer.b2=1.0", r"optimizer\.b2 must be in \[0, 1\)"),
    ("optimizer.min_lr=1.0", r"optimizer\.min_lr \(1\.0\) must not exceed"),
    ("optimizer.weight_decay=-0.1", "weight_decay"),
    ("z_loss=-1e-4", "z_loss must be >= 0"),
    ("data.shuffle_buffer=0", "data.shuffle_buffer must be >= 1"),
    ("model.max_segments=1", "model.max_segments must be 0"),
    # padding outside the vocabulary embeds as NaN: a padded validation batch's eval_loss was NaN
    ("data.pad_id=32256", r"data\.pad_id \(32256\) must be a token id of the model, in \[0, 32256\)"),
    ("data.pad_id=-1", r"data\.pad_id \(-1\) must be a token id"),
    ("mesh.data=-1", r"at most one .* may be -1 .*got data=-1 fsdp=-1 tensor=1"),  # fsdp=-1 is the default
])
def test_values_that_would_fail_mid_run_are_refused_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, [override])


def test_a_value_refused_after_loading_names_the_files_it_came_from(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: tiny\ndata:\n  seq_len: 4096\n")
    with pytest.raises(ConfigError, match=rf"^{path}: data\.seq_len \(4096\) exceeds model\.max_position_embeddings \(2048\)$"):
        load_train_config(str(path))
    with pytest.raises(ConfigError, match=rf"^{path} \+ <overrides>: data\.pad_id \(40000\) must be a token id"):
        load_train_config(str(path), ["data.seq_len=64", "data.pad_id=40000"])


def test_mesh_that_does_not_divide_the_devices():
    assert len(jax.devices()) == 8
    with pytest.raises(ConfigError, match=r"data=3 x fsdp=-1 x tensor=1 does not divide the 8 devices"):
        create_mesh(MeshConfig(data=3))
    with pytest.raises(ConfigError, match=r"data=2 x fsdp=2 x tensor=1 = 4 devices, but there are 8"):
        create_mesh(MeshConfig(data=2, fsdp=2, tensor=1))
    mesh = create_mesh(MeshConfig(data=2, fsdp=-1, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}


def test_cli_reports_bad_config_as_one_line(tmp_path, capsys, monkeypatch):
    import semcoder_jax.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod.Trainer, "run", lambda *a, **k: pytest.fail("trained"))
    assert main(["train", "--config", "tiny-cpu", "mesh.data=3", f"run_dir={tmp_path}/r"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not divide the 8 devices" in err
    assert main(["train", "--config", "tiny-cpu", "optimizer.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_schedule_warmup_cosine_floor():
    sched = make_schedule(OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10), total_steps=111)
    assert float(sched(0)) == 0.0
    assert abs(float(sched(10)) - 1e-3) < 1e-9
    assert abs(float(sched(60)) - 5.5e-4) < 1e-7
    assert abs(float(sched(110)) - 1e-4) < 1e-9


@pytest.mark.parametrize("warmup", [dict(warmup_steps=50), dict(warmup_ratio=0.03)])
def test_warmup_ends_before_the_last_step(warmup):
    """A 1-step run (a smoke test) trains at ``lr``; a warm-up as long as the run would give it lr 0."""
    cfg = OptimizerConfig(lr=1e-3, min_lr=1e-4, **warmup)
    assert warmup_steps(cfg, 1) == 0 and float(make_schedule(cfg, 1)(0)) == pytest.approx(1e-3)
    assert warmup_steps(cfg, 10) == (9 if "warmup_steps" in warmup else 1)


@pytest.mark.slow
def test_second_moment_is_float32_and_decays_with_bfloat16_params():
    """As the README says, whatever model.param_dtype: in bfloat16, b2 · nu == nu and it never decays."""
    import jax.numpy as jnp

    opt, _ = make_optimizer(OptimizerConfig(lr=1e-3, min_lr=1e-3, b2=0.999, clip_norm=0.0), 100)
    params = {"w": {"kernel": jnp.ones((1,), jnp.bfloat16)}}
    state = opt.init(params)
    for g in [1.0] + [0.0] * 49:
        _, state = opt.update({"w": {"kernel": jnp.full((1,), g, jnp.bfloat16)}}, state, params)
    nu = state[-1][0].nu["w"]["kernel"]
    assert nu.dtype == jnp.float32
    assert float(nu[0]) == pytest.approx(1e-3 * 0.999**49, rel=2e-3)  # bfloat16 would keep 1e-3


def test_dcn_data_multiplies_the_data_axis_and_keeps_hosts_contiguous():
    mesh = create_mesh(MeshConfig(dcn_data=2, data=1, fsdp=-1, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    first_granule = {d.id for d in mesh.devices[0].flat}
    assert first_granule == {d.id for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id))[:4]}


def test_run_dir_must_be_a_local_or_mounted_path():
    """``Path('gs://b/r')`` is the local folder ``gs:/b/r``: each worker would checkpoint to its own disk."""
    with pytest.raises(ConfigError, match=r"run_dir 'gs://bucket/runs/x'.*mounted"):
        load_train_config(None, ["run_dir=gs://bucket/runs/x"])


@pytest.mark.parametrize("key", ["data.path", "validation.path"])
def test_data_paths_must_be_local_or_mounted(key):
    """The reader globs and opens files by path: a bucket URL used to say only that no files match."""
    with pytest.raises(ConfigError, match=rf"{key} 'gs://bucket/pyx'.*mount the bucket"):
        load_train_config(None, [f"{key}=gs://bucket/pyx"])


# ---- launch scripts, run against stub commands that print their argv ----------------------------

def _stubs(tmp_path, *names):
    """A PATH folder whose ``names`` print ``[name, *argv]`` as JSON (exit status $STUB_EXIT)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        stub = bin_dir / name
        stub.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                        "print(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]))\n"
                        "sys.exit(int(os.environ.get('STUB_EXIT', '0')))\n")
        stub.chmod(0o755)
    return bin_dir


def _run(script, *args, path, **env):
    full_env = {**os.environ, "PATH": f"{path}:{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / script), *args], env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_slurm_launch_lets_every_task_see_its_nodes_gpus(tmp_path):
    """jax.distributed's SLURM detection makes local task i drive GPU i of the node's GPUs: with one
    GPU bound per task (``--gpus-per-task=1``) every task but the first finds no GPU i."""
    done = _run("launch_slurm.sbatch", "configs/train/semcoder-6.7b.yaml", "data.path=/shared/my pyx",
                path=_stubs(tmp_path, "srun"), SLURM_NNODES="2")
    assert done.returncode == 0, done.stderr
    argv = json.loads(done.stdout)
    srun_opts = argv[1:argv.index("semcoder")]
    assert not any(o.startswith("--gpus-per-task") for o in srun_opts) and "--gpu-bind=none" in srun_opts
    assert argv[argv.index("semcoder"):] == ["semcoder", "train", "--config", "configs/train/semcoder-6.7b.yaml",
                                             "mesh.dcn_data=2", "data.path=/shared/my pyx"]


@pytest.mark.parametrize("args", [(), ("mesh=tpu-v5p-64", "run_dir=/mnt/shared/runs/a b", "wandb.name=it's")])
def test_tpu_pod_launch_runs_the_given_command_in_the_workers_repo(tmp_path, args):
    """The remote command, run as a worker's shell would: ``~`` is the worker's home, the overrides
    arrive unchanged (none: no empty argument), and a failed run fails the command."""
    local_home, remote_home = tmp_path / "local", tmp_path / "remote"
    (remote_home / "semcoder-jax").mkdir(parents=True)
    local_home.mkdir()
    done = _run("launch_tpu_pod.sh", "configs/train/semcoder-6.7b.yaml", *args, path=_stubs(tmp_path, "gcloud"),
                TPU_NAME="tpu", ZONE="z", HOME=str(local_home))
    assert done.returncode == 0, done.stderr
    gcloud = json.loads(done.stdout)
    assert gcloud[:8] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "tpu", "--zone", "z"]
    command = gcloud[gcloud.index("--command") + 1]
    remote = tmp_path / "remote_bin"
    _stubs(remote, "semcoder")
    for exit_status in (0, 3):
        ran = subprocess.run(["bash", "-c", command], cwd=remote_home, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "HOME": str(remote_home), "STUB_EXIT": str(exit_status),
                                  "PATH": f"{remote / 'bin'}:{os.environ['PATH']}"})
        assert ran.returncode == exit_status, ran.stderr
        assert json.loads(ran.stdout.splitlines()[0]) == ["semcoder", "train", "--config",
                                                          "configs/train/semcoder-6.7b.yaml", *args]


def test_a_misspelt_logical_axis_is_refused_and_the_models_names_are_all_known():
    """A rule whose name the model never uses was accepted: ``activaton_batch`` left the batch replicated
    on every device, several times slower and no error."""
    import re

    from semcoder_jax.model import llama
    from semcoder_jax.model.config import ModelConfig
    from semcoder_jax.train.config import DEFAULT_RULES, LOGICAL_AXES

    rules = [list(r) for r in DEFAULT_RULES]
    rules[0][0] = "activaton_batch"
    with pytest.raises(ConfigError, match="unknown logical axis 'activaton_batch'"):
        MeshConfig(logical_axis_rules=rules).validate()
    specs = jax.tree.leaves(llama.logical_axes(ModelConfig()), is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))
    used = {name for spec in specs for name in spec if name}
    source = (PROJECT_ROOT / "semcoder_jax" / "model").glob("*.py")
    used |= {m for f in source for m in re.findall(r'"(activation_[a-z_]+)"', f.read_text())}
    assert used and used <= set(LOGICAL_AXES), used - set(LOGICAL_AXES)


@pytest.mark.parametrize("key", ["model.dtype", "model.param_dtype"])
def test_float16_training_is_refused(key):
    """No loss scaling: per-token gradients underflow in float16, and the fused loss overflows."""
    with pytest.raises(ConfigError, match="float16 cannot train"):
        load_train_config(CONFIG_DIR / "train" / "tiny-cpu.yaml", [f"{key}=float16"])


# ---- a preset override replaces its section; --print-config loads back -------------------------

@pytest.mark.parametrize("preset", ["deepseek-coder-1.3b", "tiny", "config.json"])
def test_a_model_override_is_exactly_the_new_preset(tmp_path, preset):
    """``model=deepseek-coder-1.3b`` over a file that says ``model: deepseek-coder-6.7b`` kept every key the
    1.3B preset does not set (remat_policy, attention, dtypes, extra EOS ids, max_segments) from the file."""
    from semcoder_jax.config import load_config, preset_path
    from semcoder_jax.model.config import get_model_config

    if preset == "config.json":
        hf = get_model_config("deepseek-coder-1.3b").to_hf_config()
        hf.update(rope_scaling=None, eos_token_id=32014)
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "config.json").write_text(json.dumps(hf))
        preset = str(tmp_path / "hf" / "config.json")
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  preset: deepseek-coder-6.7b\n  remat_policy: save_dots\n  attention: xla\n"
                    "  dtype: float32\n  param_dtype: bfloat16\n  max_segments: 16\n  extra_eos_token_ids: [32021]\n"
                    "  rope_scaling_factor: 8.0\n  scan_unroll: 2\n"
                    "mesh:\n  preset: cpu-8\n  num_devices: 4\n  constrain_activations: false\n"
                    "data:\n  seq_len: 64\n")
    want = get_model_config(preset)
    assert load_train_config(str(path), [f"model={preset}"]).model == want
    assert load_train_config(preset_path("train", "semcoder-6.7b"), [f"model={preset}"]).model == want
    cfg = load_train_config(str(path), [f"model={preset}", "model.remat_policy=save_qkv_proj", "mesh=gpu-1x-h200"])
    assert cfg.model == get_model_config(preset, ["remat_policy=save_qkv_proj"])
    assert cfg.mesh == load_config(MeshConfig, preset_path("mesh", "gpu-1x-h200")) and cfg.data.seq_len == 64


def test_key_overrides_apply_after_preset_overrides_wherever_they_stand():
    """The SLURM script passes ``mesh.dcn_data=N`` before the user's ``mesh=...``: it must survive it."""
    cfg = load_train_config(CONFIG_DIR / "train" / "semcoder-6.7b.yaml",
                            ["mesh.dcn_data=2", "model.remat_policy=save_dots", "mesh=gpu-8x-h100", "model=deepseek-coder-1.3b"])
    assert (cfg.mesh.dcn_data, cfg.model.remat_policy, cfg.model.name) == (2, "save_dots", "deepseek-coder-1.3b")


@pytest.mark.parametrize("config", sorted(p.stem for p in (CONFIG_DIR / "train").glob("*.yaml")))
def test_print_config_loads_back_to_the_same_config(tmp_path, capsys, config):
    from semcoder_jax.config import preset_path

    overrides = ["run_dir=0755", "wandb.name=yes", "wandb.entity=1e3", "wandb.project=a\\${x}", "init_from=scratch",
                 "wandb.tags=[null, no, 2024-01-01, ünï]", "compilation_cache_dir=null", "model.extra_eos_token_ids=[7]",
                 "mesh.logical_axis_rules=[[vocab, [fsdp, tensor]], [embed, null]]"]
    assert main(["train", "--config", config, "--print-config", *overrides]) == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out, encoding="utf-8")
    cfg = load_train_config(str(printed))
    assert cfg == load_train_config(preset_path("train", config), overrides)
    assert (cfg.run_dir, cfg.wandb.name, cfg.wandb.entity, cfg.wandb.project) == ("0755", "yes", "1e3", "a${x}")
    assert cfg.wandb.tags == ["null", "no", "2024-01-01", "ünï"] and cfg.compilation_cache_dir is None

"""Train configs: presets load, bad keys and meshes fail with one clear line before any compute."""


import jax
import pytest

from semcoder_jax import CONFIG_DIR
from semcoder_jax.cli.main import main
from semcoder_jax.config import ConfigError
from semcoder_jax.train.config import MeshConfig, load_train_config
from semcoder_jax.train.mesh import create_mesh
from semcoder_jax.train.optimizer import make_schedule
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


def test_loss_chunk_size_must_divide_the_sequence():
    assert load_train_config(None, ["data.seq_len=64", "loss_chunk_size=16"]).loss_chunk_size == 16
    assert load_train_config(None, ["loss_chunk_size=0"]).loss_chunk_size == 0
    for bad in ("24", "-1"):
        with pytest.raises(ConfigError, match=rf"loss_chunk_size \({bad}\) must be .* data.seq_len \(64\)"):
            load_train_config(None, ["data.seq_len=64", f"loss_chunk_size={bad}"])


@pytest.mark.parametrize("override, message", [
    ("optimizer.b2=1.0", r"optimizer\.b2 must be in \[0, 1\)"),
    ("optimizer.min_lr=1.0", r"optimizer\.min_lr \(1\.0\) must not exceed"),
    ("optimizer.weight_decay=-0.1", "weight_decay"),
    ("z_loss=-1e-4", "z_loss must be >= 0"),
    ("data.shuffle_buffer=0", "data.shuffle_buffer must be >= 1"),
    ("model.max_segments=1", "model.max_segments must be 0"),
])
def test_values_that_would_fail_mid_run_are_refused_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, [override])


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
    sched = make_schedule(OptimizerConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10), total_steps=110)
    assert float(sched(0)) == 0.0
    assert abs(float(sched(10)) - 1e-3) < 1e-9
    assert abs(float(sched(60)) - 5.5e-4) < 1e-7
    assert abs(float(sched(110)) - 1e-4) < 1e-9


def test_dcn_data_multiplies_the_data_axis_and_keeps_hosts_contiguous():
    mesh = create_mesh(MeshConfig(dcn_data=2, data=1, fsdp=-1, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    first_granule = {d.id for d in mesh.devices[0].flat}
    assert first_granule == {d.id for d in sorted(jax.devices(), key=lambda d: (d.process_index, d.id))[:4]}

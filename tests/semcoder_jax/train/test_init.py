"""Starting points: an Orbax checkpoint (a training run's step) and a Hugging Face folder."""

from pathlib import Path

import jax
import numpy as np
import pytest

from semcoder_jax.config import ConfigError
from semcoder_jax.train.trainer import Trainer


def _initial_params(cfg):
    trainer = Trainer(cfg)
    try:
        step, state, position = trainer.initial_state()
        assert step == 0 and (position.epoch, position.batch) == (0, 0)
        return jax.device_get(state["params"]), trainer
    finally:
        trainer.close()


def _assert_equal_trees(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def test_init_from_orbax_and_hf_give_the_checkpoint_params(make_config, fsdp8_run, tmp_path):
    from semcoder_jax.checkpoint import load_params
    from semcoder_jax.convert import orbax_to_hf

    ckpt = fsdp8_run["run_dir"] / "checkpoints"
    expected, _ = load_params(ckpt, 3)
    expected = jax.device_get(expected)
    got, trainer = _initial_params(make_config(f"init_from=orbax:{ckpt}@3", "mesh.data=2", "mesh.fsdp=4", run="from_orbax"))
    _assert_equal_trees(got, expected)
    import shutil

    at_host = shutil.copytree(ckpt, tmp_path / "user@host" / "checkpoints")  # only the last "@N" is a step
    got, _ = _initial_params(make_config(f"init_from=orbax:{at_host}@3", "mesh.fsdp=8", run="from_at"))
    _assert_equal_trees(got, expected)

    hf_dir = orbax_to_hf(ckpt, tmp_path / "hf", step=3, dtype="float32")
    got, trainer = _initial_params(make_config(f"init_from=hf:{hf_dir}", "mesh.fsdp=8", run="from_hf"))
    _assert_equal_trees(got, expected)
    assert (trainer.run_dir / "hf_import").is_dir()

    # The same run folder, started again from another HF folder: that folder's weights, not the import's.
    other = orbax_to_hf(ckpt, tmp_path / "hf5", step=5, dtype="float32")
    got, _ = _initial_params(make_config(f"init_from=hf:{other}", "mesh.fsdp=8", run="from_hf"))
    _assert_equal_trees(got, jax.device_get(load_params(ckpt, 5)[0]))


@pytest.mark.parametrize("overrides, message", [
    (("model.intermediate_size=256", "mesh.fsdp=8"), "intermediate_size is 128 but the train config says 256"),
    # The checkpoint's 2 KV heads do not divide tensor=4: refused before Orbax reads a shard.
    (("model.num_kv_heads=4", "mesh.fsdp=2", "mesh.tensor=4"), "num_kv_heads is 2 but the train config says 4"),
], ids=["shards-fit", "shards-do-not-fit"])
def test_init_from_checkpoint_of_another_architecture_is_refused(make_config, fsdp8_run, overrides, message):
    ckpt = fsdp8_run["run_dir"] / "checkpoints"
    cfg = make_config(f"init_from=orbax:{ckpt}", *overrides, run="mismatch")
    with pytest.raises(ConfigError, match=message):
        _initial_params(cfg)


@pytest.mark.parametrize("override, message", [
    ("model.intermediate_size=96", "model.intermediate_size is 128 but the train config says 96"),
    # the saved data position counts batches of the size it was trained with
    ("data.global_batch_size=16", "data.global_batch_size was 8 but is 16 now.*init_from=orbax:"),
], ids=["architecture", "batch-size"])
def test_resume_with_another_architecture_or_batch_names_the_field(make_config, fsdp8_run, tmp_path, override, message):
    """A run folder whose checkpoints do not fit the config: a ConfigError naming the field and the
    checkpoint, not Orbax's shape error from deep inside the restore, nor a silent jump in the data."""
    import shutil

    run = tmp_path / "run" / "resumed"
    shutil.copytree(fsdp8_run["run_dir"] / "checkpoints", run / "checkpoints")
    trainer = Trainer(make_config(override, "mesh.fsdp=8", run="run/resumed"))
    try:
        with pytest.raises(ConfigError, match=rf"checkpoint .*checkpoints step 5: {message}"):
            trainer.initial_state()
    finally:
        trainer.close()


def test_a_resume_on_another_schedule_or_a_shortened_warmup_says_so(make_config, fsdp8_run, tmp_path, caplog):
    import logging
    import shutil

    run = tmp_path / "run" / "longer"
    shutil.copytree(fsdp8_run["run_dir"] / "checkpoints", run / "checkpoints")
    with caplog.at_level(logging.WARNING, logger="semcoder_jax.train.trainer"):
        trainer = Trainer(make_config("mesh.fsdp=8", "max_steps=2", "optimizer.warmup_steps=4", run="run/longer"))
        trainer.close()
        assert "optimizer.warmup_steps=4 shortened to 1, to end before the last of the run's 2 steps" in caplog.text
        trainer = Trainer(make_config("mesh.fsdp=8", "max_steps=8", run="run/longer"))
        try:
            trainer.initial_state()
        finally:
            trainer.close()
    assert "step 5 was trained on a 5-step schedule; this run's has 8 steps, which the learning rate follows from step 6 on" in caplog.text


@pytest.mark.parametrize("override, message", [
    ("data.global_batch_size=16", "data.global_batch_size was 8 but is 16"),
    # no clipping: an optimiser state of another structure (was Orbax's bare tree-mismatch ValueError)
    ("optimizer.clip_norm=0", r"its optimiser state does not fit .*optimizer.clip_norm.*init_from=orbax:"),
], ids=["batch-size", "clipping"])
def test_a_refused_resume_leaves_the_run_folder_config_as_it_was(make_config, override, message):
    """``run_dir/config.yaml`` records the config the checkpoints were trained with, not one refused."""
    from semcoder_jax.config import save_config
    from semcoder_jax.train.input import DataPosition

    cfg = make_config("mesh.fsdp=8")
    trainer = Trainer(cfg)
    try:
        _, state, _ = trainer.initial_state()
        trainer.save(1, state, DataPosition(0, 1))
        trainer.manager.wait_until_finished()
    finally:
        trainer.close()
    save_config(cfg, trainer.run_dir / "config.yaml")
    before = (trainer.run_dir / "config.yaml").read_text()
    trainer = Trainer(make_config("mesh.fsdp=8", override))
    try:
        with pytest.raises(ConfigError, match=rf"checkpoint .*checkpoints step 1: {message}"):
            trainer.run()
    finally:
        trainer.close()
    assert (trainer.run_dir / "config.yaml").read_text() == before


def test_init_from_a_hub_id_converts_the_commit_it_names_and_init_from_records_it(make_config, hub, monkeypatch):
    """``hf:ORG/NAME`` downloaded the hub's newest and recorded only the name: which weights a run
    started from was lost, and a moved branch reused the old import. Now it resolves as ``semcoder
    eval``/``generate`` do, and ``init_from`` (so config.yaml) names the commit."""
    import semcoder_jax.convert as convert
    from semcoder_jax.errors import SemcoderError

    A, B = "a" * 40, "b" * 40
    a, b = hub.snapshot(A), hub.snapshot(B)
    hub.point("main", A), hub.point("v1", B)
    converted = []
    monkeypatch.setattr(convert, "hf_to_orbax", lambda src, out, **kw: converted.append(src) or out.mkdir())

    def import_(init_from):
        trainer = Trainer(make_config(f"init_from={init_from}", "mesh.fsdp=8"))
        try:
            assert trainer._hf_as_orbax(init_from[3:]) == str(trainer.run_dir / "hf_import")
            return trainer
        finally:
            trainer.close()

    trainer = import_("hf:org/name")
    assert converted == [str(a)] and trainer.cfg.init_from == f"hf:org/name@{A}"
    assert (trainer.run_dir / "hf_import.source").read_text() == f"org/name@{A}"
    assert import_("hf:org/name").cfg.init_from == f"hf:org/name@{A}" and converted == [str(a)]  # imported once
    assert import_(f"hf:org/name@{A}").cfg.init_from == f"hf:org/name@{A}" and converted == [str(a)]
    assert import_("hf:org/name@v1").cfg.init_from == f"hf:org/name@{B}" and converted == [str(a), str(b)]
    hub.point("main", B)  # main moved: the import follows it
    assert import_("hf:org/name").cfg.init_from == f"hf:org/name@{B}" and converted[-1] == str(b)
    with pytest.raises(SemcoderError, match=r"^init_from 'hf:org/other': cannot load model 'org/other': no such folder, "
                                             r"and that hub model could be read neither from the hub nor"):
        import_("hf:org/other")
    with pytest.raises(SemcoderError, match=r"^init_from 'hf:org/name@v2': cannot load model 'org/name': no such folder, "
                                             r"and revision 'v2' of that hub model could be read neither"):
        import_("hf:org/name@v2")


@pytest.mark.slow  # a one-step run from a converted model, resumed: about 10 s
def test_config_yaml_names_a_hub_starts_commit_even_after_a_resume(make_config, fsdp8_run, hub, tmp_path):
    from semcoder_jax.config import load_config
    from semcoder_jax.convert import orbax_to_hf
    from semcoder_jax.train.config import TrainConfig

    def train_tiny(cfg):
        trainer = Trainer(cfg)
        try:
            trainer.run()
        finally:
            trainer.close()

    A, B = "a" * 40, "b" * 40
    hf_dir = orbax_to_hf(fsdp8_run["run_dir"] / "checkpoints", tmp_path / "hf", step=3, dtype="float32")
    hub.snapshot(A, hf_dir), hub.point("main", A)
    train_tiny(make_config("init_from=hf:org/name", "mesh.fsdp=8", "max_steps=1", "checkpoint.every=1", run="hub"))
    saved = tmp_path / "hub" / "config.yaml"
    assert load_config(TrainConfig, saved).init_from == f"hf:org/name@{A}"
    hub.snapshot(B, hf_dir), hub.point("main", B)
    saved.unlink()
    train_tiny(make_config("init_from=hf:org/name", "mesh.fsdp=8", "max_steps=1", run="hub"))  # resumes (at its end)
    assert load_config(TrainConfig, saved).init_from == f"hf:org/name@{A}"  # the start it resumed, not main's B


def _hf_import(make_config, init_from):
    """``Trainer._hf_as_orbax`` on a bare run folder: only its ``cfg`` and ``run_dir`` are read."""
    import types

    cfg = make_config(f"init_from={init_from}")
    host = types.SimpleNamespace(cfg=cfg, run_dir=Path(cfg.run_dir))
    host.run_dir.mkdir(parents=True, exist_ok=True)
    Trainer._hf_as_orbax(host, init_from.removeprefix("hf:"))
    return host


def test_an_import_cut_short_before_its_record_is_not_taken_for_the_previous_one(make_config, hub, monkeypatch):
    """Another commit's import replaced ``hf_import`` but was killed before it wrote its record: the
    old record named the old commit, so a start from that commit again trained from the other's
    weights. The record now goes before the import it names."""
    import semcoder_jax.convert as convert

    A, B = "a" * 40, "b" * 40
    a, b = hub.snapshot(A), hub.snapshot(B)
    hub.point("main", A), hub.point("v1", B)
    converted = []

    def convert_then_die(src, out, **kw):
        converted.append(src)
        out.mkdir()
        if src == str(b):
            raise KeyboardInterrupt  # the import is in place, its record not yet written

    monkeypatch.setattr(convert, "hf_to_orbax", convert_then_die)
    _hf_import(make_config, "hf:org/name")
    with pytest.raises(KeyboardInterrupt):
        _hf_import(make_config, "hf:org/name@v1")
    _hf_import(make_config, "hf:org/name")
    assert converted == [str(a), str(b), str(a)]


def test_a_missing_folder_holding_an_at_is_named_whole_in_the_error(make_config, hub):
    """``hf:/data/models@v2/x`` (a mistyped folder) was split as hub id ``/data/models`` at revision
    ``v2/x``, and the error named a folder nobody gave."""
    from semcoder_jax.errors import SemcoderError

    with pytest.raises(SemcoderError, match=r"^init_from 'hf:/data/models@v2/x': cannot load model '/data/models@v2/x': "
                                             r"no such folder, nor a hub id"):
        _hf_import(make_config, "hf:/data/models@v2/x")


def test_init_from_a_hub_id_at_a_revision_holding_a_slash(make_config, hub, monkeypatch):
    """A pull request's ref (``refs/pr/1``) is a revision as a branch is: only the first ``@`` splits."""
    import semcoder_jax.convert as convert

    B = "b" * 40
    hub.point("main", hub.snapshot("a" * 40).name)
    b = hub.snapshot(B)
    (hub.repo / "refs" / "refs" / "pr").mkdir(parents=True)
    hub.point("refs/pr/1", B)  # the cache keeps it as refs/refs/pr/1
    converted = []
    monkeypatch.setattr(convert, "hf_to_orbax", lambda src, out, **kw: converted.append(src) or out.mkdir())
    assert _hf_import(make_config, "hf:org/name@refs/pr/1").cfg.init_from == f"hf:org/name@{B}"
    assert converted == [str(b)]


def test_a_local_folder_holding_an_at_imports_as_a_folder_without_asking_the_hub(make_config, hub, monkeypatch,
                                                                                 tmp_path):
    import semcoder_jax.convert as convert
    import semcoder_jax.hub as hub_module

    folder = tmp_path / "models@v2" / "x"
    folder.mkdir(parents=True)
    monkeypatch.setattr(hub_module, "hub_commit", lambda *a, **k: pytest.fail("the hub was asked"))
    converted = []
    monkeypatch.setattr(convert, "hf_to_orbax", lambda src, out, **kw: converted.append(src) or out.mkdir())
    host = _hf_import(make_config, f"hf:{folder}")
    assert host.cfg.init_from == f"hf:{folder}" and converted == [str(folder)]
    assert (host.run_dir / "hf_import.source").read_text() == str(folder)


def test_a_resume_of_a_run_whose_record_names_no_commit_keeps_its_init_from(make_config, hub, monkeypatch):
    """A run started before commits were recorded (its record: ``org/name``) resumes as it was,
    without asking the hub which commit main names now."""
    import types

    import semcoder_jax.hub as hub_module

    monkeypatch.setattr(hub_module, "hub_commit", lambda *a, **k: pytest.fail("the hub was asked"))
    cfg = make_config("init_from=hf:org/name")
    host = types.SimpleNamespace(cfg=cfg, run_dir=Path(cfg.run_dir))
    host.run_dir.mkdir(parents=True)
    (host.run_dir / "hf_import.source").write_text("org/name")
    assert Trainer._init_from_as_started(host).init_from == "hf:org/name"
    (host.run_dir / "hf_import.source").write_text(f"org/name@{'a' * 40}")
    assert Trainer._init_from_as_started(host).init_from == f"hf:org/name@{'a' * 40}"

"""Bad inputs give one line naming the tensor, param or key, exit code 2, and nothing at --out."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from semcoder_jax.checkpoint import MODEL_CONFIG_FILE, load_params, save_params
from semcoder_jax.cli.main import main


def _run_failing(capsys, argv, out):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("semcoder convert: error:")
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp")]
    return err


def _copy_hf(hf_models, tmp_path, variant="gqa"):
    src = hf_models[variant][0]
    dst = tmp_path / "hf_in"
    shutil.copytree(src, dst)
    return dst


def _rewrite_tensors(hf_dir, edit):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(hf_dir / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(hf_dir / "model.safetensors"), metadata={"format": "pt"})


def test_missing_tensor(hf_models, tmp_path, capsys):
    hf_dir = _copy_hf(hf_models, tmp_path)
    _rewrite_tensors(hf_dir, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "missing tensor model.layers.1.mlp.up_proj.weight" in err


def test_shape_mismatch(hf_models, tmp_path, capsys):
    hf_dir = _copy_hf(hf_models, tmp_path)

    def edit(t):
        t["model.layers.0.self_attn.k_proj.weight"] = np.zeros((8, 64), np.float32)

    _rewrite_tensors(hf_dir, edit)
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "model.layers.0.self_attn.k_proj.weight has shape [8, 64]" in err and "implies [32, 64]" in err


def test_unexpected_tensor(hf_models, tmp_path, capsys):
    hf_dir = _copy_hf(hf_models, tmp_path)
    _rewrite_tensors(hf_dir, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": np.zeros(64, np.float32)}))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "model.layers.0.self_attn.q_proj.bias" in err


def test_unknown_config_key(hf_models, tmp_path, capsys):
    hf_dir = _copy_hf(hf_models, tmp_path)
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg["sliding_window_size"] = 128
    (hf_dir / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "'sliding_window_size'" in err and "config.json" in err


def test_missing_config_key(hf_models, tmp_path, capsys):
    hf_dir = _copy_hf(hf_models, tmp_path)
    cfg = json.loads((hf_dir / "config.json").read_text())
    del cfg["num_hidden_layers"]
    (hf_dir / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "'num_hidden_layers'" in err


def test_config_value_of_a_wrong_type_names_the_key(hf_models, tmp_path, capsys):
    """A hand-edited config.json: "false" made a tied model (a non-empty string is truthy), and a
    string size failed with a bare TypeError naming nothing."""
    from semcoder_jax.convert.hf_to_orbax import read_hf_config

    hf_dir = _copy_hf(hf_models, tmp_path)
    cfg = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps({**cfg, "tie_word_embeddings": "false", "rms_norm_eps": "1e-6"}))
    config = read_hf_config(hf_dir)
    assert (config.tie_word_embeddings, config.rms_norm_eps) == (False, 1e-6)
    (hf_dir / "config.json").write_text(json.dumps({**cfg, "vocab_size": "many"}))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "config.json" in err and "vocab_size" in err and "many" in err and "config.json: config.json" not in err


def test_float64_weights_need_a_dtype(hf_models, tmp_path, capsys):
    """A float64 checkpoint was written with param_dtype float64, which no reader of it accepts."""
    hf_dir = _copy_hf(hf_models, tmp_path)
    _rewrite_tensors(hf_dir, lambda t: t.update({k: v.astype(np.float64) for k, v in t.items()}))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out)], out)
    assert "model.safetensors" in err and "float64" in err and "--dtype" in err
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(out), "--dtype", "float32"]) == 0
    params, config = load_params(out)
    assert config.param_dtype == "float32" and params["embed"]["embedding"].dtype == np.float32


def test_failure_while_writing_leaves_nothing(hf_models, tmp_path, monkeypatch):
    from semcoder_jax.convert import hf_io, hf_to_orbax

    calls = {"n": 0}
    real_read = hf_io.HFWeights.read

    def flaky_read(self, name, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise OSError("disk went away")
        return real_read(self, name, **kwargs)

    monkeypatch.setattr(hf_io.HFWeights, "read", flaky_read)
    out = tmp_path / "out"
    with pytest.raises(Exception, match="disk went away"):
        hf_to_orbax(hf_models["gqa"][0], out)
    assert calls["n"] == 6
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_must_be_new(hf_models, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(hf_models["gqa"][0]), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _small_checkpoint(orbax_models):
    return load_params(orbax_models["gqa"])


def test_orbax_missing_param(orbax_models, tmp_path, capsys):
    params, config = _small_checkpoint(orbax_models)
    del params["layers"]["mlp"]["up_proj"]
    save_params(tmp_path / "ckpt", 3, params, config)
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "orbax-to-hf", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(out)], out)
    assert "missing param layers/mlp/up_proj/kernel" in err and "step 3" in err


def test_orbax_shape_mismatch(orbax_models, tmp_path, capsys):
    params, config = _small_checkpoint(orbax_models)
    save_params(tmp_path / "ckpt", 0, params, dataclasses.replace(config, intermediate_size=100))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "orbax-to-hf", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(out)], out)
    assert "layers/mlp/gate_proj/kernel has shape [2, 64, 96]" in err


def test_orbax_unknown_model_config_key(orbax_models, tmp_path, capsys):
    import orbax.checkpoint as ocp

    params, config = _small_checkpoint(orbax_models)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save((tmp_path / "pytree").absolute(), params)
    data = dataclasses.asdict(config) | {"use_flash": True}
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps(data))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "orbax-to-hf", "--checkpoint", str(tmp_path / "pytree"), "--out", str(out)], out)
    assert "use_flash" in err and MODEL_CONFIG_FILE in err


@pytest.mark.parametrize("tokenizer", ["no-such-org/no-such-tokenizer", "empty_folder"])
def test_bad_tokenizer_fails_before_any_weight_is_written(orbax_models, tmp_path, capsys, monkeypatch, tokenizer):
    """The tokenizer was saved after every shard was written: a mistyped ``--tokenizer`` failed only at
    the end of the export (minutes for a 6.7B model) and threw the written shards away."""
    import importlib

    orbax_to_hf = importlib.import_module("semcoder_jax.convert.orbax_to_hf")  # the package exports the function
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if tokenizer == "empty_folder":
        (tmp_path / tokenizer).mkdir()
        tokenizer = str(tmp_path / tokenizer)
    shards = []
    monkeypatch.setattr(orbax_to_hf, "write_sharded", lambda *a, **k: shards.append(a))
    out = tmp_path / "out"
    err = _run_failing(capsys, ["convert", "orbax-to-hf", "--checkpoint", str(orbax_models["gqa"]), "--out", str(out),
                                "--tokenizer", tokenizer], out)
    assert "tokenizer" in err and shards == []

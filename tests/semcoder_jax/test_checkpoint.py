"""The checkpoint layout: save/load, steps, dtype casts, sharded restore, params-only checkpoints."""

import dataclasses
import json

import jax
import ml_dtypes
import numpy as np
import pytest

from semcoder_jax.checkpoint import (
    MODEL_CONFIG_FILE,
    MODEL_CONFIG_ITEM,
    PARAMS_ITEM,
    latest_step,
    load_params,
    read_model_config,
    save_params,
)
from semcoder_jax.convert.mapping import param_mappings, set_path
from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import get_model_config


def _config(**changes):
    return get_model_config("tiny", ["vocab_size=256", "hidden_size=32", "intermediate_size=48"]).replace(**changes)


def _params(config, seed=0):
    """Random params in the contract's tree layout (shapes from the conversion table)."""
    rng = np.random.default_rng(seed)
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, rng.standard_normal(m.full_shape(config)).astype(np.float32))
    return params


def _assert_tree_equal(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_save_load_round_trip_and_steps(tmp_path):
    config = _config()
    assert latest_step(tmp_path / "ckpt") is None
    save_params(tmp_path / "ckpt", 1, _params(config, 1), config)
    save_params(tmp_path / "ckpt", 5, _params(config, 5), config)
    assert latest_step(tmp_path / "ckpt") == 5
    assert {p.name for p in (tmp_path / "ckpt" / "5").iterdir()} >= {PARAMS_ITEM, MODEL_CONFIG_ITEM}

    params, got_config = load_params(tmp_path / "ckpt")
    _assert_tree_equal(params, _params(config, 5))
    assert got_config == config
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(params))
    params, _ = load_params(tmp_path / "ckpt", step=1)
    _assert_tree_equal(params, _params(config, 1))
    with pytest.raises(SemcoderError, match="no step 3 .*have 1, 5"):
        load_params(tmp_path / "ckpt", step=3)


def test_load_with_dtype_cast(tmp_path):
    config = _config()
    save_params(tmp_path, 0, _params(config), config)
    params, got_config = load_params(tmp_path, dtype="bfloat16")
    assert {x.dtype for x in jax.tree.leaves(params)} == {np.dtype(ml_dtypes.bfloat16)}
    assert got_config.param_dtype == "bfloat16"
    want = _params(config)["layers"]["mlp"]["up_proj"]["kernel"].astype(ml_dtypes.bfloat16)
    assert np.array_equal(np.asarray(params["layers"]["mlp"]["up_proj"]["kernel"]), want)


def test_load_directly_sharded(tmp_path):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    assert jax.device_count() == 8
    config = _config()
    save_params(tmp_path, 0, _params(config), config)
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("fsdp", "tp"))
    shardings = jax.tree.map(lambda x: NamedSharding(mesh, P()), _params(config))
    shardings["embed"]["embedding"] = NamedSharding(mesh, P("fsdp", "tp"))
    shardings["layers"]["mlp"]["up_proj"]["kernel"] = NamedSharding(mesh, P(None, "fsdp", "tp"))
    params, _ = load_params(tmp_path, sharding=shardings)
    assert params["embed"]["embedding"].sharding == shardings["embed"]["embedding"]
    up = params["layers"]["mlp"]["up_proj"]["kernel"]
    assert up.sharding == shardings["layers"]["mlp"]["up_proj"]["kernel"]
    assert {s.data.shape for s in up.addressable_shards} == {(config.num_layers, 8, 24)}
    _assert_tree_equal(params, _params(config))


def test_params_only_pytree_checkpoint(tmp_path):
    import orbax.checkpoint as ocp

    config = _config(tie_word_embeddings=True)
    path = (tmp_path / "pytree").absolute()
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, _params(config))
    with pytest.raises(SemcoderError, match=MODEL_CONFIG_FILE):
        load_params(path)
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config)))
    params, got_config = load_params(path)
    assert got_config == config and "lm_head" not in params
    _assert_tree_equal(params, _params(config))
    with pytest.raises(SemcoderError, match="params-only checkpoint has no steps, but step 3 was asked for"):
        load_params(path, 3)


def test_bad_model_config_item_names_key(tmp_path):
    config = _config()
    save_params(tmp_path, 0, _params(config), config)
    item = next((tmp_path / "0" / MODEL_CONFIG_ITEM).glob("*"))
    data = json.loads(item.read_text())
    item.write_text(json.dumps(data | {"num_experts": 8}))
    with pytest.raises(SemcoderError, match="num_experts"):
        read_model_config(tmp_path)


def test_model_config_values_are_typed(tmp_path):
    """A string "false" is truthy: read untyped, it made an untied model tied (logits from the embedding)."""
    config = _config()
    save_params(tmp_path, 0, _params(config), config)
    item = next((tmp_path / "0" / MODEL_CONFIG_ITEM).glob("*"))
    data = json.loads(item.read_text())
    item.write_text(json.dumps(data | {"tie_word_embeddings": "false", "rope_theta": "1e5"}))
    got = read_model_config(tmp_path)
    assert got.tie_word_embeddings is False and got.rope_theta == 1e5 and got == config
    item.write_text(json.dumps(data | {"num_layers": "two"}))
    with pytest.raises(SemcoderError, match=r"model_config: .*'two'.*num_layers"):
        read_model_config(tmp_path)


def test_missing_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(SemcoderError, match="not a directory"):
        load_params(tmp_path / "nope")
    with pytest.raises(SemcoderError, match="no finished steps"):
        load_params(tmp_path)


def test_streamed_checkpoint_restores_with_plain_orbax(tmp_path):
    """The converter's layer-by-layer writer produces an ordinary Orbax checkpoint."""
    import orbax.checkpoint as ocp

    from semcoder_jax.convert.orbax_io import StreamedArray, save_streamed_params

    config = _config()
    params = _params(config)
    blocks_read = []

    def streamed(x):
        def block(i):
            blocks_read.append(i)
            return x[i:i + 1]
        return StreamedArray(x.shape, x.dtype, block)

    save_streamed_params(tmp_path, 7, jax.tree.map(streamed, params), config)
    assert len(blocks_read) == sum(x.shape[0] for x in jax.tree.leaves(params))
    with ocp.CheckpointManager(tmp_path.absolute()) as manager:
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
        restored = manager.restore(7, args=ocp.args.Composite(**{
            PARAMS_ITEM: ocp.args.StandardRestore(abstract),
            MODEL_CONFIG_ITEM: ocp.args.JsonRestore(),
        }))
    _assert_tree_equal(restored[PARAMS_ITEM], params)
    assert restored[MODEL_CONFIG_ITEM] == dataclasses.asdict(config)


def test_orbax_to_hf_reads_trainer_style_checkpoint(tmp_path):
    """A checkpoint saved whole (one chunk spans all layers) exports the same tensors."""
    from safetensors.numpy import load_file

    from semcoder_jax.convert import orbax_to_hf

    config = _config()
    params = _params(config)
    save_params(tmp_path / "ckpt", 2, params, config)
    orbax_to_hf(tmp_path / "ckpt", tmp_path / "hf", dtype="float32")
    tensors = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert len(tensors) == 2 + 9 * config.num_layers + 1
    q = params["layers"]["attn"]["q_proj"]["kernel"][1]  # [D, H, hd] -> HF [H*hd, D]
    assert np.array_equal(tensors["model.layers.1.self_attn.q_proj.weight"], q.reshape(config.hidden_size, -1).T)
    o = params["layers"]["attn"]["o_proj"]["kernel"][0]  # [H, hd, D] -> HF [D, H*hd]
    assert np.array_equal(tensors["model.layers.0.self_attn.o_proj.weight"], o.reshape(-1, config.hidden_size).T)
    assert np.array_equal(tensors["lm_head.weight"], params["lm_head"]["kernel"].T)
    assert np.array_equal(tensors["model.layers.1.post_attention_layernorm.weight"],
                          params["layers"]["mlp_norm"]["scale"][1])


def test_read_only_lookups_log_no_orbax_noise_and_other_warnings_still_show(tmp_path, caplog):
    """The CLI hid Orbax's read-only warnings by raising absl's level to ERROR for the whole process
    (a failing save's warning went too), and library users (``load_model_for_inference``) got six."""
    import numpy as np
    from absl import logging as absl_logging

    from semcoder_jax.checkpoint import latest_step, load_params, save_params
    from semcoder_jax.convert.mapping import param_mappings, set_path
    from semcoder_jax.model.config import get_model_config

    config = get_model_config("tiny", ["hidden_size=32", "intermediate_size=48", "num_layers=1"])
    params: dict = {}
    for m in param_mappings(config):
        set_path(params, m.path, np.zeros(m.full_shape(config), np.float32))
    save_params(tmp_path / "ckpt", 3, params, config)
    before = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.WARNING)  # as in a fresh process
    try:
        with caplog.at_level("WARNING"):
            assert latest_step(tmp_path / "ckpt") == 3
            load_params(tmp_path / "ckpt", 3)
            absl_logging.warning("Waiting for the previous save to finish")
    finally:
        absl_logging.set_verbosity(before)
    assert [r.getMessage() for r in caplog.records if r.name == "absl"] == ["Waiting for the previous save to finish"]

"""HF -> Orbax -> Flax logits equal HF's; Orbax -> HF gives back the same tensors and config."""

import json

import numpy as np
import pytest

from semcoder_jax.checkpoint import load_params
from semcoder_jax.cli.main import main

VARIANTS = ("mha_untied", "gqa", "tied")
SEQ_LEN = 80


def _hf_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(ids)).logits.numpy()


@pytest.mark.parametrize("variant", VARIANTS)
def test_flax_logits_match_hf(variant, hf_models, orbax_models):
    from semcoder_jax.model.llama import apply

    _, model = hf_models[variant]
    params, config = load_params(orbax_models[variant])
    config = config.replace(dtype="float32", param_dtype="float32", attention="xla")
    rope = model.config.rope_parameters
    assert config.rope_theta == rope["rope_theta"] and config.rope_scaling_factor == rope.get("factor")
    assert config.rms_norm_eps == model.config.rms_norm_eps
    assert config.tie_word_embeddings == (variant == "tied")
    assert ("lm_head" in params) != (variant == "tied")

    ids = np.random.default_rng(0).integers(0, config.vocab_size, size=(2, SEQ_LEN), dtype=np.int32)
    ours = np.asarray(apply(config, params, ids))
    theirs = _hf_logits(model, ids)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_orbax_to_hf_roundtrip_is_exact(variant, hf_models, orbax_models, tmp_path):
    from transformers import AutoModelForCausalLM

    hf_dir, original = hf_models[variant]
    out = tmp_path / "hf"
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(orbax_models[variant]), "--out", str(out),
                 "--dtype", "float32"]) == 0
    loaded, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert info["missing_keys"] in (set(), []) and info["unexpected_keys"] in (set(), [])
    assert info["mismatched_keys"] in (set(), [])

    want = original.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(want)
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype, name
        assert np.array_equal(got[name].numpy().view(np.uint32), tensor.numpy().view(np.uint32)), name

    fields = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings",
              "tie_word_embeddings", "bos_token_id", "eos_token_id", "hidden_act")
    for field in fields:
        assert getattr(loaded.config, field) == getattr(original.config, field), field
    for key in ("rope_type", "factor", "rope_theta"):
        assert loaded.config.rope_parameters.get(key) == original.config.rope_parameters.get(key), key
    assert loaded.config.rope_parameters["rope_type"] == ("default" if variant == "mha_untied" else "linear")

    written = json.loads((out / "config.json").read_text())
    assert written["architectures"] == ["LlamaForCausalLM"] and written["torch_dtype"] == "float32"
    if variant != "mha_untied":
        assert written["rope_scaling"]["type"] == written["rope_scaling"]["rope_type"] == "linear"
    gen = json.loads((out / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"]) == (1, 2)


def test_sharded_output_with_small_max_shard_size(orbax_models, hf_models, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(orbax_models["gqa"]), "--out", str(out),
                 "--dtype", "float32", "--max-shard-size", "40KB"]) == 0
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 3 and not (out / "model.safetensors").exists()
    assert all(s.name.endswith(f"-of-{len(shards):05d}.safetensors") for s in shards)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {s.name for s in shards}

    from safetensors import safe_open

    total = 0
    for shard in shards:
        with safe_open(str(shard), "numpy") as f:
            for key in f.keys():
                assert index["weight_map"][key] == shard.name
                total += f.get_tensor(key).nbytes
        # only a single tensor larger than the cap may exceed it
        assert shard.stat().st_size <= 40_000 + 4096 or len(json.loads(_header(shard))) == 2
    assert index["metadata"]["total_size"] == total

    model, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    want = hf_models["gqa"][1].state_dict()
    for name, tensor in model.state_dict().items():
        assert np.array_equal(tensor.numpy(), want[name].numpy()), name


def _header(path):
    import struct

    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return f.read(n)


def test_bfloat16_export_with_tokenizer_and_import(orbax_models, hf_models, tmp_path, tokenizer_dir):
    """The default export dtype is bf16; importing it back keeps bf16 and the values rounded once."""
    import ml_dtypes
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(orbax_models["tied"]), "--out", str(out),
                 "--tokenizer", str(tokenizer_dir)]) == 0
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert (out / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()
    assert AutoTokenizer.from_pretrained(str(out)).encode("def f():") == \
        AutoTokenizer.from_pretrained(str(tokenizer_dir)).encode("def f():")
    back = tmp_path / "orbax"
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(out), "--out", str(back)]) == 0
    params, config = load_params(back)
    assert config.param_dtype == "bfloat16" and params["embed"]["embedding"].dtype == ml_dtypes.bfloat16
    original = hf_models["tied"][1].state_dict()["model.embed_tokens.weight"].numpy()
    assert np.array_equal(np.asarray(params["embed"]["embedding"]), original.astype(ml_dtypes.bfloat16))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    assert str(model.dtype) == "torch.bfloat16"


def test_every_eos_id_of_config_and_generation_config_survives_conversion(hf_models, tmp_path):
    """A list ``eos_token_id`` (instruct models) kept only its first id: generation ran past the others."""
    import shutil

    from semcoder_jax.checkpoint import read_model_config
    from semcoder_jax.convert import load_hf_params

    hf_dir = tmp_path / "hf_in"
    shutil.copytree(hf_models["gqa"][0], hf_dir)
    for name, eos in (("config.json", [2, 5]), ("generation_config.json", [2, 7])):
        data = json.loads((hf_dir / name).read_text())
        (hf_dir / name).write_text(json.dumps({**data, "eos_token_id": eos}))
    ckpt, out = tmp_path / "ckpt", tmp_path / "hf_out"
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(hf_dir), "--out", str(ckpt)]) == 0
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    for name in ("config.json", "generation_config.json"):
        assert json.loads((out / name).read_text())["eos_token_id"] == [2, 5, 7], name
    assert read_model_config(ckpt).eos_token_ids == load_hf_params(hf_dir)[1].eos_token_ids == (2, 5, 7)


def test_a_bad_generation_config_eos_names_the_file(hf_models, tmp_path):
    import shutil

    from semcoder_jax.convert.hf_to_orbax import read_hf_config
    from semcoder_jax.errors import SemcoderError

    hf_dir = tmp_path / "hf_in"
    shutil.copytree(hf_models["gqa"][0], hf_dir)
    (hf_dir / "generation_config.json").write_text(json.dumps({"eos_token_id": "</s>"}))
    with pytest.raises(SemcoderError, match=r"generation_config.json: eos_token_id must be a token id or a list"):
        read_hf_config(hf_dir)


@pytest.mark.parametrize("dtype, shard", [("float32", "20KB"), ("bfloat16", "20KB"), ("bfloat16", None)],
                         ids=["f32-sharded", "bf16-sharded", "bf16-single"])
def test_hf_orbax_hf_is_byte_identical(dtype, shard, hf_models, tmp_path):
    """HF (one file or shards with an index, as save_pretrained writes them) -> Orbax -> HF in the
    same dtype: every tensor's bytes, dtype and shape come back, read by safetensors itself."""
    import copy

    import torch
    from safetensors import safe_open

    source, ckpt, out = tmp_path / "in", tmp_path / "ckpt", tmp_path / "out"
    kwargs = {"max_shard_size": shard} if shard else {}
    copy.deepcopy(hf_models["gqa"][1]).to(getattr(torch, dtype)).save_pretrained(str(source), **kwargs)
    assert len(list(source.glob("*.safetensors"))) > 1 if shard else (source / "model.safetensors").exists()
    assert (source / "model.safetensors.index.json").exists() == bool(shard)
    assert main(["convert", "hf-to-orbax", "--hf-dir", str(source), "--out", str(ckpt)]) == 0
    assert main(["convert", "orbax-to-hf", "--checkpoint", str(ckpt), "--out", str(out), "--dtype", dtype]) == 0

    def tensors(folder):
        found = {}
        for file in sorted(folder.glob("*.safetensors")):
            with safe_open(str(file), "pt") as f:
                found.update({k: f.get_tensor(k) for k in f.keys()})
        return found

    want, got = tensors(source), tensors(out)
    assert set(got) == set(want) and len(want) == 3 + 9 * 2
    for name, tensor in want.items():
        assert got[name].dtype == tensor.dtype == getattr(torch, dtype), name
        assert got[name].shape == tensor.shape, name
        assert got[name].contiguous().view(torch.uint8).numpy().tobytes() == \
            tensor.contiguous().view(torch.uint8).numpy().tobytes(), name
    written, original = json.loads((out / "config.json").read_text()), json.loads((source / "config.json").read_text())
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
                "bos_token_id", "eos_token_id"):
        assert written[key] == original[key], key
    assert (written["rope_theta"], written["rope_scaling"]["factor"]) == (100000.0, 4.0)

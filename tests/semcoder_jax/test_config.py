"""The config loader and ModelConfig: presets, one-line errors, Hugging Face config round trip."""

import dataclasses
from dataclasses import dataclass, field

import pytest

from semcoder_jax.config import ConfigError, load_config, save_config
from semcoder_jax.model.config import ModelConfig, get_model_config


@pytest.mark.parametrize(
    "name, hidden, inter, layers, heads, kv",
    [
        ("deepseek-coder-1.3b", 2048, 5504, 24, 16, 16),
        ("deepseek-coder-6.7b", 4096, 11008, 32, 32, 32),
        ("deepseek-coder-33b", 7168, 19200, 62, 56, 8),
    ],
)
def test_presets_load(name, hidden, inter, layers, heads, kv):
    c = get_model_config(name)
    assert (c.name, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads) == (
        name, hidden, inter, layers, heads, kv)
    assert (c.vocab_size, c.rope_theta, c.rope_scaling_factor, c.max_position_embeddings) == (32256, 1e5, 4.0, 16384)
    assert c.rms_norm_eps == 1e-6 and not c.tie_word_embeddings and c.hidden_act == "silu"


def test_6p7b_param_count_matches_hf():
    # deepseek-coder-6.7b-base has 6,740,512,768 parameters
    assert get_model_config("deepseek-coder-6.7b").num_params() == 6_740_512_768


def test_tiny_preset_and_overrides():
    c = get_model_config("tiny", ["num_layers=3", "attention=cudnn"])
    assert c.num_layers == 3 and c.attention == "cudnn" and c.dtype == "float32"


def test_unknown_key_is_one_line_error(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("hidden_size: 64\nhiden_size: 32\n")
    with pytest.raises(ConfigError) as e:
        load_config(ModelConfig, path)
    msg = str(e.value)
    assert "hiden_size" in msg and str(path) in msg and "\n" not in msg


def test_unknown_override_key_is_one_line_error():
    with pytest.raises(ConfigError) as e:
        get_model_config("tiny", ["num_layer=3"])
    assert "num_layer" in str(e.value) and "\n" not in str(e.value)


def test_wrong_type_is_one_line_error(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("num_layers: many\n")
    with pytest.raises(ConfigError) as e:
        load_config(ModelConfig, path)
    assert "num_layers" in str(e.value) and "many" in str(e.value) and "\n" not in str(e.value)


def test_invalid_value_is_caught_by_validate():
    with pytest.raises(ConfigError, match="num_kv_heads"):
        get_model_config("tiny", ["num_kv_heads=3"])
    with pytest.raises(ConfigError, match="remat_policy"):
        get_model_config("tiny", ["remat_policy=sometimes"])


def test_unknown_preset_names_known_ones():
    with pytest.raises(ConfigError, match="deepseek-coder-6.7b"):
        get_model_config("deepseek-coder-7b")


@dataclass
class _Run:
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 10


def test_nested_preset_by_name_and_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: deepseek-coder-1.3b\nsteps: 5\n")
    run = load_config(_Run, path, ["model.num_layers=2"])
    assert run.model.hidden_size == 2048 and run.model.num_layers == 2 and run.steps == 5
    run = load_config(_Run, path, ["model=tiny"])
    assert run.model.name == "tiny"


def test_unknown_preset_in_a_file_names_the_file_and_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: deepseek-coder-7b\n")
    with pytest.raises(ConfigError, match=rf"^{path}: model: unknown model config 'deepseek-coder-7b'"):
        load_config(_Run, path)
    with pytest.raises(ConfigError, match=r"^<overrides>: model: unknown model config 'tiiny'"):
        load_config(_Run, None, ["model=tiiny"])
    path.write_text("model: 3\n")  # was "Merge error: int is not a subclass of ModelConfig", no key
    with pytest.raises(ConfigError, match=rf"^{path}: model: expected a preset name or a mapping, got 3$"):
        load_config(_Run, path)


def test_an_error_resolving_a_file_names_the_file_not_overrides(tmp_path):
    """A broken ``${...}`` in the YAML file was reported as ``<overrides>: ...`` with no override given."""
    path = tmp_path / "run.yaml"
    path.write_text("steps: ${nope}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: Interpolation key 'nope' not found \(key: steps\)$"):
        load_config(_Run, path)
    with pytest.raises(ConfigError, match=rf"^{path} \+ <overrides>: Interpolation key 'nope'"):
        load_config(_Run, path, ["model.num_layers=2"])


def test_empty_override_of_a_string_field_is_the_empty_string():
    """``data.path=`` (empty: synthetic data) must not become null, which a ``str`` field refuses."""
    from semcoder_jax.config import preset_path
    from semcoder_jax.train.config import load_train_config

    cfg = load_train_config(preset_path("train", "semcoder-6.7b"), ["data.path=", "wandb.project=", "max_steps="])
    assert (cfg.data.path, cfg.wandb.project, cfg.max_steps) == ("", "", None)
    with pytest.raises(ConfigError, match="model.num_layers"):
        load_train_config(None, ["model.num_layers="])


@pytest.mark.parametrize("value", ["yes", "off", "0755", "1e3", "1_000", "runs/a #1", "2024-01-01", "[a]", "a: b"])
def test_string_override_keeps_its_text(value):
    """A ``str`` field takes an override's text as is: YAML would read ``yes`` as true, ``0755`` as 493
    and cut ``runs/a #1`` at the ``#``."""
    from data_pipeline.config import DataConfig
    from semcoder_jax.config import preset_path
    from semcoder_jax.train.config import load_train_config

    cfg = load_train_config(None, [f"run_dir={value}", f"compilation_cache_dir={value}"])
    assert (cfg.run_dir, cfg.compilation_cache_dir) == (value, value)
    assert load_config(DataConfig, preset_path("data", "demo"), [f"tokenizer={value}"]).tokenizer == value
    cfg = load_train_config(None, ["run_dir='quoted'", "compilation_cache_dir=null", "run_dir=runs/${data.seq_len}"])
    assert (cfg.run_dir, cfg.compilation_cache_dir) == ("runs/2048", None)
    assert load_train_config(None, ["run_dir='quoted'"]).run_dir == "quoted"


def test_save_and_reload(tmp_path):
    c = get_model_config("deepseek-coder-33b")
    save_config(c, tmp_path / "c.yaml")
    assert load_config(ModelConfig, tmp_path / "c.yaml") == c


@pytest.mark.parametrize("name", ["tiny", "deepseek-coder-6.7b", "deepseek-coder-33b"])
def test_hf_config_round_trip(name):
    c = get_model_config(name)
    hf = c.to_hf_config("bfloat16")
    assert hf["architectures"] == ["LlamaForCausalLM"] and hf["torch_dtype"] == "bfloat16"
    assert hf["rope_scaling"] == {"type": "linear", "rope_type": "linear", "factor": 4.0}
    back = ModelConfig.from_hf_config(hf, dtype=c.dtype, param_dtype=c.param_dtype,
                                      remat_policy=c.remat_policy, attention=c.attention)
    assert back.head_size == c.head_size  # written explicitly, read back as a number
    assert dataclasses.replace(back, name=c.name, head_dim=c.head_dim) == c


def test_hf_config_read_by_transformers_and_back():
    """transformers reads our config.json; the config it writes (rope_parameters) reads back."""
    from transformers import LlamaConfig

    c = get_model_config("deepseek-coder-33b")
    hf = LlamaConfig(**c.to_hf_config())
    assert hf.rope_parameters["rope_type"] == "linear" and hf.rope_parameters["factor"] == 4.0
    assert hf.rope_parameters["rope_theta"] == 100000.0 and hf.num_key_value_heads == 8
    back = ModelConfig.from_hf_config(hf.to_dict())
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                "rope_theta", "rope_scaling_factor", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(back, key) == getattr(c, key), key


def test_get_model_config_from_hf_folder(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps(get_model_config("deepseek-coder-1.3b").to_hf_config()))
    c = get_model_config(str(tmp_path), ["dtype=float32"])
    assert c.hidden_size == 2048 and c.num_layers == 24 and c.dtype == "float32"


def test_unsupported_hf_rope_is_error():
    hf = get_model_config("tiny").to_hf_config()
    hf["rope_scaling"] = {"rope_type": "dynamic", "factor": 2.0}
    with pytest.raises(ConfigError, match="dynamic"):
        ModelConfig.from_hf_config(hf)


def test_model_config_json_rejects_unknown_key():
    text = get_model_config("tiny").to_json()
    assert ModelConfig.from_json(text) == get_model_config("tiny")
    with pytest.raises(ConfigError, match="flash"):
        ModelConfig.from_json(text[:-1] + ', "flash": true}')


def test_a_readme_config_path_names_the_shipped_preset_outside_the_repository(tmp_path, monkeypatch):
    """`--config configs/train/tiny-cpu.yaml` from another folder was "unknown train config"."""
    from semcoder_jax.config import preset_path

    monkeypatch.chdir(tmp_path)
    assert preset_path("train", "configs/train/tiny-cpu.yaml") == preset_path("train", "tiny-cpu")
    with pytest.raises(ConfigError, match="config file not found: mine.yaml"):
        preset_path("train", "mine.yaml")
    for typo in (f"{tmp_path}/runs/train/tiny-cpu.yaml", "runs/train/tiny-cpu.yaml", "/configs/train/tiny-cpu.yaml"):
        with pytest.raises(ConfigError, match="config file not found"):  # one's own file, mistyped: not the preset
            preset_path("train", typo)
    own = tmp_path / "configs" / "train" / "tiny-cpu.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("max_steps: 1\n")
    assert preset_path("train", "configs/train/tiny-cpu.yaml").resolve() == own  # a file that exists wins

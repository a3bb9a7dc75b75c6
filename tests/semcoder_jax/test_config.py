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


@pytest.mark.slow  # importing transformers takes most of its 5 to 12 s
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


# ---- presets replace their section; YAML files and overrides that cannot be used -------------------

def test_a_preset_replaces_what_an_earlier_layer_set(tmp_path):
    """``model: tiny`` in a file over a base that set other model keys gives exactly the tiny preset."""
    path = tmp_path / "run.yaml"
    path.write_text("model: tiny\n")
    base = {"model": {"preset": "deepseek-coder-6.7b", "remat_policy": "save_dots", "max_segments": 16,
                      "extra_eos_token_ids": [5], "rope_scaling_factor": 8.0}}
    assert load_config(_Run, path, base=base).model == get_model_config("tiny")
    path.write_text("model:\n  preset: tiny\n  num_layers: 3\n")  # the mapping's own keys apply on top
    run = load_config(_Run, path, ["model.num_layers=4"], base=base)
    assert run.model == get_model_config("tiny", ["num_layers=4"])


def test_dotted_overrides_apply_after_preset_overrides_in_order():
    run = load_config(_Run, None, ["model.remat_policy=save_dots", "model=tiny", "model.attention=xla",
                                   "model.remat_policy=full"])
    assert run.model == get_model_config("tiny", ["attention=xla", "remat_policy=full"])
    assert load_config(_Run, None, ["model=tiny", "model=deepseek-coder-1.3b"]).model == get_model_config("deepseek-coder-1.3b")
    assert load_config(_Run, None, ["model.num_layers=3", "model.preset=tiny"]).model == get_model_config("tiny", ["num_layers=3"])


def test_a_hugging_face_config_json_is_a_model_preset(tmp_path):
    """``model=path/config.json`` (or its folder) is that model, as ``get_model_config`` reads it."""
    import json

    hf = get_model_config("deepseek-coder-1.3b").to_hf_config()
    hf.update(eos_token_id=[32014, 32021], rope_scaling=None)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    want = get_model_config(str(tmp_path / "config.json"))
    assert want.extra_eos_token_ids == [32021] and want.rope_scaling_factor is None and want.hidden_size == 2048
    for name in (str(tmp_path / "config.json"), str(tmp_path)):
        assert load_config(_Run, None, ["model=tiny", f"model={name}"]).model == want
    path = tmp_path / "run.yaml"
    path.write_text(f"model: {tmp_path}\n")
    assert load_config(_Run, path).model == want
    with pytest.raises(ConfigError, match=r"^<overrides>: model: config file not found: .*nope\.json$"):
        load_config(_Run, None, [f"model={tmp_path}/nope.json"])
    with pytest.raises(ConfigError, match=rf"^{tmp_path}/config\.json \+ <overrides>: model\.num_heads \(16\) must be a multiple"):
        get_model_config(str(tmp_path), ["num_kv_heads=3"])
    (tmp_path / "bad.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ConfigError, match=r"bad\.json: missing key 'num_attention_heads'"):
        load_config(_Run, None, [f"model={tmp_path}/bad.json"])


def test_an_error_in_a_preset_names_the_preset_file(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("num_layers: 2\nremat: full\n")
    monkeypatch.setenv("SEMCODER_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"model/mine\.yaml \(model: mine in <overrides>\): unknown key 'model\.remat' "
                                          r"\(did you mean 'model\.remat_policy'\?\)$"):
        load_config(_Run, None, ["model=mine"])
    with pytest.raises(ConfigError, match=r"^<overrides>: model: unknown model config 'tiny' \(known: mine\)$"):
        load_config(_Run, None, ["model=tiny"])


@dataclass
class _Tagged:
    tags: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)


@pytest.mark.parametrize("override, tags", [("tags=[yes, 0755, 1e3, null]", ["yes", "0755", "1e3", "null"]),
                                            ("tags=['a b', \"c,d\"]", ["a b", "c,d"]), ("tags=[]", []), ("tags=", [])])
def test_a_list_of_strings_override_keeps_its_items_text(override, tags):
    """YAML read ``tags=[yes,0755]`` as ``["True", "493"]``."""
    assert load_config(_Tagged, None, [override]).tags == tags


@pytest.mark.parametrize("override, message", [
    ("tags=a", r"tags: expected a list such as tags=\[a,b\], got 'a'"),
    ("tags=[[a]]", r"tags: expected a list of strings, got the item \['a'\]"),
    ("ids=[1, x]", r"could not be converted to Integer \(key: ids\[1\]\)"),
    ("ids=3", r"ids: expected a list"),
    ("tags.0=x", r"tags\.0: tags is a list; give it whole, e\.g\. tags=\[a,b\]"),  # was a TypeError traceback
    ("name.x=1", r"name\.x: name is a value \(str\), not a section with keys"),
    ("model.foo.bar=1", r"unknown key 'model\.foo'$"),
    ("model.remat_polcy=full", r"unknown key 'model\.remat_polcy' \(did you mean 'model\.remat_policy'\?\)"),
    ("nope=1", r"unknown key 'nope'$"),
])
def test_a_bad_override_is_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=rf"^<overrides>: .*{message}") as e:
        load_config(_Tagged, None, [override])
    assert "\n" not in str(e.value)
    assert load_config(_Tagged, None, ["ids=[1, 2]"]).ids == [1, 2]


@pytest.mark.parametrize("text, message", [
    ("name: a\nname: b\n", r", line 2: duplicate key 'name' \(first given on line 1\)"),
    ("model:\n  num_layers: 2\n  hidden_size: 64\n  num_layers: 3\n", r", line 4: duplicate key 'num_layers' \(first given on line 2\)"),
    ("on: 1\n", r", line 1: key 'on' is read as bool True, not text; quote it"),
    ("- name\n", r": top level must be a mapping of keys to values, got list \['name'\]"),
    ("0\n", r": top level must be a mapping of keys to values, got int 0"),  # was read as an empty config
    ("just text\n", r": top level must be a mapping of keys to values, got str 'just text'"),
    ("model:\n\tnum_layers: 2\n", r", line 2, column 1: invalid YAML: found character '\\t' that cannot start any token"),
    ("model:\n  hiden_size: 3\n", r": unknown key 'model\.hiden_size' \(did you mean 'model\.hidden_size'\?\)"),
])
def test_a_bad_yaml_file_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}{message}$"):
        load_config(_Tagged, path)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    """Only a key written twice is a duplicate: one that overrides a ``<<: *anchor`` merge is not."""
    from semcoder_jax.config import read_yaml

    path = tmp_path / "a.yaml"
    path.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert read_yaml(path)["other"] == {"x": 1, "y": 3}


def test_unicode_empty_and_unreadable_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes("\ufeffname: ünïcödé ✓\ntags: [日本]\n".encode("utf-8"))  # with a byte-order mark
    assert (load_config(_Tagged, path).name, load_config(_Tagged, path).tags) == ("ünïcödé ✓", ["日本"])
    for empty in ("", "# only a comment\n", "\n\n"):
        path.write_text(empty)
        assert load_config(_Tagged, path) == _Tagged()
    path.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text \(byte 9: b'\\xe9'\)$"):
        load_config(_Tagged, path)
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: is a folder, not a YAML file$"):
        load_config(_Tagged, tmp_path)


def test_a_group_without_presets_says_so():
    with pytest.raises(ConfigError, match=r"^<overrides>: optimizer: there are no optimizer presets"):
        from semcoder_jax.train.config import load_train_config

        load_train_config(None, ["optimizer=adam"])


@pytest.mark.parametrize("value", ["0755", "yes", "null", "~", "1e3", "", " padded ", "a: b", "${x}", "a\\${x}", "\\\\${x}",
                                   "ünï", "multi\nline", "[a]", "#1"])
def test_dumped_config_loads_back_equal(tmp_path, value):
    """``dump_config`` (``--print-config``, a run's config.yaml) reads back to the same config, strings
    that YAML would read as other types and literal ``${`` included."""
    from semcoder_jax.config import dump_config

    config = _Tagged(tags=[value, "null", "1"], name=value, model=get_model_config("tiny", ["extra_eos_token_ids=[3]"]))
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config), encoding="utf-8")
    assert load_config(_Tagged, path) == config
    save_config(config, path)
    assert load_config(_Tagged, path) == config


def _shipped_presets():
    from data_pipeline.config import DataConfig
    from eval.config import EvalConfig
    from semcoder_jax import CONFIG_DIR
    from semcoder_jax.train.config import MeshConfig, TrainConfig

    classes = {"data": DataConfig, "eval": EvalConfig, "model": ModelConfig, "mesh": MeshConfig, "train": TrainConfig}
    return [(classes[p.parent.name], p) for p in sorted(CONFIG_DIR.glob("*/*.yaml"))]


@pytest.mark.parametrize("cls, path", _shipped_presets(), ids=lambda x: getattr(x, "stem", None) or x.__name__)
def test_every_shipped_preset_dumps_and_loads_back_equal(tmp_path, cls, path):
    config = load_config(cls, path)
    save_config(config, tmp_path / "c.yaml")
    assert load_config(cls, tmp_path / "c.yaml") == config

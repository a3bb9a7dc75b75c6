"""The model config: the single source for shapes, FLOP counts, sharding and HF conversion."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from semcoder_jax.config import ConfigError, escape_interpolations, load_config, preset_path, read_yaml

ATTENTION_IMPLS = ("auto", "xla", "cudnn", "splash")
REMAT_POLICIES = (
    "none", "full", "save_dots", "save_dots_no_batch", "save_dots_attention", "save_qkv_proj", "save_out_proj",
)
DTYPES = ("float32", "bfloat16", "float16")

# Every key a LlamaForCausalLM config.json may hold: LlamaConfig's fields (transformers 4 and 5)
# and PretrainedConfig's generic ones. Listed here rather than read from transformers, whose
# config module imports torch (seconds on every conversion).
_LLAMA_KEYS = frozenset("""
    architectures attention_bias attention_dropout bos_token_id eos_token_id pad_token_id head_dim
    hidden_act hidden_size initializer_range intermediate_size max_position_embeddings mlp_bias
    model_type num_attention_heads num_hidden_layers num_key_value_heads pretraining_tp rms_norm_eps
    rope_parameters rope_scaling rope_theta tie_word_embeddings use_cache vocab_size
    dtype torch_dtype _name_or_path transformers_version
""".split())
_GENERIC_KEYS = frozenset("""
    add_cross_attention bad_words_ids begin_suppress_tokens chunk_size_feed_forward
    cross_attention_hidden_size decoder_start_token_id diversity_penalty do_sample early_stopping
    encoder_no_repeat_ngram_size exponential_decay_length_penalty finetuning_task forced_bos_token_id
    forced_eos_token_id id2label is_decoder is_encoder_decoder label2id length_penalty max_length
    min_length no_repeat_ngram_size num_beam_groups num_beams num_return_sequences output_attentions
    output_hidden_states output_scores prefix problem_type pruned_heads remove_invalid_values
    repetition_penalty return_dict return_dict_in_generate sep_token_id suppress_tokens
    task_specific_params temperature tf_legacy_loss tie_encoder_decoder tokenizer_class top_k top_p
    torchscript typical_p use_bfloat16 _attn_implementation_autoset
""".split())
KNOWN_HF_CONFIG_KEYS = _LLAMA_KEYS | _GENERIC_KEYS

# Splash attention tiles a sequence in blocks of this many tokens (its default block sizes).
SPLASH_BLOCK = 128


@dataclass
class ModelConfig:
    """A LLaMA-architecture decoder (DeepSeek-Coder, CodeLlama, ...).

    Architecture fields mirror Hugging Face's ``LlamaConfig``; the runtime fields below them
    (dtypes, attention kernel, remat, scan) do not change the weights.
    """

    name: str = "custom"
    vocab_size: int = 32256
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int = 32
    head_dim: Optional[int] = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 100000.0
    # Linear RoPE scaling ("type": "linear" in HF): positions are divided by this factor.
    rope_scaling_factor: Optional[float] = None
    max_position_embeddings: int = 16384
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    initializer_range: float = 0.02
    bos_token_id: Optional[int] = 32013
    eos_token_id: Optional[int] = 32014
    # HF's eos_token_id may be a list (instruct models: end of turn too); every one ends a sample.
    extra_eos_token_ids: list[int] = field(default_factory=list)
    pad_token_id: Optional[int] = None

    # Runtime (not part of the checkpoint's identity).
    dtype: str = "bfloat16"
    param_dtype: str = "float32"
    # auto: cuDNN on GPU (bf16/fp16 compute), splash on TPU, XLA otherwise; see ``attention_kernel``.
    attention: str = "auto"
    remat_policy: str = "full"
    # true: one scanned layer (compile time flat in depth); false: layers unrolled, so XLA slices
    # no stacked weights or saved activations per layer (6.7B on one H200: 1.06x the scanned
    # step's speed, step compile 16 s instead of 6; on CPU, XLA's schedule then holds every
    # layer's activations at once, as without remat); null (auto): unrolled on GPU, scanned
    # elsewhere. See ``scans_layers``.
    scan_layers: Optional[bool] = None
    # Layers per scan iteration: >1 lets XLA fuse and schedule across layer boundaries, at some
    # compile time. Ignored when layers are unrolled.
    scan_unroll: int = 1
    # cuDNN attention: the most runs of equal segment id (padding included) a row may hold, for
    # cuDNN's packed layout, whose cost grows with it; 0 uses a segment-mask bias instead
    # (slower, no limit). The data pipeline packs at most this many runs per row.
    max_segments: int = 8

    def validate(self) -> "ModelConfig":
        for key in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if self.head_dim is not None and (self.head_dim < 2 or self.head_dim % 2):
            raise ConfigError(f"model.head_dim must be a positive even number (rotary embeddings), got {self.head_dim}")
        if self.rope_scaling_factor is not None and self.rope_scaling_factor <= 0:
            raise ConfigError(f"model.rope_scaling_factor must be > 0 (or null), got {self.rope_scaling_factor}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"model.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size ({self.hidden_size}) must divide by num_heads ({self.num_heads})")
        if self.head_size % 2:
            raise ConfigError(f"model.hidden_size / num_heads = {self.head_size} must be even (rotary embeddings); set model.head_dim")
        if self.attention not in ATTENTION_IMPLS:
            raise ConfigError(f"model.attention must be one of {ATTENTION_IMPLS}, got {self.attention!r}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ConfigError(f"model.remat_policy must be one of {REMAT_POLICIES}, got {self.remat_policy!r}")
        for key in ("dtype", "param_dtype"):
            if getattr(self, key) not in DTYPES:
                raise ConfigError(f"model.{key} must be one of {DTYPES}, got {getattr(self, key)!r}")
        if self.max_segments < 0 or self.max_segments == 1:
            raise ConfigError(f"model.max_segments must be 0 (no packed layout) or >= 2 (padding is a run too), got {self.max_segments}")
        if self.scan_unroll < 1:
            raise ConfigError(f"model.scan_unroll must be >= 1, got {self.scan_unroll}")
        if self.hidden_act != "silu":
            raise ConfigError(f"model.hidden_act {self.hidden_act!r} is not supported (only 'silu')")
        return self

    def attention_kernel(self, backend: str | None = None, seq_len: int | None = None) -> str:
        """The attention kernel to run on ``backend`` (default: JAX's): ``attention`` unless it is
        ``auto``, so one config trains at full speed on GPU and TPU and still runs on CPU. On TPU
        ``auto`` takes XLA for a ``seq_len`` that splash cannot tile (short test/demo rows)."""
        if self.attention != "auto":
            return self.attention
        if backend is None:
            import jax

            backend = jax.default_backend()
        if backend in ("gpu", "cuda") and self.dtype in ("bfloat16", "float16"):
            return "cudnn"
        if backend == "tpu" and (seq_len is None or seq_len % SPLASH_BLOCK == 0):
            return "splash"
        return "xla"

    def scans_layers(self, backend: str | None = None) -> bool:
        """Whether the layers run as one ``scan`` on ``backend`` (default: JAX's): ``scan_layers``
        unless it is null, which unrolls them on GPU, where that measured faster, and scans them on
        TPU (untested there unrolled) and CPU (compile time, and remat's memory saving)."""
        if self.scan_layers is not None:
            return self.scan_layers
        if backend is None:
            import jax

            backend = jax.default_backend()
        return backend not in ("gpu", "cuda")

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """Every id that ends generation: ``eos_token_id`` first, then the extra ones."""
        first = () if self.eos_token_id is None else (self.eos_token_id,)
        return tuple(dict.fromkeys(first + tuple(self.extra_eos_token_ids)))

    @property
    def head_size(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_heads

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes).validate()

    # ---- sizes and FLOPs -------------------------------------------------------------------
    def layer_params(self) -> int:
        d, hd = self.hidden_size, self.head_size
        attn = d * self.num_heads * hd * 2 + d * self.num_kv_heads * hd * 2
        mlp = 3 * d * self.intermediate_size
        return attn + mlp + 2 * d

    def num_params(self) -> int:
        """All parameters, as HF counts them (embeddings once when tied)."""
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else embed
        return self.num_layers * self.layer_params() + embed + head + self.hidden_size

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, 6·N + 12·L·(h·hd)·S (PaLM convention, attention not halved).

        N counts the matmul weights: every layer's projections plus the output head, not the
        embedding lookup, as the reference step scripts do. The attention width h·hd is the
        hidden size d for every shipped preset (the reference scripts write 12·L·d·S).
        """
        d, L = self.hidden_size, self.num_layers
        n_matmul = L * (self.layer_params() - 2 * d) + d * self.vocab_size
        return 6.0 * n_matmul + 12.0 * L * self.num_heads * self.head_size * seq_len

    # ---- Hugging Face ----------------------------------------------------------------------
    def to_hf_config(self, torch_dtype: str = "bfloat16") -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_size,
            "hidden_act": self.hidden_act,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": (
                {"type": "linear", "rope_type": "linear", "factor": self.rope_scaling_factor}
                if self.rope_scaling_factor
                else None
            ),
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "initializer_range": self.initializer_range,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": hf_token_ids(self.eos_token_ids),
            "pad_token_id": self.pad_token_id,
            "attention_bias": False,
            "mlp_bias": False,
            "torch_dtype": torch_dtype,
            "use_cache": True,
        }
        return cfg

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], **runtime: Any) -> "ModelConfig":
        """From a LlamaForCausalLM ``config.json`` (as a dict). An unknown key, or a value that would
        make another model than ours (RoPE scaling other than linear, biases, dropout), is an error:
        in a LLaMA-family config such keys change the architecture (or quantise it)."""
        unknown = sorted(set(hf) - KNOWN_HF_CONFIG_KEYS)
        if unknown:
            raise ConfigError(f"config.json: unknown config key(s) {', '.join(map(repr, unknown))} (not LlamaConfig fields)")
        archs = hf.get("architectures") or ["LlamaForCausalLM"]
        if hf.get("model_type", "llama") != "llama" and "LlamaForCausalLM" not in archs:
            raise ConfigError(f"config.json: model_type {hf.get('model_type')!r} is not a LLaMA model")
        rope_theta, factor = _hf_rope(hf)
        for key in ("attention_bias", "mlp_bias"):
            if hf.get(key) not in (None, False):
                raise ConfigError(f"config.json: {key}={hf[key]!r} is not supported (LLaMA projections without biases only)")
        if hf.get("attention_dropout") not in (None, 0, 0.0):
            raise ConfigError(f"config.json: attention_dropout={hf['attention_dropout']!r} is not supported (only 0)")
        heads = hf["num_attention_heads"]
        # A missing id takes LlamaConfig's default (1, 2), as transformers and vLLM read the file.
        eos = token_ids(hf.get("eos_token_id", 2), "eos_token_id")
        fields = dict(
            name=hf.get("_name_or_path") or "hf",
            vocab_size=hf["vocab_size"],
            hidden_size=hf["hidden_size"],
            intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim"),
            rms_norm_eps=hf.get("rms_norm_eps", 1e-6),
            rope_theta=rope_theta,
            rope_scaling_factor=factor,
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=hf.get("tie_word_embeddings", False),
            hidden_act=hf.get("hidden_act", "silu"),
            initializer_range=hf.get("initializer_range", 0.02),
            bos_token_id=hf.get("bos_token_id", 1),
            eos_token_id=eos[0] if eos else None,
            extra_eos_token_ids=list(eos[1:]),
            pad_token_id=hf.get("pad_token_id"),
        )
        # Typed as a YAML config: a hand-edited "false" would be a truthy string, "320" no size.
        try:
            return load_config(cls, base={**fields, **runtime})
        except ConfigError as e:
            raise ConfigError(f"config.json: {str(e).removeprefix('<base>: ')}") from None

    @classmethod
    def preset_data(cls, name: str) -> tuple[dict[str, Any], str]:
        """The fields that ``model: NAME`` in a config (or ``model=NAME``) stands for, and their file:
        a preset, a model YAML, or a Hugging Face ``config.json`` (or a folder holding one), whose
        every field, runtime ones included, is the model section."""
        path = _hf_config_file(name)
        if path is None:
            file = preset_path("model", name)
            return read_yaml(file), str(file)
        return escape_interpolations(dataclasses.asdict(_read_hf_config(path))), str(path)

    # ---- files -----------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Typed as a YAML config is, so that a hand-written ``model_config.json`` with a wrong type
        is an error naming the key, not a wrong model (``"tie_word_embeddings": "false"`` is truthy)."""
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model config: unknown key(s) {', '.join(unknown)}")
        try:
            return load_config(cls, base=data)
        except ConfigError as e:
            raise ConfigError(str(e).removeprefix("<base>: ")) from None


# RoPE dict keys that transformers' default and linear RoPE of LLaMA do not read.
_ROPE_IGNORED_KEYS = frozenset({"type", "rope_type", "rope_theta", "original_max_position_embeddings"})


def _hf_rope(hf: dict[str, Any]) -> tuple[float, Optional[float]]:
    """(rope_theta, linear factor or None) as transformers 5 reads them; any RoPE it would compute
    differently from ours (dynamic, yarn, llama3, partial rotary, ...) is an error.

    A ``rope_theta`` inside the RoPE dict wins over the top-level one, as in transformers.
    """
    scaling, params = hf.get("rope_scaling"), hf.get("rope_parameters")
    if scaling and params:  # transformers 5 reads rope_scaling and drops rope_parameters' theta
        raise ConfigError("config.json: both rope_scaling and rope_parameters are given; keep one")
    rope = scaling or params or {}
    name = "rope_scaling" if scaling else "rope_parameters"
    if not isinstance(rope, dict):
        raise ConfigError(f"config.json: {name} must be an object, got {rope!r}")
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("linear", "default"):
        raise ConfigError(f"config.json: {name} type {kind!r} is not supported (only 'default' and 'linear')")
    known = _ROPE_IGNORED_KEYS | ({"factor"} if kind == "linear" else set())
    if rope.get("partial_rotary_factor", 1.0) == 1.0:
        known = known | {"partial_rotary_factor"}
    unknown = sorted(set(rope) - known)
    if unknown:
        raise ConfigError(f"config.json: {name} key(s) {', '.join(map(repr, unknown))} are not supported for "
                          f"{kind!r} RoPE ({', '.join(f'{k}={rope[k]!r}' for k in unknown)})")
    if kind == "linear" and "factor" not in rope:
        raise ConfigError(f"config.json: {name} of type 'linear' needs a factor")
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    return theta, (rope["factor"] if kind == "linear" else None)


def token_ids(value: Any, key: str) -> tuple[int, ...]:
    """A HF special-token field (null, an id or a list of ids) as a tuple of ids."""
    ids = [] if value is None else value if isinstance(value, list) else [value]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ConfigError(f"config.json: {key} must be a token id or a list of them, got {value!r}")
    return tuple(dict.fromkeys(ids))


def hf_token_ids(ids: tuple[int, ...]) -> int | list[int] | None:
    """HF's spelling of a special-token field: null, one id, or a list of several."""
    return None if not ids else ids[0] if len(ids) == 1 else list(ids)


def get_model_config(name_or_path: str, overrides: tuple[str, ...] | list[str] = ()) -> ModelConfig:
    """A preset (``deepseek-coder-6.7b``), a model YAML, or a HF ``config.json`` / folder holding one."""
    hf_file = _hf_config_file(name_or_path)
    if hf_file is not None:
        try:
            return load_config(ModelConfig, base=dataclasses.asdict(_read_hf_config(hf_file)), overrides=overrides)
        except ConfigError as e:  # "<base>" is the config.json
            message = str(e)
            raise ConfigError(f"{hf_file}{message.removeprefix('<base>')}" if message.startswith("<base>") else message) from None
    return load_config(ModelConfig, preset_path("model", name_or_path), overrides)


def _hf_config_file(name_or_path: str) -> Path | None:
    """The ``config.json`` that ``name_or_path`` names (a ``.json`` path, or a folder holding one)."""
    p = Path(name_or_path)
    if p.is_dir() and (p / "config.json").exists():
        return p / "config.json"
    return p if p.suffix == ".json" else None


def _read_hf_config(path: Path) -> ModelConfig:
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON file: {e}") from None
    if not isinstance(hf, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(hf).__name__}")
    try:
        return ModelConfig.from_hf_config(hf)
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).removeprefix('config.json: ')}") from None
    except KeyError as e:
        raise ConfigError(f"{path}: missing key {e.args[0]!r} (a LlamaForCausalLM config.json has it)") from None

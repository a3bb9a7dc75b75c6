"""The model config: the single source for shapes, FLOP counts, sharding and HF conversion."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from semcoder_jax.config import ConfigError, load_config, preset_path

ATTENTION_IMPLS = ("auto", "xla", "cudnn", "splash")
REMAT_POLICIES = (
    "none", "full", "save_dots", "save_dots_no_batch", "save_dots_attention", "save_qkv_proj", "save_out_proj",
)
DTYPES = ("float32", "bfloat16", "float16")
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
    scan_layers: bool = True
    # Layers per scan iteration: >1 lets XLA fuse and schedule across layer boundaries, at some
    # compile time. Ignored when scan_layers is false (fully unrolled).
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
        """From a LlamaForCausalLM ``config.json`` (as a dict)."""
        archs = hf.get("architectures") or ["LlamaForCausalLM"]
        if hf.get("model_type", "llama") != "llama" and "LlamaForCausalLM" not in archs:
            raise ConfigError(f"config.json: model_type {hf.get('model_type')!r} is not a LLaMA model")
        # transformers >= 5 writes both as one ``rope_parameters`` dict (rope_theta inside).
        rope_params = hf.get("rope_parameters") or {}
        scaling = hf.get("rope_scaling") or rope_params or None
        factor = None
        if scaling:
            kind = scaling.get("rope_type", scaling.get("type"))
            if kind not in ("linear", "default"):
                raise ConfigError(f"config.json: rope_scaling type {kind!r} is not supported (only 'linear')")
            factor = float(scaling["factor"]) if kind == "linear" else None
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise ConfigError("config.json: attention_bias/mlp_bias are not supported")
        heads = hf["num_attention_heads"]
        eos = token_ids(hf.get("eos_token_id"), "eos_token_id")
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
            rope_theta=hf.get("rope_theta", rope_params.get("rope_theta", 10000.0)),
            rope_scaling_factor=factor,
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=hf.get("tie_word_embeddings", False),
            hidden_act=hf.get("hidden_act", "silu"),
            initializer_range=hf.get("initializer_range", 0.02),
            bos_token_id=hf.get("bos_token_id"),
            eos_token_id=eos[0] if eos else None,
            extra_eos_token_ids=list(eos[1:]),
            pad_token_id=hf.get("pad_token_id"),
        )
        # Typed as a YAML config: a hand-edited "false" would be a truthy string, "320" no size.
        try:
            return load_config(cls, base={**fields, **runtime})
        except ConfigError as e:
            raise ConfigError(f"config.json: {str(e).removeprefix('<base>: ')}") from None

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
    p = Path(name_or_path)
    if p.is_dir() and (p / "config.json").exists():
        p = p / "config.json"
    if p.suffix == ".json" and p.exists():
        cfg = ModelConfig.from_hf_config(json.loads(p.read_text()))
        return load_config(ModelConfig, base=dataclasses.asdict(cfg), overrides=overrides)
    return load_config(ModelConfig, preset_path("model", name_or_path), overrides)

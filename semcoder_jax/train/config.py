"""Typed training configs: ``load_config(TrainConfig, path, overrides)`` builds one from YAML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from semcoder_jax.config import ConfigError, load_config
from semcoder_jax.model.config import ModelConfig

MESH_AXES = ("data", "fsdp", "tensor")
MOMENT_DTYPES = ("float32", "bfloat16")

# MaxText-style logical axis -> mesh axes rules: FSDP over parameters' embed dimension, tensor
# parallelism over heads/mlp/vocab, batch over every data-like axis.
DEFAULT_RULES: list[Any] = [
    ["activation_batch", ["data", "fsdp"]],
    ["activation_length", None],
    ["activation_embed", None],
    ["activation_heads", "tensor"],
    ["activation_kv_heads", "tensor"],
    ["activation_head_dim", None],
    ["activation_mlp", "tensor"],
    ["activation_vocab", "tensor"],
    ["vocab", "tensor"],
    ["embed", "fsdp"],
    ["q_heads", "tensor"],
    ["kv_heads", "tensor"],
    ["head_dim", None],
    ["mlp", "tensor"],
    ["layers", None],
    ["norm", None],
]

LOGICAL_AXES = tuple(name for name, _ in DEFAULT_RULES)


@dataclass
class MeshConfig:
    """Mesh axis sizes (``-1``: the devices left over); ``dcn_data`` replicates across slices/nodes."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1
    dcn_data: int = 1
    num_devices: int = -1  # use only the first N devices (tests, benchmarks); -1 = all
    # Apply the model's activation sharding constraints (needs a model that traces under a mesh).
    constrain_activations: bool = True
    logical_axis_rules: list[Any] = field(default_factory=lambda: [list(r) for r in DEFAULT_RULES])

    def validate(self) -> "MeshConfig":
        sizes = [self.data, self.fsdp, self.tensor]
        if sum(s == -1 for s in sizes) > 1:
            raise ConfigError(f"mesh: at most one of data/fsdp/tensor may be -1 (the rest of the devices), got "
                              f"data={self.data} fsdp={self.fsdp} tensor={self.tensor}")
        if any(s == 0 or s < -1 for s in sizes) or self.dcn_data < 1:
            raise ConfigError(f"mesh: axis sizes must be positive or -1, got data={self.data} fsdp={self.fsdp} tensor={self.tensor} dcn_data={self.dcn_data}")
        for rule in self.logical_axis_rules:
            if not isinstance(rule, (list, tuple)) or len(rule) != 2 or not isinstance(rule[0], str):
                raise ConfigError(f"mesh.logical_axis_rules: each rule must be [logical_name, mesh_axes], got {rule!r}")
            if rule[0] not in LOGICAL_AXES:  # an unknown name is never looked up: its dimension stays replicated
                raise ConfigError(f"mesh.logical_axis_rules: unknown logical axis {rule[0]!r} (the model's: "
                                  f"{', '.join(LOGICAL_AXES)})")
            axes = rule[1] if isinstance(rule[1], (list, tuple)) else [rule[1]]
            for a in axes:
                if a is not None and a not in MESH_AXES:
                    raise ConfigError(f"mesh.logical_axis_rules: {rule[0]!r} maps to unknown mesh axis {a!r} (axes: {MESH_AXES})")
        return self

    def rules(self) -> tuple[tuple[str, Any], ...]:
        out = []
        for name, axes in self.logical_axis_rules:
            out.append((name, tuple(axes) if isinstance(axes, (list, tuple)) else axes))
        return tuple(out)


@dataclass
class OptimizerConfig:
    """AdamW with linear warm-up then cosine decay to ``min_lr``, after global-norm clipping."""

    lr: float = 5e-5
    min_lr: float = 5e-6
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps == 0
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.0
    clip_norm: float = 1.0  # <= 0 disables clipping
    moment_dtype: str = "float32"  # the first moment's (optax mu_dtype); the second stays float32

    def validate(self) -> "OptimizerConfig":
        if self.moment_dtype not in MOMENT_DTYPES:
            raise ConfigError(f"optimizer.moment_dtype must be one of {MOMENT_DTYPES}, got {self.moment_dtype!r}")
        if not (0.0 <= self.warmup_ratio < 1.0):
            raise ConfigError(f"optimizer.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.lr < 0 or self.min_lr < 0 or self.warmup_steps < 0 or self.weight_decay < 0 or self.eps < 0:
            raise ConfigError("optimizer.lr, min_lr, warmup_steps, weight_decay and eps must be >= 0")
        if self.min_lr > self.lr:
            raise ConfigError(f"optimizer.min_lr ({self.min_lr}) must not exceed optimizer.lr ({self.lr})")
        for key in ("b1", "b2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"optimizer.{key} must be in [0, 1), got {getattr(self, key)}")
        return self


@dataclass
class DataConfig:
    """``path``: a data-pipeline folder (manifest.json), a TFRecord glob, or a tokenised JSONL.

    Empty ``path`` trains on a small synthetic packed dataset (``synthetic_rows`` rows), for demos.
    """

    path: str = ""
    split: str = "train"
    seq_len: int = 2048
    global_batch_size: int = 512
    micro_batches: int = 1
    shuffle_seed: int = 0
    shuffle_buffer: int = 10000
    epochs: float = 2.0
    pad_id: int = 0
    synthetic_rows: int = 64

    def validate(self) -> "DataConfig":
        if self.global_batch_size < 1 or self.micro_batches < 1:
            raise ConfigError("data.global_batch_size and data.micro_batches must be >= 1")
        if self.global_batch_size % self.micro_batches:
            raise ConfigError(f"data.global_batch_size ({self.global_batch_size}) must divide by data.micro_batches ({self.micro_batches})")
        if self.seq_len < 2:
            raise ConfigError(f"data.seq_len must be >= 2, got {self.seq_len}")
        if self.epochs <= 0:
            raise ConfigError(f"data.epochs must be > 0, got {self.epochs}")
        if self.shuffle_buffer < 1:
            raise ConfigError(f"data.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        _local_path("data.path", self.path)
        return self


def _local_path(key: str, path: str) -> None:
    """The reader opens files by path, so an object-store URL would only match nothing: say how to read it."""
    if "://" in path:
        raise ConfigError(f"{key} {path!r} must be a filesystem path; mount the bucket on every host (gcsfuse, "
                          f"or NFS/Filestore) and give the mounted folder")


@dataclass
class ValidationConfig:
    """Held-out loss every ``every`` steps (0: never) and at the last step.

    ``path`` empty: ``split`` of ``data.path`` (a data-pipeline folder), or held-out synthetic rows
    when ``data.path`` is empty too; else a folder, TFRecord glob or JSONL as for ``data.path``.
    The rows are read once into host memory; ``max_batches`` > 0 evaluates only the first ones.
    """

    path: str = ""
    split: str = "validation"
    every: int = 0
    max_batches: int = 0

    def validate(self) -> "ValidationConfig":
        if self.every < 0 or self.max_batches < 0:
            raise ConfigError(f"validation.every and validation.max_batches must be >= 0, got {self.every} and {self.max_batches}")
        _local_path("validation.path", self.path)
        return self


@dataclass
class CheckpointConfig:
    """Orbax checkpoints in ``run_dir/<dir>``: every ``every`` steps and at the end, keep ``keep``."""

    dir: str = "checkpoints"
    every: int = 1000
    keep: int = 3
    async_save: bool = True
    save_on_sigterm: bool = True


@dataclass
class ProfileConfig:
    """A ``jax.profiler`` trace of steps ``start_step`` .. ``start_step + steps - 1`` (0: none) into
    ``run_dir/profile``, for TensorBoard's profile plugin or Perfetto."""

    start_step: int = 0
    steps: int = 3

    def validate(self) -> "ProfileConfig":
        if self.start_step < 0 or self.steps < 1:
            raise ConfigError(f"profile.start_step must be >= 0 and profile.steps >= 1, got {self.start_step} and {self.steps}")
        return self


@dataclass
class WandbConfig:
    """Weights & Biases logging, used when ``project`` is set and ``wandb`` is installed."""

    project: str = ""
    entity: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    run_dir: str = "runs/default"
    init_from: str = "scratch"  # scratch | hf:DIR_OR_ID[@REVISION] | orbax:DIR[@STEP]
    max_steps: Optional[int] = None
    log_every: int = 10
    z_loss: float = 0.0
    # Fuse the output head with the cross-entropy, this many positions at a time (0: whole rows),
    # so the [batch, seq, vocab] float32 logits are never held; null: full logits.
    loss_chunk_size: Optional[int] = None
    seed: int = 0
    peak_tflops: Optional[float] = None  # per device; default from the device-kind table
    tensorboard: bool = True
    # XLA's persistent compilation cache (per host, or one folder all hosts share): a restarted or
    # resumed run loads its compiled step instead of compiling it again. null: JAX's own setting
    # (JAX_COMPILATION_CACHE_DIR, else none).
    compilation_cache_dir: Optional[str] = None

    def validate(self) -> "TrainConfig":
        self.model.validate()
        self.mesh.validate()
        self.optimizer.validate()
        self.data.validate()
        self.validation.validate()
        self.profile.validate()
        if not (self.init_from == "scratch" or self.init_from.startswith(("hf:", "orbax:"))):
            raise ConfigError(f"init_from must be 'scratch', 'hf:DIR_OR_ID[@REVISION]' or 'orbax:DIR[@STEP]', got {self.init_from!r}")
        if "://" in self.run_dir:  # a local folder named "gs:" otherwise: each host would keep its own
            raise ConfigError(f"run_dir {self.run_dir!r} must be a filesystem path; on several hosts, a folder "
                              f"they all have mounted (NFS/Filestore, or a bucket through gcsfuse)")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"max_steps must be >= 0, got {self.max_steps}")
        if self.log_every < 1 or self.checkpoint.every < 1 or self.checkpoint.keep < 1:
            raise ConfigError("log_every, checkpoint.every and checkpoint.keep must be >= 1")
        if self.z_loss < 0:
            raise ConfigError(f"z_loss must be >= 0, got {self.z_loss}")
        if self.loss_chunk_size is not None and self.loss_chunk_size < 0:
            raise ConfigError(f"loss_chunk_size ({self.loss_chunk_size}) must be null, 0 (whole rows) or a positive number of positions")
        if self.data.seq_len > self.model.max_position_embeddings:
            raise ConfigError(f"data.seq_len ({self.data.seq_len}) exceeds model.max_position_embeddings ({self.model.max_position_embeddings})")
        if "float16" in (self.model.dtype, self.model.param_dtype):  # no loss scaling: gradients underflow
            raise ConfigError("model.dtype / model.param_dtype float16 cannot train here (no loss scaling: the "
                              "per-token gradients underflow); use bfloat16")
        if not 0 <= self.data.pad_id < self.model.vocab_size:  # it would embed as NaN, and NaN x 0 weight is NaN
            raise ConfigError(f"data.pad_id ({self.data.pad_id}) must be a token id of the model, in [0, {self.model.vocab_size})")
        return self


def load_train_config(path: str | None = None, overrides: tuple[str, ...] | list[str] = ()) -> TrainConfig:
    return load_config(TrainConfig, path, overrides)

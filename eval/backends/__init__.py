"""Generation backends behind one interface; heavy libraries load only for the chosen one.

Every backend returns, per prompt, ``n`` completions (text after the prompt, cut before the first
stop string, which is not included).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol, Sequence

from semcoder_jax.errors import SemcoderError

BACKENDS = {
    "hf": "eval.backends.hf:HFBackend",
    "jax": "eval.backends.jax_backend:JaxBackend",
    "vllm": "eval.backends.vllm_backend:VLLMBackend",
    "openai": "eval.backends.openai_backend:OpenAIBackend",
}


@dataclasses.dataclass
class BackendConfig:
    """Where the model comes from and how it runs; fields a backend does not use are ignored."""

    checkpoint: str | None = None  # Orbax training checkpoint (jax directly; hf/vllm convert it first)
    step: int | None = None
    hf_dir: str | None = None  # Hugging Face model folder
    tokenizer: str | None = None  # default: the model's, else the shipped DeepSeek-Coder tokenizer
    dtype: str | None = None  # e.g. bfloat16; default per backend
    batch_size: int = 16  # openai: requests in flight
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: int | None = None  # vllm
    base_url: str | None = None  # openai
    model: str | None = None  # openai model name
    api_key_env: str = "OPENAI_API_KEY"  # openai: the environment variable holding the key
    chat: bool = False  # openai: chat.completions instead of completions
    max_retries: int = 5  # openai: per request, on rate limits, timeouts and server errors


class Backend(Protocol):
    """May also name a ``sampling_scheme`` (str): how its seeds become samples. Sampled cache rows
    carry it, so a change of scheme draws cached samples again while greedy ones are kept."""

    name: str

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 512,
        stop: Sequence[str] = (),
        seed: int = 0,
    ) -> list[list[str]]:
        """``n`` completions a prompt. Prompt i is sampled with seed ``seed + i * n`` (its sample j
        with ``seed + i * n + j`` where a backend seeds samples: hf, jax), so a prompt's samples do not
        depend on the other prompts of the call or on the batch size."""
        ...

    def identity(self) -> dict[str, Any]:
        """What determines the generations besides the settings (for the cache key)."""
        ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def pin_step(config: BackendConfig) -> BackendConfig:
    """``config`` with the checkpoint step that will be loaded: ``--step`` left out means the newest
    one, resolved here once, so that loading and the cache identity (:func:`model_source`) agree."""
    if not config.checkpoint or config.step is not None:
        return config
    from semcoder_jax.checkpoint import params_path

    _, step = params_path(config.checkpoint, None)  # None for a params-only checkpoint
    return dataclasses.replace(config, step=step)


def model_source(config: BackendConfig) -> str:
    """The model as results name it: the HF folder or hub id as given, or the checkpoint folder with
    the step loaded (give a config from :func:`pin_step`)."""
    from pathlib import Path

    if config.hf_dir and not config.checkpoint:
        return config.hf_dir
    return f"{Path(config.checkpoint).absolute()}@{config.step}"


def model_identity(config: BackendConfig) -> dict[str, str]:
    """What decides the generations besides the settings, for the cache key: the model (a
    checkpoint's step, so that more training is a new model; a HF folder's weight files, so that a
    new export into the same folder is one) and ``--tokenizer`` (the same model read with another
    tokenizer writes other text; left out when not given). Take it before loading the model: files
    written while it loads belong to the next run."""
    from pathlib import Path

    ident = {"model": model_source(config)}
    if config.hf_dir and not config.checkpoint and Path(config.hf_dir).is_dir():
        ident["weights"] = _weights_fingerprint(Path(config.hf_dir))
    if config.tokenizer:
        ident["tokenizer"] = config.tokenizer
    return ident


def _weights_fingerprint(folder: Any) -> str:
    """Size and modification time of each weight file: rereading the same files keeps the key, and
    hashing gigabytes of weights is not needed to see that they were written again."""
    import hashlib

    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt"))
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:12]


def get_backend(name: str, config: BackendConfig) -> Backend:
    if name not in BACKENDS:
        raise SemcoderError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config)


def tokenizer_source(config: BackendConfig, model_dir: str | None = None) -> str:
    """``--tokenizer``, else the model folder's own, else the shipped one (see ``semcoder_jax.tokenizer``)."""
    from semcoder_jax.tokenizer import tokenizer_source as source

    return source(config.tokenizer, model_dir)


def resolve_tokenizer(config: BackendConfig, model_dir: str | None = None) -> Any:
    from semcoder_jax.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_source(config, model_dir))

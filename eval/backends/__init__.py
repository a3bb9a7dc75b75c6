"""Generation backends behind one interface; heavy libraries load only for the chosen one.

Every backend returns, per prompt, ``n`` completions (text after the prompt, cut before the first
stop string, which is not included), as :class:`Completion` strings that also say, where the
backend knows, why generation ended and how many tokens it generated.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol, Sequence

from semcoder_jax.errors import SemcoderError
from semcoder_jax.hub import check_revision, hub_commit, is_hub_id, pinned_model_dir, pinned_tokenizer

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
    hf_dir: str | None = None  # Hugging Face model folder, or a hub id where no such folder exists
    revision: str | None = None  # hub id: the branch, tag or commit to load (default: the main branch)
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
    vllm_fields: bool | None = None  # openai: send top_k/min_p/repetition_penalty off values; None: unless OpenAI's API


FINISH_REASONS = ("stop", "eos", "length")


class Completion(str):
    """A completion's text, usable wherever the text is, with what the backend knows of it.

    ``finish_reason``: ``"stop"`` (a stop string ended it), ``"eos"`` (the model's end of
    sequence), ``"length"`` (``max_new_tokens`` or the context ran out) or None (the backend cannot
    tell, e.g. an OpenAI server's "stop" covers both stop strings and EOS). ``num_tokens``: the
    tokens the backend generated for it, EOS included (hf: all it generated before cutting the text
    at a stop string); None where unknown. Re-tokenising the text does not give this count: the
    cut at a stop string drops tokens and decoding is not invertible."""

    finish_reason: str | None
    num_tokens: int | None

    def __new__(cls, text: str, finish_reason: str | None = None, num_tokens: int | None = None) -> "Completion":
        if finish_reason is not None and finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {', '.join(FINISH_REASONS)} or None, got {finish_reason!r}")
        self = super().__new__(cls, text)
        self.finish_reason, self.num_tokens = finish_reason, num_tokens
        return self


def finish_reason_of(text: str, cut: str, *, eos: bool) -> str:
    """Why a generation ended, for backends that cut stop strings from decoded ``text`` themselves
    (``cut``): a stop string in the text wins, since a backend stopping on it would have stopped
    there; then EOS; else the token limit."""
    return "stop" if len(cut) < len(text) else "eos" if eos else "length"


class Backend(Protocol):
    """May also name a ``sampling_scheme`` (str): how its seeds become samples. Sampled cache rows
    carry it, so a change of scheme draws cached samples again while greedy ones are kept.
    ``identity()`` names a ``revision`` (int), raised whenever a fix changes what the backend
    generates from the same model and settings, so that caches written before it are not reused."""

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
        top_k: int = 0,
    ) -> list[list[Completion]]:
        """``n`` completions a prompt. Prompt i is sampled with seed ``seed + i * n`` (its sample j
        with ``seed + i * n + j`` where a backend seeds samples: hf, jax), so a prompt's samples do not
        depend on the other prompts of the call or on the batch size. Sampling applies the temperature,
        then ``top_k`` (0: off, whatever the model's generation config says), then ``top_p``."""
        ...

    def identity(self) -> dict[str, Any]:
        """What determines the generations besides the settings (for the cache key)."""
        ...

    def close(self) -> None: ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def pin_step(config: BackendConfig) -> BackendConfig:
    """``config`` with the model that will be loaded: ``--step`` left out means the newest checkpoint
    step, and a hub id's ``revision`` (a branch or tag) the commit it names now
    (:func:`hub_commit`), resolved here once, so that loading and the cache identity
    (:func:`model_identity`) agree even if the folder or the hub moves on meanwhile."""
    check_revision(config.revision, config.hf_dir, config.checkpoint)
    if is_hub_model(config):
        return dataclasses.replace(config, revision=hub_commit(str(config.hf_dir), config.revision))
    if not config.checkpoint or config.step is not None:
        return config
    from semcoder_jax.checkpoint import params_path

    _, step = params_path(config.checkpoint, None)  # None for a params-only checkpoint
    return dataclasses.replace(config, step=step)


def is_hub_model(config: BackendConfig) -> bool:
    """``hf_dir`` is read as a hub id where no such folder exists (:func:`~semcoder_jax.hub.is_hub_id`)."""
    return not config.checkpoint and is_hub_id(config.hf_dir)


def model_dir(config: BackendConfig) -> str:
    """The folder to load for ``hf_dir``: itself, or a hub id's snapshot at the commit pinned by
    :func:`pin_step` (resolved here where the config is not pinned)."""
    return pinned_model_dir(str(config.hf_dir), config.revision)[0]


def model_source(config: BackendConfig) -> str:
    """The model as results name it: the HF folder or hub id as given, or the checkpoint folder with
    the step loaded (give a config from :func:`pin_step`)."""
    from pathlib import Path

    if config.hf_dir and not config.checkpoint:
        return config.hf_dir
    return f"{Path(config.checkpoint).absolute()}@{config.step}"


def model_identity(config: BackendConfig) -> dict[str, str]:
    """What decides the generations besides the settings, for the cache key: the model (a
    checkpoint's step and its files, so that more training, or training again into the same folder,
    is a new model; a HF folder's weight and config files, so that a new export into the same folder
    is one; a hub id's commit, so that a model updated on the hub is one: give a config from
    :func:`pin_step`, or the commit is resolved again) and ``--tokenizer`` (the same model read with
    another tokenizer writes other text; left out when not given; :func:`tokenizer_identity` adds
    the tokenizer's files). Take it before loading the model: files written while it loads belong
    to the next run."""
    from pathlib import Path

    ident = {"model": model_source(config)}
    if is_hub_model(config):
        ident["commit"] = hub_commit(str(config.hf_dir), config.revision)
    elif config.hf_dir and not config.checkpoint and Path(config.hf_dir).is_dir():
        folder = Path(config.hf_dir)
        ident["weights"] = _files_fingerprint(
            p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt") or p.name in HF_CONFIG_FILES
        )
    elif config.checkpoint and Path(config.checkpoint).is_dir():
        from semcoder_jax.checkpoint import params_path

        params, step = params_path(config.checkpoint, config.step)
        folder = params.parent if step is not None else params  # the step's items / a params-only folder
        ident["weights"] = _checkpoint_fingerprint(folder)
    if config.tokenizer:
        ident["tokenizer"] = config.tokenizer
    return ident


# Besides the weights, these change what a HF folder's model writes (RoPE scaling, EOS ids).
HF_CONFIG_FILES = ("config.json", "generation_config.json")
# What a tokenizer folder's tokens and text come from.
TOKENIZER_FINGERPRINT_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "vocab.json", "merges.txt",
)


def _files_fingerprint(files: Any) -> str:
    """Size and modification time of each file: rereading the same files keeps the key, and
    hashing gigabytes of weights is not needed to see that they were written again."""
    import hashlib

    stats = sorted((str(p.name), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return hashlib.sha256(repr(stats).encode()).hexdigest()[:12]


# Checkpoint files up to this size are fingerprinted by their contents (metadata, manifests).
SMALL_FILE_BYTES = 1 << 20


def _checkpoint_fingerprint(folder: Any) -> str:
    """Each file's path under ``folder`` and size, and the contents of the small ones, but no times:
    a run folder copied to another machine (``scp``, ``gsutil``, ``tar``: new or rounded mtimes)
    keeps its cached generations. A step saved again is still another model: Orbax writes each save's
    data under new random names and records its commit time in ``_CHECKPOINT_METADATA``."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        if size <= SMALL_FILE_BYTES:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:12]


def tokenizer_identity(source: str) -> dict[str, str]:
    """The tokenizer a backend reads (``tokenizer_source``'s answer), for the cache key: a hash of
    its files' contents where it is a folder (a converted checkpoint's temporary folder and the
    shipped tokenizer have no stable name), else its hub id."""
    import hashlib
    from pathlib import Path

    folder = Path(source)
    if not folder.is_dir():
        return {"tokenizer_source": source}
    digest = hashlib.sha256()
    for name in TOKENIZER_FINGERPRINT_FILES:
        if (folder / name).is_file():
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return {"tokenizer_files": digest.hexdigest()[:12]}


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the libraries that compute a backend's generations (an upgrade may
    change kernels, and with them greedy near-ties and samples)."""
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def get_backend(name: str, config: BackendConfig) -> Backend:
    if name not in BACKENDS:
        raise SemcoderError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(config)


def tokenizer_source(config: BackendConfig, model_dir: str | None = None) -> str:
    """``--tokenizer``, else the model folder's own, else the shipped one (see ``semcoder_jax.tokenizer``).
    A hub id given as ``--tokenizer`` becomes its snapshot at the commit its main branch names now,
    so that :func:`tokenizer_identity` keys the files loaded rather than the name."""
    from semcoder_jax.tokenizer import tokenizer_source as source

    return pinned_tokenizer(source(config.tokenizer, model_dir))

"""Hugging Face hub ids pinned to a commit: one way, for ``semcoder eval``, ``semcoder generate`` and
training's ``init_from=hf:``, to read a model that is no local folder. The commit a branch or tag
names now is resolved once, and its snapshot folder in the local HF cache is what loads, so a model
updated on the hub meanwhile is not mixed in, and the commit can be recorded."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from semcoder_jax.errors import SemcoderError

COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
# A hub tokenizer's files (configs, vocabularies, sentencepiece models), top folder only as
# transformers reads it (subfolders hold other formats: original/, onnx/, ...).
HUB_TOKENIZER_FILES = ["*.json", "*.model", "*.txt", "*.tiktoken"]
HUB_SUBFOLDERS = ["*/*"]
# The weights transformers loads, in its order: a shard index names its shards.
HUB_WEIGHTS = (("model.safetensors.index.json", "model.safetensors"), ("pytorch_model.bin.index.json", "pytorch_model.bin"))


def is_hub_id(name: str | None) -> bool:
    """``name`` is read as a hub id where no such folder exists (a mistyped folder then fails as a
    hub id, and the error says both)."""
    return bool(name) and not Path(str(name)).is_dir()


def split_revision(spec: str) -> tuple[str, str | None]:
    """``ID[@REVISION]`` as (hub id, revision or None), split at the first ``@`` (a revision such as
    ``refs/pr/1`` may hold a ``/``). Where no hub id stands before it, ``spec`` stays whole: a
    missing folder like ``/data/models@v2/x`` then fails under its own name, not ``/data/models``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id, _, revision = spec.partition("@")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return spec, None
    return repo_id, revision or None


def check_revision(revision: str | None, hf_dir: str | None, checkpoint: str | None = None) -> None:
    """``--revision`` names a hub model's commit: with a local folder or checkpoint it would be ignored."""
    if revision and (checkpoint or not is_hub_id(hf_dir)):
        local = f"checkpoint {checkpoint}" if checkpoint else f"folder {hf_dir}"
        raise SemcoderError(f"--revision {revision}: a hub model's, but the model is the local {local}")


def hub_commit(repo_id: str, revision: str | None = None, what: str = "model") -> str:
    """The commit hash that ``revision`` (default: the main branch) of hub model ``repo_id`` names:
    the hub's answer where it can be reached, which is what transformers would load, else the local
    HF cache's (``refs/<revision>``; with ``HF_HUB_OFFLINE=1`` the hub is not asked). Only
    ``config.json`` is fetched; the answer is recorded in the cache, so a later offline run reads
    the same commit. A full commit hash is its own answer."""
    if revision and COMMIT_HASH.fullmatch(revision):
        return revision
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=["config.json"])
    except Exception as e:  # noqa: BLE001 - a bad id, an unknown repo or revision, no network and no cache: all say why
        raise SemcoderError(_hub_failure(what, repo_id, revision, e)) from None
    return os.path.basename(folder)  # the cache's snapshots/<commit> folder


def hub_snapshot(repo_id: str, commit: str, weights: bool = True) -> str:
    """The local HF cache's folder of hub model ``repo_id`` at ``commit`` (:func:`hub_commit`'s
    answer), with whatever it lacks fetched: config, tokenizer files and, with ``weights``, the
    weight files transformers loads (safetensors, else ``pytorch_model*.bin``; not a repo's other
    copies such as ``consolidated.safetensors``). Every reader loads this folder, so the weights
    are those of the commit resolved, and the tokenizer is the model's own."""
    from huggingface_hub import snapshot_download

    def fetch(patterns: list[str]) -> str:
        return snapshot_download(repo_id, revision=commit, allow_patterns=patterns, ignore_patterns=HUB_SUBFOLDERS)

    try:
        folder = fetch(HUB_TOKENIZER_FILES)
        for index, single in HUB_WEIGHTS if weights else ():
            if os.path.isfile(os.path.join(folder, index)):
                with open(os.path.join(folder, index)) as f:
                    return fetch(sorted(set(json.load(f)["weight_map"].values())))
            folder = fetch([single])
            if os.path.isfile(os.path.join(folder, single)):
                return folder
    except Exception as e:  # noqa: BLE001 - as in hub_commit
        raise SemcoderError(_hub_failure("model" if weights else "tokenizer", repo_id, commit, e)) from None
    return folder


def pinned_model_dir(hf_dir: str, revision: str | None = None) -> tuple[str, str | None]:
    """(the folder to load, the commit): ``hf_dir`` itself (commit None) where it is a folder, else
    hub id ``hf_dir``'s snapshot at the commit ``revision`` names now (see :func:`check_revision`)."""
    check_revision(revision, hf_dir)
    if not is_hub_id(hf_dir):
        return str(hf_dir), None
    commit = hub_commit(hf_dir, revision)
    return hub_snapshot(hf_dir, commit), commit


def pinned_tokenizer(tokenizer: str) -> str:
    """A tokenizer folder as is; a hub id as its snapshot at the commit its main branch names now,
    so that what loads is what a cache key or a record names, not the hub's newest."""
    if not is_hub_id(tokenizer):
        return tokenizer
    return hub_snapshot(tokenizer, hub_commit(tokenizer, what="tokenizer"), weights=False)


def _hub_failure(what: str, repo_id: str, revision: str | None, error: Exception) -> str:
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import RepositoryNotFoundError
    from huggingface_hub.utils import HFValidationError

    why = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, HFValidationError):
        return f"cannot load {what} {repo_id!r}: no such folder, nor a hub id ({why})"
    which = f"revision {revision!r} of that hub {what}" if revision else f"that hub {what}"
    if isinstance(error, RepositoryNotFoundError):  # its first line is only "401 Client Error."; gated ones too
        why = " ".join(filter(None, (why, getattr(error, "server_message", None))))
        why += ("; a private or gated repo needs a token with access to it: set HF_TOKEN or run `hf auth login`"
                if get_token() is None else "; the token in use (HF_TOKEN or `hf auth login`) has no access to it")
    return (f"cannot load {what} {repo_id!r}: no such folder, and {which} could be read neither from the hub nor "
            f"from the local HF cache {constants.HF_HUB_CACHE} ({type(error).__name__}: {why})")

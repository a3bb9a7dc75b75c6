"""Tokenizers through transformers' ``AutoTokenizer``: a local folder or a hub id."""

from __future__ import annotations

from pathlib import Path

from semcoder_jax import DEFAULT_TOKENIZER_DIR
from semcoder_jax.errors import SemcoderError


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tokenizer_source(tokenizer: str | None, model_dir: str | Path | None = None) -> str:
    """``tokenizer`` if given, else the model folder's own, else the shipped DeepSeek-Coder tokenizer
    (a converted training checkpoint carries none unless conversion was given one)."""
    if tokenizer:
        return tokenizer
    if model_dir and any((Path(model_dir) / f).exists() for f in TOKENIZER_FILES):
        return str(model_dir)
    return str(DEFAULT_TOKENIZER_DIR)


def load_tokenizer(name_or_path: str | Path | None = None):
    """Byte-level BPE (DeepSeek-Coder, the default, shipped offline) or sentencepiece (CodeLlama)."""
    from transformers import AutoTokenizer

    source = str(name_or_path or DEFAULT_TOKENIZER_DIR)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise SemcoderError(f"cannot load tokenizer {source!r}: {str(e).splitlines()[0]}") from None

"""Shared test setup: 8 simulated CPU devices (before JAX starts) and local fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path

import pytest

from semcoder_jax import DEFAULT_TOKENIZER_DIR


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The DeepSeek-Coder tokenizer shipped with the package (copied from ../shared/tokenizers)."""
    return DEFAULT_TOKENIZER_DIR


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))

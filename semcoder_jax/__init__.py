"""semcoder-jax: SemCoder (Ding et al., NeurIPS 2024) in JAX/Flax."""

from pathlib import Path

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_TOKENIZER_DIR = ASSETS_DIR / "tokenizers" / "deepseek-coder"

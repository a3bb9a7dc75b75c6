"""Typed config of a data build (``configs/data/*.yaml`` plus ``key=value`` overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field

from semcoder_jax import PROJECT_ROOT
from semcoder_jax.config import ConfigError

RECORD_KINDS = ("nl2code", "forward", "backward", "refine")

DEFAULT_BENCHMARK_DIRS = ["eval/benchmarks/data"]  # the copies the project ships


@dataclass
class LLMConfig:
    """One OpenAI-compatible endpoint; ``base_url``/key default to OPENAI_BASE_URL/OPENAI_API_KEY.

    ``wait_for_server_s``: before its first request the client polls ``{base_url}/models`` for up
    to this long while the server refuses connections, so a ``vllm serve`` started beside the build
    (as in a SLURM script) can load its weights (minutes for 6.7B-33B); 0 fails at once.
    """

    model: str = "gpt-4o-mini"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    max_retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    timeout_s: float = 120.0
    wait_for_server_s: float = 600.0
    temperature: float = 0.0
    max_tokens: int = 2048
    cache_dir: str | None = None  # default: <output_dir>/llm_cache


@dataclass
class DecontamConfig:
    enabled: bool = True
    # Files (or their .gz) are looked up in the first of these folders that has them (relative to the
    # project root).
    benchmark_dirs: list[str] = field(default_factory=lambda: list(DEFAULT_BENCHMARK_DIRS))
    benchmarks: list[str] = field(
        default_factory=lambda: ["HumanEvalPlus-v0.1.10.jsonl.gz", "MbppPlus-v0.2.0.jsonl.gz", "cruxeval.jsonl"]
    )
    livecodebench: str | None = None  # a local JSONL of LiveCodeBench rows, when given
    ngram: int = 10
    ngram_overlap: float = 0.5  # share of code or statement n-grams one benchmark item has in common with the record
    edit_similarity: float = 90.0  # rapidfuzz ratio (0..100) between normalised programs
    text_similarity: float = 85.0  # rapidfuzz ratio (0..100) between problem statements (lower-cased words)
    min_io_chars: int = 6  # CRUXEval input/output pairs shorter than this are too generic to match


@dataclass
class ReleasedConfig:
    """Released SemCoder data read as is: local JSONL paths or hub dataset ids."""

    pyx: str | None = None  # e.g. semcoder/PyX or path/to/pyx.jsonl
    pyxr: str | None = None  # e.g. semcoder/PyX-R or path/to/pyxr.jsonl
    split: str = "train"
    limit: int = 0


@dataclass
class DataConfig:
    output_dir: str = "out/data/demo"
    # "build": seeds -> ... -> monologues; "released": SemCoder's released rows (see ``released``).
    source: str = "build"
    corpus_dirs: list[str] = field(default_factory=lambda: ["data_pipeline/assets/seed_corpus"])
    seed_kinds: list[str] = field(default_factory=lambda: ["function", "class", "block"])
    min_seed_lines: int = 3
    max_seeds: int = 0  # 0 = all
    problems_jsonl: str | None = None  # extra problems {problem, solution[, inputs]} skipping synthesis
    synthesis: str = "offline"  # offline | llm
    annotator: str = "builtin"  # builtin | llm
    pyxr: str = "mutation"  # mutation | llm | none
    num_shards: int = 4
    skip_bad: bool = False
    workers: int = 0  # threads per stage (0 = CPU count)
    exec_timeout_s: float = 5.0
    fix_attempts: int = 2
    num_inputs: int = 6
    coverage_target: float = 1.0
    forward_per_problem: int = 1
    backward_per_problem: int = 1
    llm_samples: int = 4
    pyxr_tests: int = 4
    max_trace_steps: int = 24
    max_repr: int = 200
    tokenizer: str | None = None
    seq_len: int = 2048
    # Record kinds written to the TFRecords (all are kept under records/): SemCoder trains PYX
    # (nl2code, forward, backward) first, then PYX-R (refine).
    train_kinds: list[str] = field(default_factory=lambda: list(RECORD_KINDS))
    packing: str = "best_fit"  # best_fit | pad
    # Most runs of equal segment id per row (examples + trailing padding); 0 = no limit. Training
    # with cuDNN attention needs model.max_segments >= this (its packed kernel's cost grows with it).
    max_segments: int = 8
    pad_id: int = 0
    shuffle_seed: int = 0
    tfrecord_shards: int = 4
    # Fraction of the trained problems held out as split "validation" (0 = none; 0 <= x < 1). Held
    # out by problem (all records of a problem in one split) with a hash seeded by shuffle_seed;
    # see data_pipeline/splits.py.
    validation_fraction: float = 0.0
    seed: int = 0
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    released: ReleasedConfig = field(default_factory=ReleasedConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)

    def validate(self) -> None:
        choices = {
            "source": ("build", "released"),
            "synthesis": ("offline", "llm"),
            "annotator": ("builtin", "llm"),
            "pyxr": ("mutation", "llm", "none"),
            "packing": ("best_fit", "pad"),
        }
        unknown = sorted(set(self.train_kinds) - set(RECORD_KINDS))
        if unknown or not self.train_kinds:
            raise ConfigError(f"train_kinds: expected a non-empty subset of {list(RECORD_KINDS)}, got {self.train_kinds}")
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"data config: {key}={getattr(self, key)!r} is not one of {list(allowed)}")
        for kind in self.seed_kinds:
            if kind not in ("function", "class", "block"):
                raise ConfigError(f"data config: seed_kinds entry {kind!r} is not function|class|block")
        if self.num_shards < 1 or self.tfrecord_shards < 1:
            raise ConfigError("data config: num_shards and tfrecord_shards must be >= 1")
        if self.max_segments == 1 or self.max_segments < 0:
            raise ConfigError(f"data config: max_segments={self.max_segments} must be 0 (no limit) or >= 2")
        if not (isinstance(self.validation_fraction, (int, float)) and 0.0 <= self.validation_fraction < 1.0):
            raise ConfigError(f"data config: validation_fraction={self.validation_fraction!r} must be >= 0 and < 1")
        if self.seq_len < 8:
            raise ConfigError(f"data config: seq_len={self.seq_len} is too small")
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Values outside these ranges are accepted by the types but lose records silently
        (``max_seeds=-1`` drops the last seed, ``decontam.ngram=0`` rejects every problem)."""
        at_least = {
            "max_seeds": (self.max_seeds, 0), "workers": (self.workers, 0), "min_seed_lines": (self.min_seed_lines, 0),
            "fix_attempts": (self.fix_attempts, 0), "num_inputs": (self.num_inputs, 1),
            "forward_per_problem": (self.forward_per_problem, 0), "backward_per_problem": (self.backward_per_problem, 0),
            "llm_samples": (self.llm_samples, 1), "pyxr_tests": (self.pyxr_tests, 1), "max_trace_steps": (self.max_trace_steps, 1),
            "max_repr": (self.max_repr, 1), "decontam.ngram": (self.decontam.ngram, 1), "decontam.min_io_chars": (self.decontam.min_io_chars, 0),
            "released.limit": (self.released.limit, 0), "llm.concurrency": (self.llm.concurrency, 1),
            "llm.max_retries": (self.llm.max_retries, 0), "llm.max_tokens": (self.llm.max_tokens, 1),
            "pad_id": (self.pad_id, 0),
        }
        for key, (value, low) in at_least.items():
            if value < low:
                raise ConfigError(f"data config: {key}={value} must be >= {low}")
        within = {
            "coverage_target": (self.coverage_target, 1.0), "decontam.ngram_overlap": (self.decontam.ngram_overlap, 1.0),
            "decontam.edit_similarity": (self.decontam.edit_similarity, 100.0),
            "decontam.text_similarity": (self.decontam.text_similarity, 100.0),
        }
        for key, (value, high) in within.items():
            if not 0.0 <= value <= high:
                raise ConfigError(f"data config: {key}={value} must be between 0 and {high}")
        for key, value in (("exec_timeout_s", self.exec_timeout_s), ("llm.timeout_s", self.llm.timeout_s)):
            if not value > 0:  # nan too
                raise ConfigError(f"data config: {key}={value} must be > 0")
        if not self.llm.wait_for_server_s >= 0:
            raise ConfigError(f"data config: llm.wait_for_server_s={self.llm.wait_for_server_s} must be >= 0")


def resolve_path(path: str) -> str:
    """Relative paths in a data config are relative to the project root when not found from cwd."""
    from pathlib import Path

    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(PROJECT_ROOT / p)

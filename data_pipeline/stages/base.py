"""What every stage shares: the reject type, the per-build context (sandbox, LLM), the order."""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from data_pipeline.config import DataConfig
from semcoder_jax.errors import SemcoderError

# Stages after "seeds" (the source), in build order.
STAGE_ORDER: tuple[str, ...] = ("synthesis", "executability", "inputs", "monologue", "pyxr", "decontam")


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str = ""


StageFn = Callable[[dict[str, Any], "StageContext"], "list[dict[str, Any]] | Reject"]


def stage_functions() -> dict[str, StageFn]:
    from data_pipeline.stages import decontam, executability, inputs, monologue, pyxr, synthesis

    return {
        "synthesis": synthesis.process,
        "executability": executability.process,
        "inputs": inputs.process,
        "monologue": monologue.process,
        "pyxr": pyxr.process,
        "decontam": decontam.process,
    }


class StageContext:
    """Shared, lazily built resources of one build; safe to use from worker threads."""

    def __init__(self, config: DataConfig):
        self.config = config
        self._lock = threading.Lock()
        self._sandbox = None
        self._llm = None
        self._decontam_index = None
        self.notes: Counter[str] = Counter()

    def note(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.notes[key] += n

    @property
    def sandbox(self):
        with self._lock:
            if self._sandbox is None:
                from semcoder_jax.execution import Sandbox, SandboxConfig

                cfg = SandboxConfig(timeout_s=self.config.exec_timeout_s)
                if self.config.workers:
                    cfg.workers = self.config.workers
                self._sandbox = Sandbox(cfg)
                self._sandbox.__enter__()
            return self._sandbox

    @property
    def llm(self):
        with self._lock:
            if self._llm is None:
                from pathlib import Path

                from data_pipeline.llm import LLMClient

                cache = self.config.llm.cache_dir or str(Path(self.config.output_dir) / "llm_cache")
                self._llm = LLMClient(self.config.llm, cache_dir=cache)
            return self._llm

    @property
    def decontam_index(self):
        with self._lock:
            if self._decontam_index is None:
                from data_pipeline.stages.decontam import BenchmarkIndex

                self._decontam_index = BenchmarkIndex.from_config(self.config.decontam)
            return self._decontam_index

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.__exit__(None, None, None)
            self._sandbox = None


_CODE_BLOCK = re.compile(r"```(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def code_blocks(text: str) -> list[str]:
    """The bodies of an LLM reply's fenced code blocks (untagged, or tagged python/py in any case)."""
    return _CODE_BLOCK.findall(text)


def record_seed(record_id: str, seed: int, salt: str = "") -> int:
    """A per-record RNG seed, so results do not depend on sharding or batching."""
    digest = hashlib.sha256(f"{seed}:{salt}:{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class InfrastructureError(SemcoderError):
    """The sandbox itself failed (not the program): the shard is redone on the next run."""


def sandbox_map(ctx: StageContext, jobs: list, *, hash_seed: int | None = None) -> list:
    """``Sandbox.map`` (under another ``hash_seed`` when given) that raises instead of letting a
    sandbox failure pass as a program's verdict."""
    box = ctx.sandbox if hash_seed is None else ctx.sandbox.sibling(hash_seed)
    results = box.map(jobs)
    for r in results:
        if r.status == "killed" and r.exc_type == "SandboxError":
            raise InfrastructureError(f"sandbox failure: {r.exc_message}")
    return results

"""What every stage shares: the reject type, the per-build context (sandbox, LLM), the order."""

from __future__ import annotations

import ast
import functools
import hashlib
import re
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from data_pipeline.config import DataConfig
from semcoder_jax.errors import SemcoderError

# Stages after "seeds" (the source), in build order.
STAGE_ORDER: tuple[str, ...] = ("synthesis", "executability", "inputs", "monologue", "pyxr", "decontam")


@dataclass(frozen=True)
class Reject:
    reason: str
    detail: str = ""


# Project modules that only configure, read, write or transport records: editing them changes no
# record, so it leaves finished shards valid (their settings are compared on their own).
NOT_RECORD_CODE = frozenset({"data_pipeline", "data_pipeline.config", "data_pipeline.records", "data_pipeline.llm",
                             "data_pipeline.stages", "semcoder_jax", "semcoder_jax.config", "semcoder_jax.errors",
                             "semcoder_jax.jsonl"})
# Hashed but not followed: it imports every stage (``stage_functions``), which would tie each stage to all.
NOT_FOLLOWED = frozenset({"data_pipeline.stages.base"})
# Code outside the stage modules that makes the source records.
SOURCE_CODE = {"data_pipeline.build": ("source_records", "_problem_row_error")}
# Files a module reads while it runs (from the project root; a folder: every file under it), which
# make records as its code does: an edited few-shot example changes the LLM's prompts.
MODULE_DATA = {"data_pipeline.stages.monologue": ("data_pipeline/assets/fewshot",)}
PACKAGES = ("data_pipeline", "semcoder_jax")


@functools.cache
def code_fingerprint(stage: str) -> dict[str, Any]:
    """What identifies the code a stage runs: a digest of each project module it uses (the stage's
    module and, transitively, the project modules it imports or names in a string, less
    ``NOT_RECORD_CODE``; with the files they read, ``MODULE_DATA``), the Python
    version (tracing and ``repr`` differ between versions) and, for information, the package version.

    A module's digest is of its syntax tree without docstrings, so whitespace, comment and docstring
    edits leave it as it was. Computed once per process: the code this process loaded, even if the
    files change while it runs."""
    return tree_fingerprint(Path(__file__).resolve().parents[2], stage)


def tree_fingerprint(root: Path, stage: str) -> dict[str, Any]:
    """``code_fingerprint`` of the project whose packages lie in ``root``."""
    from semcoder_jax import __version__

    modules: dict[str, str] = {}
    todo = ["data_pipeline.stages." + stage]
    while todo:
        name = todo.pop()
        if name in modules or name in NOT_RECORD_CODE:
            continue
        path = _module_file(root, name)
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        modules[name] = _tree_digest(tree)
        if name not in NOT_FOLLOWED:
            todo += _imported_modules(root, tree, name, is_package=path.name == "__init__.py")
    for name in [m for m in modules if m in MODULE_DATA]:
        for rel in MODULE_DATA[name]:
            files = sorted(f for f in (root / rel).rglob("*") if f.is_file()) if (root / rel).is_dir() else [root / rel]
            for f in files:
                key = f.relative_to(root).as_posix()
                modules[key] = hashlib.sha256(f.read_bytes()).hexdigest()[:16] if f.is_file() else "missing"
    if stage == "seeds":
        for name, functions in SOURCE_CODE.items():
            path = _module_file(root, name)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path)) if path else ast.Module(body=[], type_ignores=[])
            for fn in functions:
                node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn), None)
                modules[f"{name}.{fn}"] = _tree_digest(node) if node else "missing"
    code = {"python": f"{sys.version_info.major}.{sys.version_info.minor}", "modules": dict(sorted(modules.items()))}
    return {"digest": short_hash(repr(sorted(code.items())), 16), **code, "version": __version__}


def _module_file(root: Path, name: str) -> Path | None:
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_modules(root: Path, tree: ast.AST, name: str, *, is_package: bool) -> list[str]:
    """Project modules that ``tree`` (module ``name``) imports anywhere, function bodies included, or
    names in a string (``importlib.import_module("...")``, ``python -m ...`` as the sandbox starts its
    fork server)."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{parent}.{node.module}" if node.module else parent
            else:
                module = node.module or ""
            found.append(module)
            found += [f"{module}.{a.name}" for a in node.names if _module_file(root, f"{module}.{a.name}")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[\w.]+", node.value):
            found.append(node.value)
    return [m for m in found if _module_file(root, m)]


def _tree_digest(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return short_hash(ast.dump(tree), 16)


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
        if r.sandbox_failure:
            raise InfrastructureError(f"sandbox failure: {r.exc_message}")
    return results

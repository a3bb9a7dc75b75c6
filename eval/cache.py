"""Append-only JSONL cache of generations, so a crashed or interrupted run resumes where it stopped.

Each line holds one completion: the run key (a hash of the cache format, the model identity and the
generation settings), the task id, the sample index, a hash of the prompt, how the generation ended
and its token count where the backend knew them, and, for sampled runs, the task's seed (its place
in the run, which another problem set moves) and the backend's sampling scheme where it names one
(how a seed becomes samples; a greedy row does not depend on it). A run's first row is preceded by
a ``run`` line recording what its key hashes, so that a generation not reused can be explained.
Only lines whose key, prompt hash, seed and scheme match are reused; a torn last line (the process
died mid-write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from eval.backends import Completion
from semcoder_jax.errors import SemcoderError

# Part of every run key: raise it whenever a change makes cached generations wrong (how rows are
# written or read, or what a backend generates: backends also name a ``revision`` of their own), so
# that caches written before are generated again instead of reused.
# 2: rows carry finish_reason and tokens, runs a ``run`` line; format 1 caches hold HF generations
#    of checkpoints rounded to bfloat16 before the dtype fix, under an identity that said float32.
CACHE_FORMAT = 2

# Settings added after caches were written, with the value that leaves generation as it was: left out
# of the key at that value, so those caches are still reused, and part of it at any other.
SETTINGS_OFF = {"top_k": 0}


def run_meta(identity: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """What a run key hashes, as JSON would read it back (tuples become lists)."""
    settings = {k: v for k, v in settings.items() if not (k in SETTINGS_OFF and v == SETTINGS_OFF[k])}
    return json.loads(json.dumps({"format": CACHE_FORMAT, "model": identity, "settings": settings}, default=str))


def run_key(identity: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    blob = json.dumps(run_meta(identity, settings), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


_Entry = tuple[str, Completion, int | None, str | None]  # prompt hash, completion, seed, scheme


class GenerationCache:
    """The rows of ``path`` that belong to run ``key``; ``meta`` (see :meth:`for_run`) is written
    with the run's first row and names what differs when another run's generation is not reused."""

    def __init__(self, path: str | Path, key: str, meta: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.key = key
        self.meta = dict(meta) if meta is not None else None
        self._entries: dict[tuple[str, int], _Entry] = {}
        self._runs: dict[str, dict[str, Any]] = {}  # key -> its run line
        # (task, sample, prompt hash) -> keys of other runs holding that generation
        self._elsewhere: dict[tuple[str, int, str], set[str]] = {}
        if self.path.exists():
            self._load()

    @classmethod
    def for_run(cls, path: str | Path, identity: Mapping[str, Any], settings: Mapping[str, Any]) -> "GenerationCache":
        return cls(path, run_key(identity, settings), run_meta(identity, settings))

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError):
                    continue  # torn by a killed run; no row of ours nests deeply
                if not isinstance(row, dict):
                    continue
                if "run" in row:
                    self._runs[str(row["run"])] = row
                    continue
                try:
                    task, sample, h = row["task_id"], int(row["sample"]), row["prompt_hash"]
                    if row.get("key") == self.key:
                        text, tokens = row["completion"], row.get("tokens")
                        if not isinstance(text, str):
                            raise TypeError(f"completion must be a string, got {type(text).__name__}")
                        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
                            raise TypeError(f"tokens must be an integer, got {tokens!r}")
                        entry = Completion(text, row.get("finish_reason"), tokens)
                        self._entries[(task, sample)] = (h, entry, row.get("seed"), row.get("sampling"))
                    else:
                        self._elsewhere.setdefault((task, sample, h), set()).add(str(row.get("key")))
                except (KeyError, TypeError, ValueError) as e:
                    raise SemcoderError(f"{self.path}:{lineno}: not a generation cache row ({type(e).__name__}: {e}); "
                                        "move the file away to generate afresh") from None

    def get(self, task_id: str, sample: int, prompt: str, seed: int | None = None, sampling: str | None = None) -> Completion | None:
        """``seed``: the task's seed where it decides the sample (None when decoding greedily);
        ``sampling``: the scheme that drew it from that seed."""
        hit = self._entries.get((task_id, sample))
        return hit[1] if hit and hit[0] == prompt_hash(prompt) and hit[2:] == (seed, sampling) else None

    def not_reused(self, task_id: str, sample: int, prompt: str) -> set[str]:
        """Why a generation of this prompt in the file is not :meth:`get`'s answer: the keys of the
        other runs holding one, ``"seed"`` where this run's holds one drawn with another seed or
        sampling scheme and ``"prompt"`` where it holds one of another prompt for this task and sample
        (a changed prompt template). Empty when the file holds none."""
        why = set(self._elsewhere.get((task_id, sample, prompt_hash(prompt)), ()))
        hit = self._entries.get((task_id, sample))
        if hit:
            why.add("seed" if hit[0] == prompt_hash(prompt) else "prompt")
        return why

    def explain(self, reasons: set[str]) -> str:
        """:meth:`not_reused`'s reasons in words: per other run, what differs from this one."""
        out = []
        for reason in sorted(reasons):
            if reason == "seed":
                out.append("drawn with another seed (the task stood elsewhere in its run) or sampling scheme")
            elif reason == "prompt":
                out.append("of another prompt (the prompt template changed)")
            elif reason not in self._runs:
                out.append("written by an older version that recorded no settings (before cache format 2)")
            elif self.meta is None:
                out.append("written by another run")
            else:
                changed = _differences(self._runs[reason], self.meta)
                out.append("another run (" + (", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")) + ")")
        return "; ".join(dict.fromkeys(out))

    def put_many(
        self, rows: list[tuple[str, int, str, str]], seed_of: Mapping[str, int] | None = None, sampling: str | None = None
    ) -> None:
        """Append ``(task_id, sample, prompt, completion)`` rows, with each task's seed from ``seed_of``
        and, on seeded rows, the ``sampling`` scheme, and flush them to disk. A :class:`Completion`'s
        finish reason and token count are kept."""
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
        with open(self.path, "a", encoding="utf-8") as f:
            if torn:  # end a line left unfinished by a killed run, so it stays a single bad line
                f.write("\n")
            if self.meta is not None and self.key not in self._runs:
                self._runs[self.key] = {"run": self.key, **self.meta}
                f.write(json.dumps(self._runs[self.key]) + "\n")
            for task_id, sample, prompt, completion in rows:
                h, seed = prompt_hash(prompt), (seed_of or {}).get(task_id)
                scheme = None if seed is None else sampling
                reason, tokens = getattr(completion, "finish_reason", None), getattr(completion, "num_tokens", None)
                row = {"key": self.key, "task_id": task_id, "sample": sample, "prompt_hash": h, "completion": str(completion)}
                for field, value in (("seed", seed), ("sampling", scheme), ("finish_reason", reason), ("tokens", tokens)):
                    if value is not None:
                        row[field] = value
                f.write(json.dumps(row) + "\n")
                self._entries[(task_id, sample)] = (h, Completion(str(completion), reason, tokens), seed, scheme)
            f.flush()
            os.fsync(f.fileno())


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``field: old -> new`` for every leaf that differs between two run lines."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        if k == "run" and not prefix:
            continue
        a, b = old.get(k, "(none)"), new.get(k, "(none)")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."

"""Append-only JSONL cache of generations, so a crashed or interrupted run resumes where it stopped.

Each line holds one completion: the run key (a hash of the model identity and the generation
settings), the task id, the sample index, a hash of the prompt and, for sampled runs, the task's seed
(its place in the run, which another problem set moves) and the backend's sampling scheme where it
names one (how a seed becomes samples; a greedy row does not depend on it). Only lines whose key,
prompt hash, seed and scheme match are reused; a torn last line (the process died mid-write) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping


def run_key(identity: dict[str, Any], settings: dict[str, Any]) -> str:
    blob = json.dumps({"model": identity, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


class GenerationCache:
    def __init__(self, path: str | Path, key: str):
        self.path = Path(path)
        self.key = key
        self._entries: dict[tuple[str, int], tuple[str, str, int | None, str | None]] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(row, dict) and row.get("key") == key:
                        entry = (row["prompt_hash"], row["completion"], row.get("seed"), row.get("sampling"))
                        self._entries[(row["task_id"], int(row["sample"]))] = entry

    def get(self, task_id: str, sample: int, prompt: str, seed: int | None = None, sampling: str | None = None) -> str | None:
        """``seed``: the task's seed where it decides the sample (None when decoding greedily);
        ``sampling``: the scheme that drew it from that seed."""
        hit = self._entries.get((task_id, sample))
        return hit[1] if hit and hit[0] == prompt_hash(prompt) and hit[2:] == (seed, sampling) else None

    def put_many(
        self, rows: list[tuple[str, int, str, str]], seed_of: Mapping[str, int] | None = None, sampling: str | None = None
    ) -> None:
        """Append ``(task_id, sample, prompt, completion)`` rows, with each task's seed from ``seed_of``
        and, on seeded rows, the ``sampling`` scheme, and flush them to disk."""
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
            for task_id, sample, prompt, completion in rows:
                h, seed = prompt_hash(prompt), (seed_of or {}).get(task_id)
                scheme = None if seed is None else sampling
                row = {"key": self.key, "task_id": task_id, "sample": sample, "prompt_hash": h, "completion": completion}
                if seed is not None:
                    row["seed"] = seed
                if scheme is not None:
                    row["sampling"] = scheme
                f.write(json.dumps(row) + "\n")
                self._entries[(task_id, sample)] = (h, completion, seed, scheme)
            f.flush()
            os.fsync(f.fileno())

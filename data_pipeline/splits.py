"""The held-out ``validation`` split (config key ``validation_fraction``), chosen by problem.

Records are held out by the problem they come from, never one by one: a built problem's
``nl2code``, ``forward``, ``backward`` and ``refine`` records all carry the problem's id in their
``problem_id`` field (set by ``stages.format.format_problem``; their ids are ``<problem>-<kind>[-i]``),
so they land in the same split and no program is seen in training while another monologue of it is
validated on. SemCoder's released rows (``source: released``, see ``released.py``) hold no field
linking the rows of one program (a PyX row is one instruction/response pair; PyX-R rows are not
tied to PyX rows), so there each record's ``id`` is its own problem key.

A problem is held out when a seeded hash of its key (``shuffle_seed``) falls below the fraction:
each problem's split depends only on its key, the seed and the fraction, so adding or removing
records does not move other problems, and raising the fraction only moves problems from train to
validation. One exception keeps both splits non-empty (given at least 2 problems): when the hash
picks no problem, the one with the smallest hash is held out; when it picks every problem, the one
with the largest hash is kept for training.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from semcoder_jax.config import ConfigError

TRAIN, VALIDATION = "train", "validation"


def problem_key(record: dict[str, Any]) -> str:
    """The problem a formatted record comes from; its own id when no ``problem_id`` links it."""
    return record.get("problem_id") or record["id"]


def problem_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) from ``key`` and ``seed`` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}:validation:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def validation_problems(keys: Iterable[str], fraction: float, seed: int) -> set[str]:
    """The problem keys held out for validation (empty when ``fraction`` is 0).

    Raises ``ConfigError`` for a non-zero fraction with exactly 1 problem, where train and
    validation cannot both be non-empty. With none there is nothing to split: the build itself
    fails later, as an empty build, after writing its report and rejects.
    """
    keys = sorted(set(keys))
    if fraction <= 0 or not keys:
        return set()
    if len(keys) < 2:
        raise ConfigError(f"validation_fraction={fraction} needs at least 2 problems with trainable records, "
                          f"this build has {len(keys)} (set validation_fraction=0)")
    hashed = sorted((problem_hash(k, seed), k) for k in keys)
    held = {k for h, k in hashed if h < fraction}
    if not held:
        held = {hashed[0][1]}
    elif len(held) == len(keys):
        held.discard(hashed[-1][1])
    return held


def assign(records: Iterable[dict[str, Any]], fraction: float, seed: int) -> dict[str, str]:
    """``{record id: "train" | "validation"}`` for every record, by problem."""
    records = list(records)
    held = validation_problems((problem_key(r) for r in records), fraction, seed)
    return {r["id"]: VALIDATION if problem_key(r) in held else TRAIN for r in records}

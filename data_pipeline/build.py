"""What both runners share: the source records, sharding, stage bookkeeping, and the final
format -> tokenise -> pack -> TFRecords step with its manifest and report.

Output folder layout::

    OUT/config.yaml
    OUT/stages/<stage>/shard-00000.jsonl   records out of the stage
    OUT/stages/<stage>/rejects-00000.jsonl {record, reason, detail}
    OUT/stages/<stage>/shard-00000.done    the shard's report (written last), with the fingerprint of
                                           the code that built it (``code``; see ``redo_stale_shards``)
    OUT/stages/settings.json               the settings the shards were built with (a resume must match)
    OUT/records/<kind>.jsonl               formatted records: id, kind, prompt, response, ...
    OUT/tfrecords/train-00000-of-0000N.tfrecord
    OUT/tfrecords/validation-00000-of-0000M.tfrecord   with validation_fraction > 0
    OUT/splits.json                        example ids of each split (with validation_fraction > 0)
    OUT/manifest.json, OUT/report.json
    OUT/.final-staging/, .final-ready/, .final-old/   the final step's output being written, the
                                           complete output being moved in, the earlier output
                                           moved aside (see ``finalize``); hidden, so no glob of
                                           OUT's TFRecords sees them
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from data_pipeline.config import DataConfig, resolve_path
from data_pipeline.records import RecordError, read_jsonl, write_json_atomic, write_jsonl_atomic
from data_pipeline.stages.base import Reject, STAGE_ORDER, StageContext, code_fingerprint, short_hash
from semcoder_jax.config import ConfigError
from semcoder_jax.errors import SemcoderError
from semcoder_jax.locking import folder_lock

SOURCE_STAGE = "seeds"
CRASH_ENV = "SEMCODER_DATA_KILL_AFTER_SHARDS"  # testing: SIGKILL this process after N shards
# testing: SIGKILL this process in the final step, at "pack" (some TFRecord shards written) or at
# "commit:N" (after N moves of the finished output into OUT)
FINAL_CRASH_ENV = "SEMCODER_DATA_KILL_IN_FINAL"
STAGING_DIR, READY_DIR, OLD_DIR = ".final-staging", ".final-ready", ".final-old"
LOCK_FILE = ".build.lock"  # held by the build writing to OUT; harmless when left behind
# What the final step writes, in the order it is moved into OUT: the manifest last.
FINAL_ENTRIES = ("tfrecords", "records", "splits.json", "report.json", "manifest.json")

log = logging.getLogger(__name__)


class EmptyBuildError(SemcoderError):
    """A build whose every record was rejected (or that had none): its one empty shard would only be
    refused later by the trainer."""


def source_records(config: DataConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeds from the corpus folders, plus ready problems from ``problems_jsonl``."""
    from data_pipeline.stages.seeds import collect_seeds

    records, rejects = collect_seeds(config)
    if config.problems_jsonl:
        bad: list[dict[str, Any]] = []
        rows = read_jsonl(resolve_path(config.problems_jsonl), skip_bad=config.skip_bad, rejects=bad, required=("problem", "solution"),
                          check=_problem_row_error)
        rejects += [{"record": {"file": b["file"], "line": b["line"], "text": b["text"]}, "reason": "malformed_jsonl", "detail": b["reason"]} for b in bad]
        seen: set[str] = set()
        for row in rows:
            rid = f"seed-{short_hash(row['problem'] + chr(10) + row['solution'])}"
            if rid in seen:  # the same problem and solution again: it would be trained on twice
                rejects.append({"record": {**row, "id": rid, "source_file": config.problems_jsonl},
                                "reason": "duplicate_problem", "detail": f"same problem and solution as {rid}"})
                continue
            seen.add(rid)
            records.append({**row, "id": rid, "seed_kind": "problem", "source_file": config.problems_jsonl})
    records.sort(key=lambda r: r["id"])
    return records, rejects


def _problem_row_error(row: dict[str, Any]) -> str | None:
    """Why a ``problems_jsonl`` row cannot be a problem (a null problem would stop the build; a string
    of inputs would be taken character by character), else None."""
    for key in ("problem", "solution", "entry_point", "response"):
        if (key in ("problem", "solution") or row.get(key) is not None) and not isinstance(row[key], str):
            return f"field {key!r} is not text"
    for key in ("seed_inputs", "inputs"):
        value = row.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(a, str) for a in value)):
            return f"field {key!r} is not a list of argument texts"
    return None


# Settings that only the final format/tokenise/pack step, scheduling or transport read: changing
# them keeps a build's finished stage shards valid.
FINALIZE_SETTINGS = frozenset({"output_dir", "source", "released", "skip_bad", "workers", "tokenizer", "seq_len", "train_kinds",
                               "packing", "max_segments", "pad_id", "shuffle_seed", "tfrecord_shards", "validation_fraction"})
TRANSPORT_LLM_SETTINGS = frozenset({"base_url", "api_key_env", "concurrency", "max_retries", "backoff_s", "max_backoff_s",
                                    "timeout_s", "cache_dir", "wait_for_server_s"})


def stage_settings(config: DataConfig) -> dict[str, Any]:
    """The settings the stage shards depend on, flattened to dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in dataclasses.asdict(config).items():
        if key in FINALIZE_SETTINGS:
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items() if not (key == "llm" and k in TRANSPORT_LLM_SETTINGS)})
        else:
            flat[key] = value
    return flat


def check_stage_settings(config: DataConfig) -> None:
    """Refuse to resume over stage shards built with other stage settings, which would mix in
    stale records (with another ``num_shards``: skip some records and repeat others)."""
    root = Path(config.output_dir) / "stages"
    path = root / "settings.json"
    now = json.loads(json.dumps(stage_settings(config)))
    if path.exists() and any(root.glob("*/shard-*.done")):
        before = json.loads(path.read_text(encoding="utf-8"))
        # Keys on one side only are settings added or removed since those shards: nothing to compare.
        changed = [f"{k}: {before[k]!r} -> {now[k]!r}" for k in sorted(set(before) & set(now)) if before[k] != now[k]]
        if changed:
            raise ConfigError(f"{config.output_dir}: finished stage shards were built with other settings ({'; '.join(changed)}); "
                              f"use another output_dir, or delete {root} to rebuild (LLM replies stay cached)")
    write_json_atomic(path, now)


def shard_records(records: Sequence[dict[str, Any]], num_shards: int) -> list[list[dict[str, Any]]]:
    shards: list[list[dict[str, Any]]] = [[] for _ in range(num_shards)]
    for i, r in enumerate(sorted(records, key=lambda r: r["id"])):
        shards[i % num_shards].append(r)
    return shards


def stage_workers(config: DataConfig) -> int:
    """Records processed at once per shard: CPU-bound offline, up to the LLM concurrency otherwise."""
    if config.workers:
        return config.workers
    cpus = os.cpu_count() or 1
    uses_llm = config.synthesis == "llm" or config.annotator == "llm" or config.pyxr == "llm"
    return max(cpus, config.llm.concurrency) if uses_llm else cpus


def stage_dir(config: DataConfig, stage: str) -> Path:
    return Path(config.output_dir) / "stages" / stage


def shard_paths(config: DataConfig, stage: str, i: int) -> tuple[Path, Path, Path]:
    d = stage_dir(config, stage)
    return d / f"shard-{i:05d}.jsonl", d / f"rejects-{i:05d}.jsonl", d / f"shard-{i:05d}.done"


def apply_stage(fn: Callable, records: Sequence[dict[str, Any]], ctx: StageContext, *, workers: int, progress=None) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Run one stage over one shard: outputs (input order), rejects, and the shard's report."""
    from concurrent.futures import ThreadPoolExecutor

    start = time.perf_counter()

    def one(record):
        try:
            return fn(record, ctx)
        except SemcoderError:
            raise
        except ImportError as e:  # the environment's fault, not the record's: every record would be rejected
            raise SemcoderError(f"a data stage needs a module that is not installed ({e}); pip install -e '.[data]'") from e
        except Exception as e:  # a record that breaks a stage is rejected, not fatal
            return Reject(f"stage_error:{type(e).__name__}", str(e)[:300])

    records = sorted(records, key=lambda r: r["id"])
    results = []
    with ThreadPoolExecutor(max(1, workers)) as pool:
        for res in pool.map(one, records):
            results.append(res)
            if progress is not None:
                progress.update(1)
    outputs, rejects = [], []
    reasons: Counter[str] = Counter()
    for record, res in zip(records, results):
        res = res if isinstance(res, Reject) else _output_error(res) or res
        if isinstance(res, Reject):
            reasons[res.reason] += 1
            rejects.append({"record": record, "reason": res.reason, "detail": res.detail})
        else:
            outputs.extend(res)
    report = {"in": len(records), "kept": len(records) - len(rejects), "out": len(outputs), "rejected": dict(sorted(reasons.items())),
              "wall_s": round(time.perf_counter() - start, 3)}
    return outputs, rejects, report


def _output_error(res: Any) -> Reject | None:
    """A stage's result that is no non-empty list of records with ids (a stage bug): the record would
    vanish (``[]``) or garble the shard, so it is rejected with a counted reason instead."""
    if isinstance(res, list) and not res:
        return Reject("stage_error:no_output", "the stage returned no record and no reject")
    if not isinstance(res, list) or not all(isinstance(o, dict) and isinstance(o.get("id"), str) for o in res):
        return Reject("stage_error:bad_output", f"the stage returned {type(res).__name__}, not a list of records with ids")
    return None


def write_shard(config: DataConfig, stage: str, i: int, outputs, rejects, report) -> None:
    """The shard, its rejects, then its report with the fingerprint of the code that built it: the
    ``.done`` file is renamed in last, so a kill before it leaves the shard to be redone."""
    out_p, rej_p, done_p = shard_paths(config, stage, i)
    write_jsonl_atomic(out_p, outputs)
    write_jsonl_atomic(rej_p, rejects)
    write_json_atomic(done_p, {**report, "code": code_fingerprint(stage)})
    _maybe_crash()


def source_digest(records: Sequence[dict[str, Any]]) -> str:
    """Of the source records, so that a resume notices an edited corpus or ``problems_jsonl``."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: r["id"]):
        h.update((json.dumps(r, sort_keys=True) + "\n").encode())
    return h.hexdigest()[:16]


def write_source(config: DataConfig) -> None:
    """The source stage's shards, all at once (the source is listed whole), unless all are finished.
    Its rejects go with shard 0."""
    n = config.num_shards
    if all(shard_done(config, SOURCE_STAGE, i) for i in range(n)):
        return
    start = time.perf_counter()
    records, rejects = source_records(config)
    digest = source_digest(records)
    for i, shard in enumerate(shard_records(records, n)):
        rej = rejects if i == 0 else []
        report = {"in": len(shard) + len(rej), "kept": len(shard), "out": len(shard), "rejected": dict(Counter(r["reason"] for r in rej)),
                  "wall_s": round((time.perf_counter() - start) / n, 3), "source_digest": digest}
        write_shard(config, SOURCE_STAGE, i, shard, rej, report)


def _read_done(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _code_change(report: dict[str, Any] | None, now: dict[str, Any]) -> str | None:
    """How the code that built a finished shard differs from this process's, else None."""
    if report is None:
        return "its .done file cannot be read"
    before = report.get("code")
    if not isinstance(before, dict) or not isinstance(before.get("modules"), dict):
        return "built before shards recorded their code"
    if before.get("digest") == now["digest"]:
        return None
    what = []
    if before.get("python") != now["python"]:
        what.append(f"Python {before.get('python')} -> {now['python']}")
    old, new = before["modules"], now["modules"]
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        what.append("changed: " + ", ".join(changed))
    if before.get("version") != now["version"]:
        what.append(f"package {before.get('version')} -> {now['version']}")
    return "; ".join(what) or "code changed"


def redo_stale_shards(config: DataConfig) -> str | None:
    """Remove the finished stage shards that this code would not have built, and every shard made
    from them, so that this run builds them again. Returns (and logs as a warning) what it removed
    and why, or None.

    Stale: a shard whose recorded code fingerprint (``stages.base.code_fingerprint``: the stage's
    modules less docstrings, comments and whitespace, and the Python version) differs from this
    process's, that records none, or whose ``.done`` cannot be read; the source stage's shards also
    when the source records changed (files under ``corpus_dirs``, ``problems_jsonl``). Shard i of a
    stage is made from shard i of the stage before, so a stale or missing shard takes the same
    shard of every later stage with it (the source, listed whole, takes all): no record of one
    version of a stage meets records of another, and the stages before keep their shards. Removal
    goes from the last stage to the first, so a kill part-way leaves the next run the same work."""
    stages = (SOURCE_STAGE, *STAGE_ORDER)
    n = config.num_shards
    why: dict[str, set[str]] = {}
    stale: dict[str, set[int]] = {s: set() for s in stages}
    done = {(s, i): shard_paths(config, s, i)[2].exists() for s in stages for i in range(n)}
    if not any(done.values()):
        return None
    for stage in stages:
        now = code_fingerprint(stage)
        for i in range(n):
            if done[stage, i] and (reason := _code_change(_read_done(shard_paths(config, stage, i)[2]), now)):
                stale[stage].add(i)
                why.setdefault(stage, set()).add(reason)
    if all(done[SOURCE_STAGE, i] for i in range(n)) and not stale[SOURCE_STAGE]:
        digest = source_digest(source_records(config)[0])
        if any(_read_done(shard_paths(config, SOURCE_STAGE, i)[2]).get("source_digest") != digest for i in range(n)):
            stale[SOURCE_STAGE] = set(range(n))
            why.setdefault(SOURCE_STAGE, set()).add("the source records changed: files under corpus_dirs or problems_jsonl were edited")
    source_redone = bool(stale[SOURCE_STAGE]) or not all(done[SOURCE_STAGE, i] for i in range(n))
    remove: dict[str, set[int]] = {s: set(stale[s]) if s == SOURCE_STAGE else set() for s in stages}
    for i in range(n):
        broken = source_redone
        for stage in STAGE_ORDER:
            if broken or i in stale[stage]:
                if done[stage, i]:
                    remove[stage].add(i)
                broken = True
            elif not done[stage, i]:
                broken = True
    if not any(remove.values()):
        return None
    for stage in reversed(stages):
        for i in sorted(remove[stage]):
            out_p, rej_p, done_p = shard_paths(config, stage, i)
            done_p.unlink(missing_ok=True)
            out_p.unlink(missing_ok=True)
            rej_p.unlink(missing_ok=True)
    lines = [(f"{Path(config.output_dir) / 'stages'}: redoing stage shards that this code would not have built "
              "(shards of earlier stages are kept; LLM replies stay cached):")]
    for stage in stages:
        if remove[stage]:
            reason = "; ".join(sorted(why[stage])) if stage in why else "made from shards that are redone"
            lines.append(f"  {stage}: {len(remove[stage])} of {n} shards ({reason})")
    lines.append("  To reuse the old shards instead, build with the code that made them (each .done file records it), "
                 "or into another output_dir to keep both.")
    message = "\n".join(lines)
    log.warning(message)
    return message


def check_shards_current(config: DataConfig) -> None:
    """Refuse to finish a build holding shards of other code, e.g. written by Beam workers that run
    another version of this package than the launcher."""
    for stage in (SOURCE_STAGE, *STAGE_ORDER):
        now = code_fingerprint(stage)
        for i in range(config.num_shards):
            done_p = shard_paths(config, stage, i)[2]
            if done_p.exists() and (reason := _code_change(_read_done(done_p), now)):
                raise RecordError(f"{done_p}: stage {stage} shard {i} was built by other code than this process runs ({reason}); "
                                  "every worker must run the launcher's code and Python")


_shards_written = 0


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _maybe_crash() -> None:
    global _shards_written
    _shards_written += 1
    limit = os.environ.get(CRASH_ENV)
    if limit and _shards_written >= int(limit):
        _kill_self()


def _maybe_crash_final(point: str) -> None:
    if os.environ.get(FINAL_CRASH_ENV) == point:
        _kill_self()


def read_shard(config: DataConfig, stage: str, i: int) -> list[dict[str, Any]]:
    return read_jsonl(shard_paths(config, stage, i)[0])


def shard_done(config: DataConfig, stage: str, i: int) -> bool:
    return shard_paths(config, stage, i)[2].exists()


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"in": 0, "kept": 0, "out": 0, "rejected": Counter(), "notes": Counter(), "wall_s": 0.0}
    for r in reports:
        for k in ("in", "kept", "out", "wall_s"):
            total[k] += r.get(k, 0)
        total["rejected"].update(r.get("rejected", {}))
        total["notes"].update(r.get("notes", {}))
    total["rejected"] = dict(sorted(total["rejected"].items()))
    total["notes"] = dict(sorted(total["notes"].items()))
    total["wall_s"] = round(total["wall_s"], 3)
    return total


def stage_reports(config: DataConfig) -> dict[str, Any]:
    out = {}
    for stage in (SOURCE_STAGE, *STAGE_ORDER):
        d = stage_dir(config, stage)
        if d.exists():
            out[stage] = merge_reports([json.loads(p.read_text(encoding="utf-8")) for p in sorted(d.glob("shard-*.done"))])
    return out


def final_problems(config: DataConfig) -> list[dict[str, Any]]:
    check_shards_current(config)
    last = STAGE_ORDER[-1]
    records = []
    for i in range(config.num_shards):
        if not shard_done(config, last, i):
            raise RecordError(f"{shard_paths(config, last, i)[2]}: stage {last} shard {i} is not finished")
        records += read_shard(config, last, i)
    return sorted(records, key=lambda r: r["id"])


def _pack_split(config: DataConfig, examples, tf_dir: Path, split: str, num_shards: int) -> tuple[list, dict[str, Any], list[dict[str, Any]]]:
    """Pack one split's examples and write its shards: (rows, manifest entry, shards)."""
    from data_pipeline import packing, tfrecords

    rows = packing.pack(examples, config.seq_len, mode=config.packing, seed=config.shuffle_seed, pad_id=config.pad_id,
                        max_segments=config.max_segments)
    shards = tfrecords.write_shards(rows, tf_dir, split=split, num_shards=num_shards, seq_len=config.seq_len, pad_id=config.pad_id)
    entry = {"files": [f"tfrecords/{s['file']}" for s in shards], "rows": len(rows), "examples": len(examples),
             "shard_rows": [s["rows"] for s in shards],
             "tokens": {"total": sum(len(e) for e in examples), "target": sum(sum(e.loss_mask) for e in examples),
                        "slots": len(rows) * config.seq_len},
             "padding_fraction": round(packing.padding_fraction(rows, config.seq_len), 6),
             "max_segments": packing.max_segment_runs(rows, config.seq_len)}
    return rows, entry, shards


def finalize(config: DataConfig, formatted: list[dict[str, Any]], stages: dict[str, Any], *, runner: str) -> dict[str, Any]:
    """records/ JSONL, tokenise, pack, TFRecords, manifest.json and report.json.

    Written whole under ``OUT/.final-staging/`` (an earlier build's output stays in place meanwhile),
    renamed to ``.final-ready/`` once complete, then moved in by :func:`commit_final`, so that a kill
    or a failure part-way never leaves a ``manifest.json`` beside files it does not describe. A
    failure before the commit removes the staging folder; a kill leaves it (hidden, so the trainer's
    glob over OUT ignores it) to the next build, which removes it, or completes the commit of a ready
    one (:func:`recover_final`). The staging copy needs the output's size again in free disk space.

    With ``validation_fraction`` > 0 the trained examples are split by problem
    (``data_pipeline/splits.py``) into ``train`` and ``validation``, each packed alone with the same
    settings and written as ``tfrecords/<split>-*.tfrecord``; ``splits.json`` lists the example ids
    of each split. Manifest figures: ``splits.<name>`` has each split's files, rows, examples,
    shard rows, problems, tokens, padding fraction and most segment runs; the top-level ``tokens``,
    ``padding_fraction`` and ``counts.packed_by_*`` describe the ``train`` split only (what is
    trained on; the same as before when nothing is held out); the top-level ``max_segments`` is the
    most over all splits (the trainer checks it against ``model.max_segments`` for any split).
    """
    out = Path(config.output_dir)
    recover_final(out)
    staging = out / STAGING_DIR
    try:
        report, rows = _write_final(config, formatted, stages, runner=runner, out=staging)
        write_json_atomic(staging / "entries.json", [name for name in FINAL_ENTRIES if (staging / name).exists()])
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, out / READY_DIR)
    commit_final(out)
    if not rows:  # raised last, so that the rejects and the report that explain it are in OUT
        raise EmptyBuildError(_no_rows_message(out, report["stages"]))
    return report


def _write_final(config: DataConfig, formatted: list[dict[str, Any]], stages: dict[str, Any], *, runner: str,
                 out: Path) -> tuple[dict[str, Any], list]:
    """The final step's output written under ``out`` (a folder not there yet): (report, train rows)."""
    import math

    from data_pipeline import splits, tfrecords
    from data_pipeline.tokenization import tokenize_records

    start = time.perf_counter()
    formatted = sorted(formatted, key=lambda r: r["id"])
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in formatted:
        by_kind.setdefault(r["kind"], []).append(r)
    for kind, rows in by_kind.items():
        write_jsonl_atomic(out / "records" / f"{kind}.jsonl", rows)

    tokenizer = _tokenizer(config.tokenizer)
    trained = [r for r in formatted if r["kind"] in config.train_kinds]
    examples, too_long = tokenize_records(trained, tokenizer, config.seq_len)
    write_jsonl_atomic(out / "records" / "rejects.jsonl", too_long)
    # Split after tokenising, so that both splits hold examples (a problem whose every record is
    # too long is in neither).
    record_of = {r["id"]: r for r in trained}
    split_of = splits.assign([record_of[e.id] for e in examples], config.validation_fraction, config.shuffle_seed)
    by_split = {name: [e for e in examples if split_of[e.id] == name] for name in (splits.TRAIN, splits.VALIDATION)}
    problems = {name: len({splits.problem_key(record_of[e.id]) for e in exs}) for name, exs in by_split.items()}
    tf_dir = out / "tfrecords"
    rows, train_entry, shards = _pack_split(config, by_split[splits.TRAIN], tf_dir, splits.TRAIN, config.tfrecord_shards)
    _maybe_crash_final("pack")
    split_entries = {splits.TRAIN: {**train_entry, "problems": problems[splits.TRAIN]}}
    all_shards = list(shards)
    if config.validation_fraction > 0:
        val_examples = by_split[splits.VALIDATION]
        # Shards in proportion to the split's share of the examples, at least one.
        n_val = max(1, min(config.tfrecord_shards, math.ceil(config.tfrecord_shards * len(val_examples) / max(1, len(examples)))))
        _, val_entry, val_shards = _pack_split(config, val_examples, tf_dir, splits.VALIDATION, n_val)
        split_entries[splits.VALIDATION] = {**val_entry, "problems": problems[splits.VALIDATION]}
        all_shards += val_shards
        write_json_atomic(out / "splits.json", {
            "key": "problem_id (record id where absent)", "validation_fraction": config.validation_fraction,
            "shuffle_seed": config.shuffle_seed, **{name: [e.id for e in exs] for name, exs in by_split.items()}})
    train_examples = by_split[splits.TRAIN]
    kind_of = {r["id"]: r["kind"] for r in formatted}
    source_of = {r["id"]: r.get("source", "unknown") for r in formatted}
    n_val_examples = len(by_split[splits.VALIDATION])
    stages = dict(stages)
    # "out" counts every packed example (train and validation); notes say how many were held out.
    stages["tokenize_pack"] = {"in": len(formatted), "kept": len(examples), "out": len(examples),
                               "rejected": {k: v for k, v in (("too_long", len(too_long)),
                                                              ("kind_not_trained", len(formatted) - len(trained))) if v},
                               "notes": {k: v for k, v in (("held_out_validation", n_val_examples),
                                                           ("held_out_validation_problems", problems[splits.VALIDATION])) if v},
                               "wall_s": round(time.perf_counter() - start, 3)}
    manifest = {
        "format": "semcoder-packed-v1",
        "seq_len": config.seq_len,
        "features": ["input_ids", "loss_mask", "segment_ids", "positions"],
        "pad_id": config.pad_id,
        "bos_id": tokenizer.bos_token_id,
        "eos_id": tokenizer.eos_token_id,
        "splits": split_entries,
        "checksums": {f"tfrecords/{s['file']}": s["sha256"] for s in all_shards},
        "counts": {
            "records_by_kind": dict(sorted(Counter(r["kind"] for r in formatted).items())),
            "records_by_source": dict(sorted(Counter(r.get("source", "unknown") for r in formatted).items())),
            "packed_by_kind": dict(sorted(Counter(kind_of[e.id] for e in train_examples).items())),
            "packed_by_source": dict(sorted(Counter(source_of[e.id] for e in train_examples).items())),
            "stages": {k: {"in": v["in"], "out": v["out"], "rejected": sum(v["rejected"].values())} for k, v in stages.items()},
        },
        "tokens": train_entry["tokens"],
        "padding_fraction": train_entry["padding_fraction"],
        "packing": config.packing,
        "max_segments": max(e["max_segments"] for e in split_entries.values()),
        "validation_fraction": config.validation_fraction,
        "shuffle_seed": config.shuffle_seed,
        "tokenizer": str(config.tokenizer or "deepseek-coder (shipped)"),
        "code_version": tfrecords.code_version(),
        "config": dataclasses.asdict(config),
    }
    if splits.VALIDATION in split_entries:
        manifest["counts"]["validation_by_kind"] = dict(sorted(Counter(kind_of[e.id] for e in by_split[splits.VALIDATION]).items()))
        manifest["counts"]["validation_by_source"] = dict(sorted(Counter(source_of[e.id] for e in by_split[splits.VALIDATION]).items()))
    write_json_atomic(out / "manifest.json", manifest)
    report = {"runner": runner, "stages": stages, "padding_fraction": manifest["padding_fraction"],
              "rows": len(rows), "examples": len(train_examples), "records_by_kind": manifest["counts"]["records_by_kind"]}
    if splits.VALIDATION in split_entries:
        report["validation"] = {k: split_entries[splits.VALIDATION][k] for k in ("rows", "examples", "problems", "padding_fraction")}
    write_json_atomic(out / "report.json", report)
    from data_pipeline.tfds_builder import write_tfds_metadata

    write_tfds_metadata(out, manifest)
    return report, rows


def commit_final(out: Path) -> None:
    """Move a complete final output (``OUT/.final-ready/``, listed in its ``entries.json``) into OUT.

    The earlier ``manifest.json`` goes aside first and the new one comes in last, so that a manifest
    in OUT always describes the files beside it; in between, ``tfrecords/`` (its TFDS metadata
    inside) is one build's whole folder, which the trainer's glob reads whole without a manifest,
    save for the instant between moving the old one aside and the new one in, when there is none. An
    entry of the earlier build that this one has not (``splits.json`` without a validation split)
    goes aside too. Resumable: what a kill part-way left undone, the next call does; the earlier
    output (``.final-old/``) is deleted once the new one is in."""
    ready, old = out / READY_DIR, out / OLD_DIR
    if not ready.is_dir():
        return
    try:
        entries = set(json.loads((ready / "entries.json").read_text(encoding="utf-8")))
    except FileNotFoundError:  # a kill while removing the committed folder: nothing is left in it
        entries = None
    if entries is not None:
        old.mkdir(exist_ok=True)
        moves = 0

        def move(src: Path, dst: Path) -> None:
            nonlocal moves
            if dst.exists() or dst.is_symlink():
                _remove(dst)
            os.rename(src, dst)
            moves += 1
            _maybe_crash_final(f"commit:{moves}")

        if (ready / "manifest.json").exists() and (out / "manifest.json").exists():
            move(out / "manifest.json", old / "manifest.json")
        for name in FINAL_ENTRIES:
            if name in entries and not (ready / name).exists():
                continue  # moved in by an earlier, interrupted commit
            if (out / name).exists() or (out / name).is_symlink():
                move(out / name, old / name)
            if name in entries:
                move(ready / name, out / name)
    _remove(old)
    _remove(ready)


def recover_final(out: Path) -> None:
    """What a killed final step left in OUT: complete the commit of a finished output, and remove
    an unfinished one (a build killed while packing leaves the earlier output as it was)."""
    check_final_entries(out)
    commit_final(out)
    _remove(out / STAGING_DIR)
    _remove(out / OLD_DIR)


def check_final_entries(out: Path) -> None:
    """Refuse an output entry that is a symbolic link (``tfrecords`` on a bigger disk): the commit
    would move the link aside and delete it, leaving the new output on OUT's disk and the old one
    orphaned behind the link."""
    for name in FINAL_ENTRIES:
        if (out / name).is_symlink():
            raise ConfigError(f"{out / name} is a symbolic link (to {os.readlink(out / name)}): the final step writes a new {name} "
                              "in output_dir and moves it in place of the old one, which would replace the link; "
                              "put output_dir itself on that disk (or make output_dir the link) instead")


def output_lock(out: Path) -> contextlib.AbstractContextManager[bool]:
    """Hold ``out`` for one build: a second build into it would take the first one's
    ``.final-staging`` for a killed build's and remove it, and both would write the same stage shards."""
    return folder_lock(
        out / LOCK_FILE,
        held=lambda holder: ConfigError(f"{out}: another build is writing to this output_dir ({holder}); wait for it "
                                        "to end, or use another output_dir"),
        unwritable=lambda reason: ConfigError(f"{out}: cannot write there ({reason})"),
        unguarded=lambda reason: (f"{out}: cannot lock the output folder ({reason}); building without the guard "
                                  "against a second build there: make sure no other build writes to it"),
        logger=log,
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _no_rows_message(out: Path, stages: dict[str, Any]) -> str:
    rejected = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in st["rejected"].items())
                         for name, st in stages.items() if st["rejected"])
    why = f"rejected by stage: {rejected}" if rejected else "no input records"
    return (f"{out}: no training rows survived the build ({why}); see {out / 'report.json'} and the rejects in "
            f"{out / 'stages'}/*/rejects-*.jsonl and {out / 'records' / 'rejects.jsonl'}")


def format_all(problems: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    from data_pipeline.stages.format import format_problem

    return [r for p in problems for r in format_problem(p)]


@functools.lru_cache(maxsize=2)
def _tokenizer(source: str | None) -> Any:
    from semcoder_jax.tokenizer import load_tokenizer

    return load_tokenizer(source)


def save_config(config: DataConfig) -> None:
    """Checked before any stage runs: the tokenizer, which only the last step uses, and the settings
    of a build to resume."""
    from semcoder_jax.config import save_config as save

    try:
        tokenizer = _tokenizer(config.tokenizer)
    except SemcoderError as e:
        raise ConfigError(f"data config: tokenizer: {e}") from None
    if config.pad_id >= len(tokenizer):  # every row's padding would be refused by the trainer
        raise ConfigError(f"data config: pad_id={config.pad_id} is not a token id of the tokenizer ({len(tokenizer)} tokens)")
    if config.source == "build":  # refused before config.yaml stops describing the finished shards
        check_stage_settings(config)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    recover_final(out)
    check_folder_rename(out)
    save(config, out / "config.yaml")


def check_folder_rename(out: Path) -> None:
    """Refuse, before any stage runs, an output folder whose filesystem cannot rename a folder with
    files in it (a bucket mount such as gcsfuse without ``--rename-dir-limit``): the final step moves
    its folders into place, and would fail there after the whole build."""
    probe = out / ".rename-probe"
    _remove(probe)
    _remove(probe.with_suffix(".moved"))
    (probe / "sub").mkdir(parents=True)
    (probe / "sub" / "file").write_bytes(b"")
    try:
        os.rename(probe, probe.with_suffix(".moved"))
    except OSError as e:
        _remove(probe)
        raise ConfigError(f"{out}: this filesystem cannot rename a folder ({e}), which the final step does to replace the "
                          "output whole; use an output_dir on a local disk or a filesystem that renames folders") from None
    _remove(probe.with_suffix(".moved"))

"""SemCoder's released data as a source, read as is (local JSONL or parquet, or the hub through ``datasets``).

``semcoder/PyX`` rows have ``nl``, ``fwd_mnl``, ``bwd_mnl`` (exactly one non-empty) and
``response``; ``semcoder/PyX-R`` rows have ``fault`` and ``response``. The non-empty field is the
instruction of the matching template.

A record's id is a hash of its row's text (the instruction's field, the instruction and the
response), not of its place in the file: filtering or re-ordering the file leaves every other row's
id, so ``splits.json`` (which keys released rows by id) and decontamination reports keep naming the
same rows. A row whose text repeats an earlier row's exactly is rejected (``duplicate_row``): it
would be trained on twice, and two records would share one id.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from data_pipeline.config import DataConfig, resolve_path
from data_pipeline.records import RecordError, read_jsonl_lines
from data_pipeline.stages.base import short_hash
from data_pipeline.stages.format import formatted

PYX_FIELDS = {"nl": "nl2code", "fwd_mnl": "forward", "bwd_mnl": "backward"}


def load_rows(source: str, split: str = "train", *, skip_bad: bool = False,
              rejects: list | None = None, limit: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each row of a local ``.jsonl``/``.jsonl.gz`` file (found as the config's other
    paths are; ``where`` is FILE:LINE), a local ``.parquet`` file, a hub dataset id or a local copy of one
    (``where`` names the row's index in the dataset, counting from 0: these rows have no lines).
    ``limit`` stops a JSONL file after that many rows, so a bad line past them is no reject."""
    local = resolve_path(source)
    if local.endswith(".parquet"):  # the hub's own format, downloaded
        import pyarrow
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(local)
        except (OSError, pyarrow.ArrowException) as e:
            raise RecordError(f"{local}: cannot read as parquet ({e})") from None
        return [(f"{local} row {i}", row) for i, row in enumerate(table.to_pylist())]
    if Path(local).is_file() or source.endswith((".jsonl", ".jsonl.gz", ".json")):
        return [(f"{local}:{n}", row) for n, row in read_jsonl_lines(local, skip_bad=skip_bad, rejects=rejects, limit=limit)]
    import datasets

    # A folder is a downloaded copy of the hub dataset (``huggingface-cli download --local-dir``).
    source, place = (local, "local folder") if Path(local).is_dir() else (source, "Hugging Face hub")
    try:
        rows = datasets.load_dataset(source, split=split)
    except Exception as e:  # noqa: BLE001 - offline, no such dataset or split: datasets raises many kinds
        raise RecordError(f"cannot load {source}[{split}] from the {place} ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); give a local .jsonl path instead") from None
    return [(f"{source}[{split}] row {i}", dict(r)) for i, r in enumerate(rows)]


def row_id(prefix: str, field: str, instruction: str, response: str) -> str:
    """``<prefix>-<hash>`` of a row's text; JSON keeps the parts apart (no two rows' texts join alike)."""
    return f"{prefix}-{short_hash(json.dumps([field, instruction, response]), 16)}"


def pyx_record(row: dict[str, Any], where: str) -> dict[str, Any]:
    not_text = [k for k in (*PYX_FIELDS, "response") if row.get(k) is not None and not isinstance(row[k], str)]
    if not_text:
        raise RecordError(f"{where}: field {not_text[0]!r} is not text")
    present = [k for k in PYX_FIELDS if (row.get(k) or "").strip()]
    if len(present) != 1:
        raise RecordError(f"{where}: expected exactly one of nl/fwd_mnl/bwd_mnl non-empty, got {present or 'none'}")
    if not (row.get("response") or "").strip():
        raise RecordError(f"{where}: missing or empty field 'response'")
    field = present[0]
    rid = row_id("pyx", field, row[field], row["response"])
    return formatted(rid, PYX_FIELDS[field], row[field], row["response"], source="released-pyx")


def pyxr_record(row: dict[str, Any], where: str) -> dict[str, Any]:
    for k in ("fault", "response"):
        if not isinstance(row.get(k), str) or not row[k].strip():
            raise RecordError(f"{where}: missing or empty field {k!r}")
    return formatted(row_id("pyxr", "fault", row["fault"], row["response"]), "refine", row["fault"], row["response"],
                     source="released-pyx-r")


def _convert(rows: Iterable[tuple[str, dict[str, Any]]], fn, config: DataConfig, rejects: list) -> list[dict[str, Any]]:
    """Records of ``(where, row)`` pairs; ``where`` starts every error. ``released.limit`` counts the rows read."""
    out = []
    first: dict[str, str] = {}  # id -> where its row was read first
    for i, (where, row) in enumerate(rows):
        if config.released.limit and i >= config.released.limit:
            break
        try:
            record = fn(row, where)
        except RecordError as e:
            if not config.skip_bad:
                raise
            # A parquet or hub row may hold bytes or timestamps, which the rejects file cannot.
            rejects.append({"record": json.loads(json.dumps(row, default=repr)), "reason": "malformed_row", "detail": str(e)})
            continue
        if record["id"] in first:
            rejects.append({"record": json.loads(json.dumps(row, default=repr)), "reason": "duplicate_row",
                            "detail": f"{where}: the same text as {first[record['id']]} ({record['id']})"})
            continue
        first[record["id"]] = where
        out.append(record)
    return out


def released_records(config: DataConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Formatted records and a stage report per released file."""
    if not (config.released.pyx or config.released.pyxr):
        raise RecordError("source=released needs released.pyx and/or released.pyxr")
    records: list[dict[str, Any]] = []
    stages: dict[str, Any] = {}
    for key, fn in (("pyx", pyx_record), ("pyxr", pyxr_record)):
        src = getattr(config.released, key)
        rejects_path = Path(config.output_dir) / "stages" / f"released_{key}" / "rejects-00000.jsonl"
        if not src:  # an earlier build's rejects of a file no longer read would outlive its report
            rejects_path.unlink(missing_ok=True)
            continue
        bad: list[dict[str, Any]] = []
        rows = load_rows(src, config.released.split, skip_bad=config.skip_bad, rejects=bad, limit=config.released.limit)
        rejects = [{"record": b, "reason": "malformed_jsonl", "detail": b["reason"]} for b in bad]
        recs = _convert(rows, fn, config, rejects)
        stages[f"released_{key}"] = {"in": len(recs) + len(rejects), "kept": len(recs), "out": len(recs),
                                     "rejected": dict(Counter(r["reason"] for r in rejects)), "notes": {}}
        if rejects:
            from data_pipeline.records import write_jsonl_atomic

            write_jsonl_atomic(rejects_path, rejects)
        else:  # an earlier build's rejects would contradict this report
            rejects_path.unlink(missing_ok=True)
        records += recs
    return records, stages

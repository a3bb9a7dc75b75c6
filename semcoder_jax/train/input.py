"""Training input: packed rows from TFRecords, a tokenised JSONL or a synthetic set, as global arrays.

The read position is ``(epoch, batch)``: epoch ``e`` is a fixed, seeded permutation of the rows, so
a resumed run rebuilds epoch ``e`` and skips ``batch`` batches instead of restoring iterator state.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Protocol

import jax
import numpy as np

from semcoder_jax.errors import SemcoderError
from semcoder_jax.jsonl import iter_jsonl
from semcoder_jax.model.attention import count_segment_runs
from semcoder_jax.packed_schema import (
    FEATURES,
    INT32_MAX,
    INT32_MIN,
    SchemaError,
    check_int32,
    check_packing,
    feature_spec,
    int64_array,
    parse_example,
    validate_row,
)
from semcoder_jax.train.config import DataConfig

log = logging.getLogger(__name__)

Batch = dict[str, np.ndarray]


class DataError(SemcoderError):
    """Training data that cannot be read: missing files, bad rows, too few rows."""


@dataclass(frozen=True)
class DataPosition:
    epoch: int = 0
    batch: int = 0

    def to_json(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch": self.batch}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DataPosition":
        return cls(epoch=int(data["epoch"]), batch=int(data["batch"]))


class RowSource(Protocol):
    rows: int
    seq_len: int
    max_runs: int | None  # most runs of equal segment id in a row, where known before reading
    fingerprint: str  # what the rows were read from, cheap to take again: a resume must find the same

    def host_batches(self, epoch: int, start_batch: int) -> Iterator[Batch]: ...


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch]).integers(0, 2**31 - 1))


# ---- in-memory rows (JSONL, synthetic) -------------------------------------------------------
class ArraySource:
    """Rows held in memory; epoch ``e`` reads them in ``permutation(seed, e)`` order.

    Either every host holds all rows and takes its slice of each global batch, or
    (``host_rows``) each host holds only its share and batches from it alone.
    """

    fingerprint = ""  # set by ``make_source``, which knows where the rows came from

    def __init__(self, rows: Batch, global_batch: int, seed: int, process_index: int = 0, process_count: int = 1,
                 host_rows: bool = False, total_rows: int | None = None):
        self.data = {k: np.asarray(rows[k], np.int32) for k in FEATURES}
        self.local_rows, self.seq_len = self.data["input_ids"].shape
        self.rows = total_rows if total_rows is not None else self.local_rows
        self.global_batch, self.seed, self.host_rows = global_batch, seed, host_rows
        self.host_batch = global_batch // process_count
        self.offset = 0 if host_rows else process_index * self.host_batch
        self.max_runs = int(count_segment_runs(self.data["segment_ids"]).max())

    def host_batches(self, epoch: int, start_batch: int) -> Iterator[Batch]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.local_rows)
        stride = self.host_batch if self.host_rows else self.global_batch
        for b in range(start_batch, self.rows // self.global_batch):
            at = b * stride + self.offset + np.arange(self.host_batch)
            idx = order[at % self.local_rows]
            yield {k: v[idx] for k, v in self.data.items()}


def pack_examples(examples: list[tuple[np.ndarray, np.ndarray]], seq_len: int, pad_id: int = 0,
                  max_segments: int = 0) -> Batch:
    """Greedy in-order packing of (input_ids, loss_mask) examples into rows of ``seq_len``;
    ``max_segments`` > 0: at most ``max_segments - 1`` examples a row (padding is one more run)."""
    rows: list[Batch] = []
    cur: list[tuple[np.ndarray, np.ndarray]] = []
    used = 0

    def flush() -> None:
        ids = np.full(seq_len, pad_id, np.int64)
        mask, seg, pos = (np.zeros(seq_len, np.int64) for _ in range(3))
        at = 0
        for s, (i, m) in enumerate(cur, start=1):
            n = len(i)
            ids[at : at + n], mask[at : at + n], seg[at : at + n], pos[at : at + n] = i, m, s, np.arange(n)
            at += n
        rows.append({"input_ids": ids, "loss_mask": mask, "segment_ids": seg, "positions": pos})

    for ids, mask in examples:
        if cur and (used + len(ids) > seq_len or len(cur) + 1 == max_segments):
            flush()
            cur, used = [], 0
        cur.append((ids, mask))
        used += len(ids)
    if cur:
        flush()
    return {k: np.stack([r[k] for r in rows]) for k in FEATURES}


def read_jsonl_rows(path: str | Path, seq_len: int, pad_id: int = 0, max_segments: int = 0) -> Batch:
    """Packed rows (all four features) as they are; unpacked ``{input_ids, loss_mask}`` packed here.

    Left out, with a warning naming their lines (as the data pipeline's ``rejects.jsonl`` does): an
    example longer than ``seq_len`` (cut short, it would lose its response's end and EOS), one of no
    tokens, and an example or packed row with no target token (``loss_mask`` 1 after a segment's
    first token, as the loss counts them): it adds nothing to the loss, only a step's work."""
    packed: list[Batch] = []
    loose: list[tuple[np.ndarray, np.ndarray]] = []
    skipped: dict[str, list[int]] = {f"longer than seq_len={seq_len}": [], "of no tokens": [], "with no target token": []}
    too_long, empty, no_target = skipped.values()
    for n, row in iter_jsonl(path, error=DataError):
        where = f"{path}:{n}"
        if "input_ids" not in row:
            raise DataError(f"{where}: expected an object with 'input_ids'")
        if all(k in row for k in FEATURES):
            checked = validate_row({k: row[k] for k in FEATURES}, seq_len, where)
            seg = checked["segment_ids"]
            if not np.any((checked["loss_mask"][1:] != 0) & (seg[1:] == seg[:-1]) & (seg[1:] != 0)):
                no_target.append(n)
            else:
                packed.append(checked)
            continue
        if "segment_ids" in row or "positions" in row:  # packed: repacked whole, its examples would run together
            missing = ", ".join(repr(k) for k in FEATURES if k not in row)
            raise DataError(f"{where}: a packed row needs all of {', '.join(FEATURES)}; it has no {missing}")
        ids = int64_array(row["input_ids"], f"{where}: 'input_ids'")
        mask = int64_array(row["loss_mask"], f"{where}: 'loss_mask'") if "loss_mask" in row else np.ones_like(ids)
        for name, arr in (("input_ids", ids), ("loss_mask", mask)):
            if arr.ndim != 1:  # a bare number: not a length mismatch
                raise DataError(f"{where}: {name!r} is not a list of integers")
        if mask.shape != ids.shape:
            raise DataError(f"{where}: 'loss_mask' length {mask.size} differs from 'input_ids' length {ids.size}")
        if np.any((mask != 0) & (mask != 1)):
            raise DataError(f"{where}: 'loss_mask' holds {int(mask[(mask != 0) & (mask != 1)][0])}, not 0 or 1")
        if len(ids) > seq_len:
            too_long.append(n)
        elif not len(ids):  # a segment of no tokens: it would shift the segment ids and fill rows with padding
            empty.append(n)
        elif not mask[1:].any():
            no_target.append(n)
        else:
            loose.append((ids, mask))
    for what, lines in skipped.items():
        if lines:
            log.warning("%s: left out %d rows %s: %s", path, len(lines), what, _line_list(lines))
    parts = [{k: np.stack([r[k] for r in packed]) for k in FEATURES}] if packed else []
    if loose:
        parts.append(pack_examples(loose, seq_len, pad_id, max_segments))
    if not parts:
        left_out = "; ".join(f"{len(lines)} {what}" for what, lines in skipped.items() if lines)
        raise DataError(f"{path}: no usable rows" + (f" ({left_out})" if left_out else ""))
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURES}


def _line_list(lines: list[int], most: int = 10) -> str:
    shown = ", ".join(map(str, lines[:most]))
    return f"line{'s' if len(lines) > 1 else ''} {shown}" + (f" and {len(lines) - most} more" if len(lines) > most else "")


def synthetic_rows(n_rows: int, seq_len: int, vocab_size: int, seed: int = 0, segments: int = 4) -> Batch:
    """Packed rows of ``segments`` examples: a random masked prompt, then a response whose every
    token is a fixed function of the previous one (learnable, so a tiny model's loss falls)."""
    rng = np.random.default_rng(seed)
    v = max(min(vocab_size, 512), 4)
    seg_len = seq_len // segments
    examples = []
    for _ in range(n_rows * segments):
        prompt_len = int(rng.integers(1, max(seg_len // 2, 2)))
        ids = np.empty(seg_len, np.int64)
        ids[:prompt_len] = rng.integers(1, v, prompt_len)
        for i in range(prompt_len, seg_len):
            ids[i] = (ids[i - 1] * 7 + 3) % (v - 1) + 1
        mask = np.zeros(seg_len, np.int64)
        mask[prompt_len:] = 1
        examples.append((ids, mask))
    return pack_examples(examples, seq_len)


# ---- TFRecords ---------------------------------------------------------------------------------
class TFRecordSet(NamedTuple):
    """A split's files, and what a manifest says of them (None without one)."""

    files: list[str]
    rows: int | None
    seq_len: int | None
    max_runs: int | None  # most runs of equal segment id in a row
    file_rows: list[int] | None  # rows of each file


def resolve_tfrecords(path: str, split: str) -> TFRecordSet:
    """A split's files, and their manifest's figures, for a folder or a glob."""
    p = Path(path)
    if p.is_dir():
        manifest = p / "manifest.json"
        if not manifest.exists():
            files = sorted(f for f in glob.glob(str(p / "**" / "*.tfrecord*"), recursive=True)
                           if not f.endswith(".tmp"))  # an interrupted build's unfinished shard
            if not files:
                raise DataError(f"{p}: no manifest.json and no *.tfrecord files")
            # Files named by split (``train-00000-of-00004.tfrecord``): only this split's.
            named = [f for f in files if Path(f).name.startswith(("train-", "validation-"))]
            if named:
                files = [f for f in named if Path(f).name.startswith(f"{split}-")]
                if not files:
                    raise DataError(f"{p}: no manifest.json and no {split}-*.tfrecord files")
            return TFRecordSet(files, None, None, None, None)
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            entry = meta["splits"][split]
            files = [str(p / f) for f in entry["files"]]
        except (ValueError, KeyError, TypeError) as e:  # ValueError: not JSON, or not UTF-8
            if isinstance(e, KeyError) and isinstance(meta.get("splits"), dict) and split not in meta["splits"]:
                hint = "; build with validation_fraction=F, or set validation.path=" if split == "validation" else ""
                raise DataError(f"{manifest}: no split {split!r} (it has {', '.join(sorted(meta['splits']))}){hint}") from None
            raise DataError(f"{manifest}: cannot read split {split!r}: {e!r}") from None
        if not files:  # the validation reader otherwise fails on its first file, training on its row count
            raise DataError(f"{manifest}: splits.{split}.files lists no files")
        missing = [f for f in files if not Path(f).exists()]
        if missing:
            raise DataError(f"{manifest}: listed file not found: {missing[0]}")
        figures = {f"splits.{split}.rows": entry.get("rows"), "seq_len": meta.get("seq_len"),
                   "max_segments": meta.get("max_segments")}
        for key, value in figures.items():  # else a TypeError deep in the reader, naming neither
            if value is not None and not _whole(value):
                raise DataError(f"{manifest}: {key} must be a whole number, got {value!r}")
        file_rows = entry.get("shard_rows")
        if not (isinstance(file_rows, list) and len(file_rows) == len(files) and all(map(_whole, file_rows))):
            file_rows = None  # the records are counted instead
        rows = figures[f"splits.{split}.rows"]
        if file_rows is not None and rows is not None and sum(file_rows) != rows:  # hosts check their shares by these
            raise DataError(f"{manifest}: splits.{split}.shard_rows add up to {sum(file_rows):,} but splits.{split}.rows "
                            f"is {rows:,}; rebuild the data, or correct the manifest")
        return TFRecordSet(files, *figures.values(), file_rows)
    files = sorted(glob.glob(path))
    if not files:
        raise DataError(f"data.path {path!r}: no files match")
    names = [Path(f).name for f in files]
    if any(n.startswith("train-") for n in names) and any(n.startswith("validation-") for n in names):
        # a glob over a build's tfrecords/ would otherwise train on its validation split too
        files = [f for f, n in zip(files, names) if not n.startswith(("train-", "validation-")) or n.startswith(f"{split}-")]
        log.info("data.path %r matches both splits' shards: reading its %d %s-* files", path, len(files), split)
    return TFRecordSet(files, None, None, None, None)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _frames(path: str, read: bool) -> Iterator[bytes | None]:
    """A TFRecord file's length-prefixed frames (CRCs not checked): each record's bytes, or None for
    each one when only counting (the data is skipped, not read)."""
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        for n in itertools.count():
            if not (head := f.read(12)):
                return
            if len(head) < 12:
                raise SchemaError(f"{path}: truncated record {n} ({len(head)} bytes of its 12-byte header)")
            (length,) = struct.unpack("<Q", head[:8])
            left = size - f.tell()
            if length + 4 > left:  # the data or its CRC is cut off, or a corrupt length (no read of that size)
                raise SchemaError(f"{path}: truncated record {n} (its header gives {length:,} bytes and a "
                                  f"4-byte checksum; {left:,} bytes are left)")
            data = f.read(length) if read else None
            f.seek(4 if read else length + 4, 1)
            yield data


def read_tfrecord_file(path: str) -> Iterator[bytes]:
    """Records of a TFRecord file without TensorFlow."""
    yield from _frames(path, read=True)


def count_records(path: str) -> int:
    """Records of a TFRecord file, from its frame headers alone."""
    return sum(1 for _ in _frames(path, read=False))


def hosts_rows(files: list[str], process_count: int, file_rows: list[int] | None = None) -> int:
    """Rows all hosts together read an epoch: the smallest host's share, times the hosts.

    Each host reads its files (``files[i::process_count]``; rows ``i::process_count`` when there
    are fewer files than hosts), and every host must take as many batches, so a host with a larger
    share leaves rows out (others each epoch) rather than a smaller one repeating rows to keep up.
    ``file_rows`` (a manifest's) spares counting the records of every file.
    """
    counts = file_rows if file_rows is not None else [count_records(f) for f in files]
    if len(files) < process_count:
        share = sum(counts) // process_count
    else:
        share = min(sum(counts[h::process_count]) for h in range(process_count))
    if share * process_count < sum(counts):
        log.warning("the %d rows of %d files split unevenly over %d hosts: each epoch reads %d of them",
                    sum(counts), len(files), process_count, share * process_count)
    return share * process_count


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: varints and length-delimited only."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError(f"field {num} runs past the end of the message")
            value, i = buf[i : i + n], i + n
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _int64_list(feature: bytes) -> list[Any]:
    """The values of a ``Feature`` message's ``int64_list`` (field 3), packed or not; a
    ``float_list`` (2) or ``bytes_list`` (1) gives its floats or bytes, for the schema check to name."""
    import struct

    values: list[Any] = []
    for num, _, kind in _fields(feature):
        if num not in (1, 2, 3):
            continue
        for vnum, wire, v in _fields(kind):
            if vnum != 1:
                continue
            if num == 3 and wire == 2:  # packed
                j = 0
                while j < len(v):
                    x, j = _varint(v, j)
                    values.append(_signed(x))
            elif num == 3:
                values.append(_signed(v))
            elif num == 2:
                values += struct.unpack(f"<{len(v) // 4}f", v[: len(v) // 4 * 4])
            elif num == 1:
                values.append(v)
    return values


def decode_int64_example(record: bytes) -> dict[str, list[Any]]:
    """The int64 features of a serialised ``tf.train.Example``, decoded in pure Python."""
    out: dict[str, list[Any]] = {}
    for num, _, features in _fields(record):  # Example.features
        if num != 1:
            continue
        for fnum, _, entry in _fields(features):  # one map entry of Features.feature
            if fnum != 1:
                continue
            key, values = None, []
            for enum, _, ev in _fields(entry):
                if enum == 1:
                    key = ev.decode()
                elif enum == 2:
                    values = _int64_list(ev)
            if key is not None:
                out[key] = values
    return out


def read_tfrecord_rows(files: list[str], seq_len: int) -> Batch:
    """All rows of ``files`` in memory, validated against the packed schema (no TensorFlow)."""
    rows = []
    for f in files:
        for n, rec in enumerate(read_tfrecord_file(f)):
            try:
                example = decode_int64_example(rec)
            except (IndexError, ValueError, UnicodeDecodeError) as e:
                raise SchemaError(f"{f}: record {n}: not a tf.train.Example ({e})") from None
            rows.append(validate_row(example, seq_len, where=f"{f}: record {n}"))
    if not rows:
        more = f" and {len(files) - 1} more file{'s' if len(files) > 2 else ''}" if len(files) > 1 else ""
        raise DataError(f"{files[0] if files else '?'}{more}: no records")
    return {k: np.stack([r[k] for r in rows]) for k in FEATURES}


def _first_record(file: str) -> bytes | None:
    import tensorflow as tf

    try:
        for rec in tf.data.TFRecordDataset(file).take(1):
            return rec.numpy()
    except tf.errors.DataLossError:  # tf.data's message names no file
        raise SchemaError(f"{file}: record 0 is cut off, or this is not a TFRecord file") from None
    return None


class TFRecordSource:
    """tf.data over this host's share of the files; epoch ``e`` is a seeded file order and shuffle."""

    fingerprint = ""  # set by ``make_source``

    def __init__(self, files: list[str], seq_len: int, rows: int | None, global_batch: int, seed: int,
                 shuffle_buffer: int, process_index: int = 0, process_count: int = 1, max_runs: int | None = None,
                 rows_from: str = "", said_host_rows: int | None = None, said_rows: int | None = None,
                 file_rows: list[int] | None = None):
        """``rows``: the rows all hosts read an epoch (``hosts_rows``). ``rows_from``: what gave the
        files' row count ``said_rows`` (the manifest, with each file's ``file_rows`` where it has
        them), named if the files hold fewer or more. ``said_host_rows``: the rows this host's stream
        holds by the manifest; if given, the rows left after the first epoch's batches are read once,
        and the share must hold exactly that many (not counted up front: on a bucket that reads every
        file), unless the run ends before that (``check_host_rows_now``)."""
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
        self.seq_len, self.global_batch, self.seed, self.buffer = seq_len, global_batch, seed, shuffle_buffer
        self.host_batch = global_batch // process_count
        self.all_files, self.process_index, self.rows_from, self.file_rows = files, process_index, rows_from, file_rows
        self.host_rows_checked = said_host_rows is None
        if len(files) >= process_count:
            self.files, self.shard = files[process_index::process_count], None
        else:
            self.files, self.shard = files, (process_count, process_index)
        for f in self.files:
            rec = _first_record(f)
            if rec is None:
                continue
            parse_example(rec, seq_len, where=f"{f}: record 0")
        if rows is None:
            rows = sum(count_records(f) for f in files)
        self.rows = rows
        self.said_rows = said_rows if said_rows is not None else rows
        self.max_runs = max_runs
        self.said_host_rows = said_host_rows

    def host_batches(self, epoch: int, start_batch: int) -> Iterator[Batch]:
        import tensorflow as tf

        seed = _epoch_seed(self.seed, epoch)
        order = np.random.default_rng(seed).permutation(len(self.files))
        files = [self.files[i] for i in order]
        ds = record_dataset(files)
        if self.shard:
            ds = ds.shard(*self.shard)
        ds = ds.shuffle(self.buffer, seed=seed, reshuffle_each_iteration=False)
        ds = parsed_batches(ds, self.host_batch, self.seq_len)  # a short last batch: rows left
        n = self.rows // self.global_batch
        ds = ds.skip(start_batch)
        check = not self.host_rows_checked
        if not check:
            ds = ds.take(max(n - start_batch, 0))
        opts = tf.data.Options()
        opts.deterministic = True
        batches = numpy_batches(ds.prefetch(2).with_options(opts), files, self.seq_len)
        for read in range(start_batch, n):
            batch = next(batches, None)
            if batch is None or len(batch["input_ids"]) < self.host_batch:  # the epoch would be short
                raise rows_not_as_said(self.rows_from, self.said_rows, self.all_files,
                                       f"process {self.process_index} ran out at epoch {epoch}, batch {read} of {n}",
                                       self.file_rows)
            if read == n - 1 and check:  # before the last batch: none is asked after it
                self._check_host_rows(batches, n, epoch)
            yield batch

    def _check_host_rows(self, batches: Iterator[Batch], n: int, epoch: int) -> None:
        """Refuse a share holding other rows than the manifest gives it: more are left out of every
        epoch unseen, fewer mean a shard lost rows. Reads the rows an epoch leaves over (on a host
        with a larger share than the smallest, that share's surplus), once a run: every host checks
        its own share, so together they check the manifest's rows against all of its files."""
        held = n * self.host_batch + sum(len(batch["input_ids"]) for batch in batches)
        if held != self.said_host_rows:
            raise rows_not_as_said(self.rows_from, self.said_rows, self.all_files,
                                   f"process {self.process_index}'s share holds {held:,} rows, {self.said_host_rows:,} "
                                   f"by the manifest, found after epoch {epoch}'s {n} batches", self.file_rows)
        self.host_rows_checked = True

    def check_host_rows_now(self) -> None:
        """The share check of ``_check_host_rows``, for a run that ends before an epoch's last batch
        (``data.epochs`` < 1, a short ``max_steps``), where that check never comes: the share's
        records are counted from their frame headers, the data skipped, not read or decoded."""
        if self.host_rows_checked:
            return
        records = sum(count_records(f) for f in self.files)
        held = records if self.shard is None else len(range(self.shard[1], records, self.shard[0]))
        if held != self.said_host_rows:
            raise rows_not_as_said(self.rows_from, self.said_rows, self.all_files,
                                   f"process {self.process_index}'s share holds {held:,} rows, {self.said_host_rows:,} "
                                   "by the manifest, counted from the record headers at the start: the run ends "
                                   "before an epoch's last batch", self.file_rows)
        self.host_rows_checked = True


ORIGIN = ("_file", "_record")  # the keys of a parsed batch's row origins (``parsed_batches``)


def record_dataset(files: list[str]) -> Any:
    """The records of ``files`` in order, as ``(file index, record index, bytes)``: a row found bad
    after the shuffle can still be named by its file and record."""
    import tensorflow as tf

    names = tf.constant(files, tf.string)  # an empty list is float32 otherwise, and no file name
    return tf.data.Dataset.range(len(files)).flat_map(
        lambda i: tf.data.TFRecordDataset(tf.gather(names, i)).enumerate().map(lambda n, r: (i, n, r)))


def parsed_batches(ds: Any, batch: int, seq_len: int) -> Any:
    """``record_dataset``'s elements in batches of ``batch`` parsed rows, each with its origin."""
    import tensorflow as tf

    spec = feature_spec(seq_len)
    return ds.batch(batch).map(lambda i, n, r: {**tf.io.parse_example(r, spec), ORIGIN[0]: i, ORIGIN[1]: n})


def numpy_batches(ds: Any, files: list[str], seq_len: int) -> Iterator[Batch]:
    """The int32 batches of a tf.data dataset of parsed packed rows read from ``files`` (with their
    origins, as ``parsed_batches`` gives them); a record that is cut off, does not match the schema
    or whose segments and positions disagree is a ``SchemaError`` naming its file (and record)."""
    import tensorflow as tf

    errors = (tf.errors.InvalidArgumentError, tf.errors.DataLossError)  # not looked up as the generator closes at exit
    try:
        for batch in ds.as_numpy_iterator():
            where = _origin_namer(files, batch.pop(ORIGIN[0], None), batch.pop(ORIGIN[1], None))
            for k, v in batch.items():
                if v.size and (v.min() < INT32_MIN or v.max() > INT32_MAX):
                    row = int(np.argmax(((v < INT32_MIN) | (v > INT32_MAX)).any(axis=1)))
                    check_int32(v[row], f"{where(row)}: feature {k!r}")
            check_packing(batch, where)
            yield {k: v.astype(np.int32) for k, v in batch.items()}
    except errors as e:
        raise SchemaError(f"{', '.join(files)}: a record is truncated or does not match the packed schema "
                          f"(seq_len {seq_len}): {str(e).splitlines()[0]}") from None


def _origin_namer(files: list[str], file: np.ndarray | None, record: np.ndarray | None) -> Callable[[int], str]:
    """A batch row's ``file: record n`` (its files' names where the batch has no origins)."""
    if file is None or record is None:
        return lambda row: ", ".join(files)
    return lambda row: f"{files[file[row]]}: record {record[row]}"


def rows_not_as_said(said_by: str, rows: int, files: list[str], where: str,
                     file_rows: list[int] | None = None) -> DataError:
    """The error for files holding other rows than ``said_by`` gave (``rows`` in all; ``file_rows``
    each, naming the files that differ): fewer, and reading on would wrap around into rows already
    read this epoch; more, and some are never read. Counts the records (headers only): it is the
    run's end."""
    counts = [count_records(f) for f in files]
    off = [f"{f} holds {n:,}, {said:,} by shard_rows" for f, n, said in zip(files, counts, file_rows or ()) if n != said]
    named = f": {'; '.join(off[:3])}" + (f"; and {len(off) - 3} more files" if len(off) > 3 else "") if off else ""
    return DataError(f"{said_by} gives {rows:,} rows but its files hold {sum(counts):,} ({where}){named}. Rebuild "
                     "the data, or correct the manifest's rows and shard_rows")


def tfrecords_fingerprint(path: str, files: list[str]) -> str:
    """The files' names in reading order (not their folders: shards moved to another bucket are the
    same data), byte sizes, and sha256 where a manifest records it: one stat a file, no read."""
    digest, size = hashlib.sha256(), 0
    for f, checksum in zip(files, _manifest_checksums(path, files)):
        n = os.path.getsize(f)
        size += n
        digest.update(json.dumps([Path(f).name, n, checksum]).encode())
    return f"{len(files)} TFRecord files, {size:,} bytes, digest {digest.hexdigest()[:16]}"


def _manifest_checksums(path: str, files: list[str]) -> list[str]:
    """Each file's sha256 from its build's manifest ("" where none gives it): the manifest of the
    folder ``path`` names, else the one beside the file or one folder up, so that a glob over the
    shards of one build finds the same as its folder, and one over several builds each shard's own."""
    given = (Path(path),) if Path(path).is_dir() else ()
    manifests: dict[Path, Path | None] = {}  # by folder: a stat or two a folder, not a file
    sums: dict[Path | None, dict[str, str]] = {None: {}}
    out = []
    for f in files:
        folder = Path(f).parent
        if folder not in manifests:
            manifests[folder] = next((m for place in given + (folder, folder.parent)
                                      if (m := place / "manifest.json").is_file()), None)
        manifest = manifests[folder]
        if manifest not in sums:
            sums[manifest] = _checksums_in(manifest)
        out.append(sums[manifest].get(Path(f).name, ""))
    return out


def _checksums_in(manifest: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a build's manifest; none from one that cannot be read."""
    try:
        sums = json.loads(manifest.read_text(encoding="utf-8")).get("checksums")
    except (ValueError, AttributeError):  # not JSON, not UTF-8, or not an object: no checksums
        return {}
    return {Path(k).name: v for k, v in sums.items()} if isinstance(sums, dict) else {}


def file_fingerprint(path: str) -> str:
    """A file's size and sha256 (for a JSONL, which is read whole anyway)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return f"{os.path.getsize(path):,} bytes, digest {digest.hexdigest()[:16]}"


def is_jsonl(path: str) -> bool:
    """Tokenised rows as JSON lines (plain or gzip), not TFRecords."""
    return path.endswith((".jsonl", ".jsonl.gz"))


def make_source(cfg: DataConfig, vocab_size: int, process_index: int | None = None,
                process_count: int | None = None, max_segments: int = 0) -> RowSource:
    """``max_segments`` > 0: JSONL examples are packed at most ``max_segments - 1`` to a row."""
    pi = jax.process_index() if process_index is None else process_index
    pc = jax.process_count() if process_count is None else process_count
    if cfg.global_batch_size % pc:
        raise DataError(f"data.global_batch_size ({cfg.global_batch_size}) must divide by the {pc} hosts")
    if not cfg.path:
        rows = synthetic_rows(cfg.synthetic_rows, cfg.seq_len, vocab_size, cfg.shuffle_seed)
        source: RowSource = ArraySource(rows, cfg.global_batch_size, cfg.shuffle_seed, pi, pc)
        source.fingerprint = f"synthetic, {cfg.seq_len} tokens a row"  # another seq_len draws other rows
    elif is_jsonl(cfg.path):
        if not Path(cfg.path).exists():
            raise DataError(f"data.path {cfg.path!r}: file not found")
        rows = read_jsonl_rows(cfg.path, cfg.seq_len, cfg.pad_id, max_segments)
        source = ArraySource(rows, cfg.global_batch_size, cfg.shuffle_seed, pi, pc)
        # Packing decides the rows too: another seq_len or max_segments re-packs the same file.
        source.fingerprint = f"{file_fingerprint(cfg.path)}, packed to {cfg.seq_len} (max_segments {max_segments})"
    else:
        files, said_rows, seq_len, max_runs, file_rows = resolve_tfrecords(cfg.path, cfg.split)
        if seq_len is not None and seq_len != cfg.seq_len:
            raise DataError(f"{cfg.path}: manifest seq_len is {seq_len} but data.seq_len is {cfg.seq_len}; set data.seq_len={seq_len}")
        rows_from = str(Path(cfg.path) / "manifest.json") if said_rows is not None else f"data.path {cfg.path!r}"
        # What each host's share must hold, by the manifest: checked by each host on its own share
        # (shard_rows), or here on all files where several hosts count them anyway.
        said_host_rows = _said_host_rows(said_rows, file_rows, len(files), pi, pc)
        n_rows = all_rows = said_rows
        if pc > 1:
            counts = file_rows if file_rows is not None else [count_records(f) for f in files]
            if said_rows is not None and sum(counts) != said_rows:
                raise rows_not_as_said(rows_from, said_rows, files, "counted at the start: it has no shard_rows")
            n_rows, all_rows = hosts_rows(files, pc, counts), sum(counts)
        if n_rows is not None and n_rows < cfg.global_batch_size:  # before reading a row, the same on every host
            raise too_few_rows(cfg.path, n_rows, cfg.global_batch_size, all_rows, pc, len(files))
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            log.warning("tensorflow is not installed: reading %d TFRecord files into memory in Python "
                        "(a run must keep one reader across restarts: their shuffles differ)", len(files))
            own = files[pi::pc] if len(files) >= pc else files
            rows = read_tfrecord_rows(own, cfg.seq_len)
            held = len(rows["input_ids"])
            said_read = said_rows if len(files) < pc else said_host_rows  # fewer files: each host reads all
            if said_read is not None and held != said_read:
                raise rows_not_as_said(rows_from, said_rows, files, f"process {pi} read {held:,} rows, "
                                       f"{said_read:,} by the manifest", file_rows)
            if len(files) < pc:
                rows = {k: v[pi::pc] for k, v in rows.items()}
            total = n_rows if n_rows is not None else len(rows["input_ids"]) * pc
            needed = total // cfg.global_batch_size * (cfg.global_batch_size // pc)
            if len(rows["input_ids"]) < needed:  # files changed since they were counted
                raise rows_not_as_said(rows_from, all_rows if all_rows is not None else total, files,
                                       f"process {pi} read {len(rows['input_ids'])} rows, {needed} an epoch", file_rows)
            source = ArraySource(rows, cfg.global_batch_size, cfg.shuffle_seed, pi, pc, host_rows=True, total_rows=total)
        else:
            source = TFRecordSource(files, cfg.seq_len, n_rows, cfg.global_batch_size, cfg.shuffle_seed,
                                    cfg.shuffle_buffer, pi, pc, max_runs, rows_from, said_host_rows, all_rows, file_rows)
        source.fingerprint = tfrecords_fingerprint(cfg.path, files)
    if source.rows < cfg.global_batch_size:
        raise too_few_rows(cfg.path or "<synthetic>", source.rows, cfg.global_batch_size)
    return source


def too_few_rows(path: str, rows: int, global_batch: int, all_rows: int | None = None, process_count: int = 1,
                 n_files: int = 0) -> DataError:
    """The error for an epoch of ``rows`` (``hosts_rows``) short of a global batch; where the hosts'
    shares of the files are uneven, it says so, since the files themselves may hold enough."""
    uneven = (f" (the smallest of the {process_count} hosts' shares of its {n_files} files holds {rows // process_count:,} "
              f"of their {all_rows:,} rows, and every host reads as many)") if all_rows is not None and all_rows != rows else ""
    return DataError(f"data.path {path!r}: {rows} rows{' an epoch' if uneven else ''}{uneven}, fewer than one global "
                     f"batch of {global_batch}")


def _said_host_rows(manifest_rows: int | None, file_rows: list[int] | None, n_files: int, process_index: int,
                    process_count: int) -> int | None:
    """The rows a manifest gives this host's share of the files (as ``hosts_rows`` shares them:
    its files, or with fewer files than hosts every ``process_count``-th row of them all); None
    where the rows are counted instead (no manifest, or several hosts and no ``shard_rows``)."""
    if manifest_rows is None:
        return None
    if process_count == 1:
        return manifest_rows
    if file_rows is None:
        return None
    if n_files >= process_count:
        return sum(file_rows[process_index::process_count])
    return len(range(process_index, manifest_rows, process_count))


def stop_together(problem: Exception | None, where: str,
                  what: str = "found rows they cannot train on, or could not read them") -> None:
    """Raise ``problem`` on this process and a ``DataError`` on every other one, if any process has
    a problem: the same decision everywhere, since a process that stopped alone would leave the
    others waiting for it in the next collective."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        bad = np.asarray(multihost_utils.process_allgather(np.array(problem is not None)))
        if bad.any() and problem is None:
            problem = DataError(f"{where}: process(es) {np.flatnonzero(bad).tolist()} {what} (their logs say "
                                "which); every process stops")
    if problem is not None:
        raise problem


def check_segment_runs(segment_ids: np.ndarray, max_segments: int, where: str) -> None:
    """Refuse rows with more runs of equal segment id than packed cuDNN attention was built for."""
    runs = count_segment_runs(np.asarray(segment_ids))
    if runs.max(initial=0) > max_segments:
        row = int(np.argmax(runs > max_segments))
        raise DataError(f"{where}, row {row}: {int(runs[row])} runs of segment ids (padding counted) exceed "
                        f"model.max_segments={max_segments}; raise it, or repack the data with "
                        f"max_segments={max_segments}")


def check_token_ids(input_ids: np.ndarray, vocab_size: int, where: str) -> None:
    """Refuse token ids outside the vocabulary: the embedding lookup gives NaN for them, and one
    such row turns the loss, the gradients and then every weight into NaN without an error."""
    if input_ids.size == 0 or (input_ids.min() >= 0 and input_ids.max() < vocab_size):
        return
    row, pos = (int(i[0]) for i in np.nonzero((input_ids < 0) | (input_ids >= vocab_size)))
    raise DataError(f"{where}, row {row}: token id {int(input_ids[row, pos])} at position {pos} is outside the "
                    f"vocabulary (model.vocab_size={vocab_size}); was the data tokenised for another model?")


def steps_per_epoch(source: RowSource, global_batch: int) -> int:
    return source.rows // global_batch


def total_steps(source: RowSource, cfg: DataConfig) -> int:
    return max(int(math.ceil(cfg.epochs * steps_per_epoch(source, cfg.global_batch_size))), 1)


class BatchIterator:
    """Host batches from a position onwards, across epochs; ``position`` is the next batch to read."""

    def __init__(self, source: RowSource, global_batch: int, position: DataPosition = DataPosition()):
        self.source, self.per_epoch = source, steps_per_epoch(source, global_batch)
        self.position = position
        self._it: Iterator[Batch] | None = None

    def __iter__(self) -> "BatchIterator":
        return self

    def __next__(self) -> Batch:
        if self.position.batch >= self.per_epoch:
            self.position, self._it = DataPosition(self.position.epoch + 1, 0), None
        if self._it is None:
            self._it = self.source.host_batches(self.position.epoch, self.position.batch)
        batch = next(self._it)
        self.position = DataPosition(self.position.epoch, self.position.batch + 1)
        return batch

    def check_rows_before(self, batches: int) -> None:
        """Check the rows against the manifest now if reading ``batches`` more never reaches an
        epoch's last batch, where a tf.data source checks them (reading on from epoch 1, an earlier
        process did: the resumed data is the same, by its fingerprint)."""
        if (isinstance(self.source, TFRecordSource) and self.position.epoch == 0 and batches > 0
                and self.position.batch + batches < self.per_epoch):
            self.source.check_host_rows_now()


def to_global(batch: Batch, sharding: jax.sharding.NamedSharding, global_batch: int) -> dict[str, jax.Array]:
    """Per-host rows -> global arrays laid out by ``sharding``."""
    out = {}
    for k, v in batch.items():
        shape = (global_batch,) + v.shape[1:]
        out[k] = jax.make_array_from_process_local_data(sharding, np.asarray(v, np.int32), shape)
    return out

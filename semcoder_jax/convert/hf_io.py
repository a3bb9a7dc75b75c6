"""Tensor-at-a-time reading and writing of Hugging Face weight files.

The ``safetensors`` package memory-maps whole files and only writes a dict held in memory; both
make a 6.7B conversion's resident set grow with the model. The format is a little-endian u64
header length, a JSON header of ``{name: {dtype, shape, data_offsets}}`` and raw bytes, so here a
tensor is read with one ``pread`` into a fresh buffer and a shard is written tensor by tensor
from a header planned up front.
"""

from __future__ import annotations

import collections
import json
import mmap
import os
import struct
from dataclasses import dataclass
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import ml_dtypes
import numpy as np

from semcoder_jax.errors import SemcoderError

SAFE_INDEX = "model.safetensors.index.json"
SAFE_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"

_ST_TO_NP: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NP_TO_ST = {v: k for k, v in _ST_TO_NP.items()}

TORCH_DTYPE_NAMES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def numpy_dtype(name: str) -> np.dtype:
    """``float32`` / ``bfloat16`` / ``float16`` (also torch spellings such as ``torch.bfloat16``)."""
    key = name.removeprefix("torch.")
    if key not in TORCH_DTYPE_NAMES:
        raise SemcoderError(f"dtype {name!r} is not one of {', '.join(TORCH_DTYPE_NAMES)}")
    return np.dtype(TORCH_DTYPE_NAMES[key])


def dtype_name(dtype: np.dtype) -> str:
    return np.dtype(dtype).name


@dataclass(frozen=True)
class TensorInfo:
    name: str
    file: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the data in ``file``; -1 for torch files

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > file_size - 8:  # e.g. a Git LFS pointer: reading n bytes would ask for exabytes
                raise ValueError(f"header length {n} exceeds the file's {file_size} bytes; a Git LFS pointer?")
            header = json.loads(f.read(n))
    except (OSError, struct.error, ValueError) as e:  # ValueError covers JSON and UTF-8 decoding errors
        raise SemcoderError(f"{path}: not a readable safetensors file ({e})") from None
    if not isinstance(header, dict):
        raise SemcoderError(f"{path}: not a readable safetensors file (its header is not a JSON object)")
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = meta["dtype"], tuple(int(d) for d in meta["shape"]), meta["data_offsets"]
            if not (type(begin) is int and type(end) is int and 0 <= begin <= end):  # -8 would read the header as weights
                raise ValueError("data_offsets must be integers 0 <= begin <= end")
        except (KeyError, TypeError, ValueError) as e:
            raise SemcoderError(f"{path}: tensor {name} has a malformed header entry {meta!r} ({e!r})") from None
        if dtype not in _ST_TO_NP:
            raise SemcoderError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        info = TensorInfo(name, path, _ST_TO_NP[dtype], shape, base + begin)
        if end - begin != info.nbytes:
            raise SemcoderError(f"{path}: tensor {name} byte range does not match its shape {list(info.shape)}")
        if base + end > file_size:
            raise SemcoderError(f"{path}: truncated, tensor {name} ends past the end of the file")
        out[name] = info
    return out


class HFWeights:
    """The tensors of a HF checkpoint folder, read one at a time.

    safetensors (one file or sharded with an index) is preferred; ``pytorch_model.bin`` files are
    read through torch (memory-mapped) when no safetensors exist.
    """

    def __init__(self, hf_dir: str | Path):
        self.dir = Path(hf_dir)
        if not self.dir.is_dir():
            raise SemcoderError(f"--hf-dir {self.dir}: not a directory")
        self.tensors: dict[str, TensorInfo] = {}
        self._torch: dict[Path, dict] = {}
        files = self._weight_files()
        for path in files:
            if path.suffix == ".safetensors":
                self.tensors.update(read_safetensors_header(path))
            else:
                self._load_torch(path)

    def _weight_files(self) -> list[Path]:
        for index, single in ((SAFE_INDEX, SAFE_SINGLE), (BIN_INDEX, BIN_SINGLE)):
            if (self.dir / index).exists():
                try:
                    weight_map = json.loads((self.dir / index).read_text())["weight_map"]
                except (json.JSONDecodeError, KeyError) as e:
                    raise SemcoderError(f"{self.dir / index}: invalid index ({e})") from None
                files = sorted({self.dir / f for f in weight_map.values()})
                for f in files:
                    if not f.exists():
                        raise SemcoderError(f"{self.dir / index}: lists missing shard {f.name}")
                return files
            if (self.dir / single).exists():
                return [self.dir / single]
        found = sorted(p.name for p in self.dir.glob("*.safetensors"))
        if found:
            return [self.dir / f for f in found]
        raise SemcoderError(f"{self.dir}: no {SAFE_SINGLE}, {SAFE_INDEX}, {BIN_SINGLE} or {BIN_INDEX}")

    def _load_torch(self, path: Path) -> None:
        import torch

        try:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        except Exception as e:  # torch raises many types for a bad file
            raise SemcoderError(f"{path}: cannot load with torch ({str(e).splitlines()[0]})") from None
        self._torch[path] = state
        for name, t in state.items():
            dtype = _torch_to_numpy_dtype(t.dtype, path, name)
            self.tensors[name] = TensorInfo(name, path, dtype, tuple(t.shape), -1)

    def read(self, name: str, *, mapped: bool = False) -> np.ndarray:
        """A fresh array, or with ``mapped`` a read-only view of the file's pages (safetensors only).

        A mapped tensor costs neither a copy nor fresh (kernel-zeroed) memory: meant for a caller
        that copies it at once, e.g. into its transpose. The mapping goes with the last reference.
        """
        info = self.tensors[name]
        if info.offset < 0:
            return _torch_to_numpy(self._torch[info.file][name])
        if mapped:
            return _mapped(info)
        out = np.empty(info.shape, info.dtype)
        with open(info.file, "rb", buffering=0) as f:
            view = memoryview(out.reshape(-1).view(np.uint8))
            got = 0
            while got < view.nbytes:
                n = os.preadv(f.fileno(), [view[got:]], info.offset + got)
                if n <= 0:
                    raise SemcoderError(f"{info.file}: truncated data for tensor {name}")
                got += n
        return out

    def will_need(self, name: str) -> None:
        """Start reading a tensor into the page cache in the background (a later ``read`` waits less)."""
        self._advise(name, "POSIX_FADV_WILLNEED")

    def forget(self, name: str) -> None:
        """Drop a tensor's pages from the page cache (a conversion reads each one once).

        Otherwise, with input and output larger than memory, the kernel evicts the least recently
        used pages: the tensors not read yet rather than the ones already converted.
        """
        self._advise(name, "POSIX_FADV_DONTNEED")

    def _advise(self, name: str, advice: str) -> None:
        info = self.tensors[name]
        if info.offset < 0 or not hasattr(os, advice):
            return
        with open(info.file, "rb", buffering=0) as f:
            os.posix_fadvise(f.fileno(), info.offset, info.nbytes, getattr(os, advice))


def _mapped(info: TensorInfo) -> np.ndarray:
    if info.nbytes == 0:
        return np.empty(info.shape, info.dtype)
    start = info.offset - info.offset % mmap.ALLOCATIONGRANULARITY
    with open(info.file, "rb", buffering=0) as f:
        mapping = mmap.mmap(f.fileno(), info.offset + info.nbytes - start, access=mmap.ACCESS_READ, offset=start)
    if hasattr(mapping, "madvise"):
        mapping.madvise(mmap.MADV_WILLNEED)  # read ahead the whole tensor if it is not cached
    return np.frombuffer(mapping, info.dtype, info.count, info.offset - start).reshape(info.shape)


def _torch_to_numpy_dtype(torch_dtype, path: Path, name: str) -> np.dtype:
    import torch

    table = {
        torch.float32: np.float32,
        torch.float16: np.float16,
        torch.bfloat16: ml_dtypes.bfloat16,
        torch.float64: np.float64,
        torch.int64: np.int64,
        torch.int32: np.int32,
        torch.bool: np.bool_,
    }
    if torch_dtype not in table:
        raise SemcoderError(f"{path}: tensor {name} has unsupported dtype {torch_dtype}")
    return np.dtype(table[torch_dtype])


def _torch_to_numpy(t) -> np.ndarray:
    import torch

    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


# ---- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorPlan:
    """One output tensor: its bytes come from ``produce()`` only when the shard is written."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    produce: Callable[[], np.ndarray]
    release: Callable[[np.ndarray], None] | None = None  # called with the produced array once written

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


def plan_shards(tensors: Sequence[TensorPlan], max_shard_bytes: int) -> list[list[TensorPlan]]:
    """Consecutive groups of at most ``max_shard_bytes`` (a larger tensor gets a shard alone)."""
    shards: list[list[TensorPlan]] = [[]]
    size = 0
    for t in tensors:
        if shards[-1] and size + t.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return [s for s in shards if s]


def _header_bytes(tensors: Iterable[TensorPlan]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for t in tensors:
        header[t.name] = {
            "dtype": _NP_TO_ST[np.dtype(t.dtype)],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + t.nbytes],
        }
        offset += t.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def prefetched(producers: Sequence[Callable[[], np.ndarray]]) -> Iterator[np.ndarray]:
    """``p()`` for each producer, the next one computed in a thread while the caller uses this one.

    Reading, casting and transposing (numpy and TensorStore release the GIL) then overlap the
    caller's writes; at most two results are alive at once.
    """
    if not producers:
        return
    with ThreadPoolExecutor(1) as pool:
        upcoming = pool.submit(producers[0])
        for i in range(len(producers)):
            value = upcoming.result()
            if i + 1 < len(producers):
                upcoming = pool.submit(producers[i + 1])
            yield value
            del value


class _WriteBehind:
    """Starts writeback of each range written and drops the range written two before it.

    ``POSIX_FADV_DONTNEED`` starts writeback of dirty pages and drops clean ones, so a range is
    asked twice: its pages are clean by the second time. Output then does not fill the page cache
    and push out input not read yet (a 13 GB export on a machine with 23 GB of memory).
    """

    LAG = 2

    def __init__(self, fd: int):
        self.fd = fd
        self.ranges: collections.deque[tuple[int, int]] = collections.deque()

    def written(self, start: int, nbytes: int) -> None:
        if not hasattr(os, "posix_fadvise") or nbytes == 0:
            return
        os.posix_fadvise(self.fd, start, nbytes, os.POSIX_FADV_DONTNEED)
        self.ranges.append((start, nbytes))
        if len(self.ranges) > self.LAG:
            os.posix_fadvise(self.fd, *self.ranges.popleft(), os.POSIX_FADV_DONTNEED)


def write_safetensors(path: Path, tensors: Sequence[TensorPlan], *, drop_cache: bool = False) -> None:
    """One safetensors file, producing and writing one tensor at a time.

    ``drop_cache``: write back each tensor soon and drop it from the page cache (``_WriteBehind``).
    """
    with open(path, "wb") as f:
        f.write(_header_bytes(tensors))
        behind = _WriteBehind(f.fileno()) if drop_cache else None
        for t, produced in zip(tensors, prefetched([t.produce for t in tensors])):
            arr = np.asarray(produced, order="C")
            del produced
            if arr.shape != tuple(t.shape) or arr.dtype != np.dtype(t.dtype):
                raise SemcoderError(
                    f"tensor {t.name}: produced {arr.dtype}{list(arr.shape)}, planned {np.dtype(t.dtype)}{list(t.shape)}"
                )
            start = f.tell()
            f.write(memoryview(arr.reshape(-1).view(np.uint8)))
            if behind is not None:
                behind.written(start, arr.nbytes)
            if t.release is not None:
                t.release(arr)
            del arr


def write_sharded(
    out_dir: Path, tensors: Sequence[TensorPlan], max_shard_bytes: int, *, drop_cache: bool = False
) -> list[Path]:
    """``model.safetensors`` or ``model-0000i-of-0000n.safetensors`` plus the index HF expects."""
    shards = plan_shards(tensors, max_shard_bytes)
    if len(shards) == 1:
        names = [SAFE_SINGLE]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map: dict[str, str] = {}
    for name, shard in zip(names, shards):
        write_safetensors(out_dir / name, shard, drop_cache=drop_cache)
        weight_map.update({t.name: name for t in shard})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(t.nbytes for t in tensors)}, "weight_map": weight_map}
        (out_dir / SAFE_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return [out_dir / n for n in names]

"""Layer-at-a-time writing and reading of the ``params`` item of a checkpoint.

Writing: a ``StreamedArray`` is a param that is never whole in memory; its Orbax type handler
(a ``NumpyHandler`` with the same on-disk format and typestr) writes it block by block through
TensorStore with one chunk per block, exactly as Orbax writes an array sharded along its first
axis. The result is an ordinary checkpoint: ``StandardRestore`` and ``load_params`` read it.
Reading: each param is opened as a TensorStore array and sliced one layer at a time.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from semcoder_jax.checkpoint import MODEL_CONFIG_ITEM, PARAMS_ITEM, params_metadata
from semcoder_jax.convert.hf_io import prefetched
from semcoder_jax.convert.transpose import pooled_root, recycle_unreferenced
from semcoder_jax.model.config import ModelConfig

# Block writes in flight: overlaps producing the next block with encoding/writing these.
_MAX_PENDING_WRITES = 3


@dataclass
class StreamedArray:
    """An array of ``shape`` whose block ``i`` (rows ``i*block_rows`` ...) comes from ``block(i)``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    block: Callable[[int], np.ndarray]
    block_rows: int = 1

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_blocks(self) -> int:
        return -(-self.shape[0] // self.block_rows)


def _handler_class():
    import orbax.checkpoint as ocp
    import tensorstore as ts

    class StreamedArrayHandler(ocp.type_handlers.NumpyHandler):
        """Writes ``StreamedArray`` s as ``np.ndarray`` params, one block (= one chunk) at a time."""

        async def serialize(self, values, infos, args=None):
            args = args or [ocp.type_handlers.SaveArgs()] * len(values)
            return [ocp.future.CommitFutureAwaitingContractedSignals(
                self._write_all(values, infos, args), name="streamed_array_handler")]

        async def _write_all(self, values, infos, args):
            import jax

            # One queue of writes for all params: the next param's blocks are produced while the
            # last ones of this param are still being encoded and written.
            pending: collections.deque = collections.deque()
            written: list[np.ndarray] = []  # pooled buffers under committed blocks

            async def settle(limit: int) -> None:
                while len(pending) > limit:
                    future, root = pending.popleft()
                    await future
                    if root is not None:
                        written.append(root)
                    del future, root
                recycle_unreferenced(written)  # the ones TensorStore let go of serve later blocks

            # Every array is created before any block is written: with writes in flight, opening
            # one more in the OCDBT database waits for them (~0.5 s each on a small machine).
            stores = []
            for value, info, arg in zip(values, infos, args):
                await info.await_path_creation()
                use_ocdbt = bool(info.is_ocdbt_checkpoint)
                spec = ocp.type_handlers.get_json_tspec_write(
                    info,
                    use_ocdbt=use_ocdbt,
                    global_shape=value.shape,
                    local_shape=(min(value.block_rows, value.shape[0]), *value.shape[1:]),
                    dtype=value.dtype,
                    process_index=jax.process_index() if use_ocdbt else None,
                    metadata_key=self._metadata_key,
                    arg=arg,
                )
                stores.append(await ts.open(ts.Spec(spec), create=True, open=True, context=info.ts_context))
            try:
                for value, info, store in zip(values, infos, stores):
                    blocks = prefetched([functools.partial(value.block, i) for i in range(value.num_blocks)])
                    try:
                        for i, produced in enumerate(blocks):
                            start = i * value.block_rows
                            block = np.asarray(produced, dtype=value.dtype)
                            del produced
                            stop = start + block.shape[0]
                            if block.shape[1:] != value.shape[1:] or stop > value.shape[0]:
                                raise ValueError(f"{info.name}: block {i} has shape {block.shape}, expected rows of {value.shape[1:]}")
                            # the block is never modified: TensorStore may keep it rather than copy it
                            pending.append((store[start:stop].write(block, can_reference_source_data_indefinitely=True),
                                            pooled_root(block)))
                            del block
                            await settle(_MAX_PENDING_WRITES - 1)
                    finally:
                        blocks.close()
                await settle(0)
            finally:  # on failure too, so no write lands after the caller removed the folder
                while pending:
                    try:
                        await pending.popleft()[0]
                    except Exception:  # noqa: BLE001 - the first error is the one raised
                        pass

    return StreamedArrayHandler


def save_streamed_params(
    directory: Path, step: int, params: Any, model_config: ModelConfig, *, compress: bool = False
) -> None:
    """Step ``step`` of a manager directory from a tree of ``StreamedArray`` s.

    Uncompressed by default: zstd on bf16 weights saves ~20% of disk but is most of the CPU time
    of a conversion on a small machine.
    """
    import jax
    import orbax.checkpoint as ocp

    th = ocp.type_handlers
    defaults = [(ty, th.get_type_handler(ty)) for ty in th.supported_types()]
    registry = th.create_type_handler_registry(*defaults, (StreamedArray, _handler_class()()))
    # This process writes alone (a multi-host run's process 0 converts its hf: start while the
    # others wait): Orbax's default barriers over all processes would meet their collectives.
    alone = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(), active_processes={jax.process_index()})
    directory.mkdir(parents=True, exist_ok=True)  # Orbax's create=True refuses active_processes
    options = ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False, multiprocessing_options=alone)
    handlers = {
        PARAMS_ITEM: ocp.PyTreeCheckpointHandler(type_handler_registry=registry, use_compression=compress,
                                                 multiprocessing_options=alone),
        MODEL_CONFIG_ITEM: ocp.JsonCheckpointHandler(multiprocessing_options=alone),
    }
    with ocp.CheckpointManager(directory.absolute(), options=options, item_handlers=handlers) as manager:
        manager.save(step, args=ocp.args.Composite(**{
            PARAMS_ITEM: ocp.args.PyTreeSave(params),
            MODEL_CONFIG_ITEM: ocp.args.JsonSave(dataclasses.asdict(model_config)),
        }), force=True)
        manager.wait_until_finished()


class ParamReader:
    """Slices of the params of one Orbax PyTree folder, read through TensorStore."""

    def __init__(self, path: Path, cache_bytes: int = 1 << 30):
        import orbax.checkpoint as ocp

        self.path = Path(path).absolute()
        self.metadata = params_metadata(self.path)
        self._ocdbt = ocp.type_handlers.is_ocdbt_checkpoint(self.path)
        self._zarr3 = bool(getattr(self._tree_metadata(), "use_zarr3", False))
        self._cache_bytes = int(cache_bytes)
        self._stores: dict[str, Any] = {}

    def _context(self, cache_bytes: int):
        import tensorstore as ts

        return ts.Context({
            "file_io_concurrency": {"limit": 128},
            "cache_pool#ocdbt": {"total_bytes_limit": 100_000_000},
            "cache_pool": {"total_bytes_limit": cache_bytes},
        })

    def _tree_metadata(self):
        import orbax.checkpoint as ocp

        meta = ocp.PyTreeCheckpointer().metadata(self.path)
        return getattr(meta, "item_metadata", meta)

    def has(self, path: tuple[str, ...]) -> bool:
        node = self.metadata
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return False
            node = node[key]
        return hasattr(node, "shape")

    def shape(self, path: tuple[str, ...]) -> tuple[int, ...]:
        node = self.metadata
        for key in path:
            node = node[key]
        return tuple(node.shape)

    def dtype(self, path: tuple[str, ...]) -> np.dtype:
        return np.dtype(self.store(path).dtype.numpy_dtype)

    def _open(self, name: str, cache_bytes: int):
        import orbax.checkpoint as ocp
        import tensorstore as ts

        context = self._context(cache_bytes)
        info = ocp.type_handlers.ParamInfo(
            name=name, parent_dir=self.path, is_ocdbt_checkpoint=self._ocdbt,
            use_zarr3=self._zarr3, ts_context=context,
        )
        spec = ocp.type_handlers.get_json_tspec_read(info, use_ocdbt=self._ocdbt)
        return ts.open(ts.Spec(spec), open=True, read=True, context=context).result()

    def store(self, path: tuple[str, ...]):
        """The TensorStore array of one param; decoded chunks are cached only when a chunk spans layers."""
        name = ".".join(path)
        if name not in self._stores:
            store = self._open(name, 0)
            if store.rank and store.chunk_layout.read_chunk.shape[0] > 1:
                store = self._open(name, self._cache_bytes)
            self._stores[name] = store
        return self._stores[name]

    def close(self, path: tuple[str, ...]) -> None:
        self._stores.pop(".".join(path), None)

    def read(self, path: tuple[str, ...], index: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
        """The param (or its slice ``index``), in a new array or in ``out`` (of its shape and dtype)."""
        store = self.store(path)
        source = store if index is None else store[index]
        if out is None:
            return np.asarray(source.read().result())
        import tensorstore as ts

        ts.array(out, copy=False, write=True).write(source).result()
        return out


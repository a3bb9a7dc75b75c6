"""The training loop: set-up (mesh, data, state), steps, metrics, checkpoints, pre-emption."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from semcoder_jax.config import ConfigError, save_config
from semcoder_jax.errors import SemcoderError
from semcoder_jax.model.config import ModelConfig
from semcoder_jax.train import checkpointing
from semcoder_jax.train.config import TrainConfig
from semcoder_jax.train.input import (
    BatchIterator,
    DataError,
    DataPosition,
    RowSource,
    TFRecordSource,
    check_segment_runs,
    check_token_ids,
    make_source,
    steps_per_epoch,
    stop_together,
    to_global,
    total_steps,
)
from semcoder_jax.train.mesh import create_mesh
from semcoder_jax.train.metrics import MetricsWriter, StepProfiler, mfu, peak_tflops_per_device
from semcoder_jax.train.optimizer import make_optimizer, warmup_steps
from semcoder_jax.train.sharding import batch_sharding, logical_to_shardings, opt_state_shardings
from semcoder_jax.train.step import State, make_eval_step, make_loss_fn, make_train_step, mesh_context
from semcoder_jax.train.validation import eval_batches, load_validation_rows

log = logging.getLogger(__name__)

ARCH_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
               "head_size", "tie_word_embeddings")
KILL_AT_STEP_ENV = "SEMCODER_DEBUG_KILL_AT_STEP"  # tests: SIGKILL itself once step k is checkpointed


class TrainingDiverged(SemcoderError):
    """A step's loss or gradient norm is not finite: every later step would train on NaN weights."""


def check_same_architecture(expected: ModelConfig, got: ModelConfig, source: str) -> None:
    for f in ARCH_FIELDS:
        if getattr(expected, f) != getattr(got, f):
            raise ConfigError(f"{source}: model.{f} is {getattr(got, f)} but the train config says {getattr(expected, f)}")


def _check_batch_divides(cfg: TrainConfig, mesh: jax.sharding.Mesh) -> None:
    shards = mesh.shape["data"] * mesh.shape["fsdp"]
    micro = cfg.data.global_batch_size // cfg.data.micro_batches
    if micro % shards:
        raise ConfigError(
            f"data.global_batch_size / data.micro_batches = {micro} rows per micro-batch does not divide "
            f"over the {shards} data x fsdp shards of the mesh"
        )


class Trainer:
    """Everything is checked and laid out in ``__init__``; ``run()`` does the compute."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg.validate()
        if cfg.compilation_cache_dir:  # before the first compile: a restart loads its programs
            jax.config.update("jax_compilation_cache_dir", os.path.expanduser(cfg.compilation_cache_dir))
        self.run_dir = Path(cfg.run_dir)
        self.mesh = create_mesh(cfg.mesh)
        self.rules = cfg.mesh.rules()
        _check_batch_divides(cfg, self.mesh)
        from semcoder_jax.model import llama

        # Rows may hold at most this many segment runs (0: any number).
        self.max_segments = cfg.model.max_segments if llama.uses_packed_attention(cfg.model) else 0
        self.source = self._open_source()
        self.validation_rows = (load_validation_rows(cfg, cfg.model.vocab_size, self.max_segments)
                                if cfg.validation.every else None)
        # Only a source that could not tell its rows' runs up front has each batch checked.
        self.check_batch_runs = bool(self.max_segments) and self.source.max_runs is None
        self.total_steps = cfg.max_steps if cfg.max_steps is not None else total_steps(self.source, cfg.data)
        self.optimizer, self.schedule = make_optimizer(cfg.optimizer, self.total_steps)
        warm = warmup_steps(cfg.optimizer, self.total_steps)
        if cfg.optimizer.warmup_steps > warm:
            log.warning("optimizer.warmup_steps=%d shortened to %d, to end before the last of the run's %d steps",
                        cfg.optimizer.warmup_steps, warm, self.total_steps)
        self.batch_sharding = batch_sharding(self.mesh, self.rules)
        self.llama = llama
        rng = jax.random.PRNGKey(cfg.seed)
        self.abstract_params = jax.eval_shape(lambda r: llama.init_params(cfg.model, r), rng)
        self.params_shardings = logical_to_shardings(llama.logical_axes(cfg.model), self.abstract_params, self.mesh, self.rules)
        abstract_opt = jax.eval_shape(self.optimizer.init, self.abstract_params)
        self.state_shardings: State = {
            "params": self.params_shardings,
            "opt_state": opt_state_shardings(abstract_opt, self.params_shardings, self.mesh),
        }
        self.abstract_opt_state = checkpointing.abstract_like(abstract_opt, self.state_shardings["opt_state"])
        self.abstract_params = checkpointing.abstract_like(self.abstract_params, self.params_shardings)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.manager = checkpointing.open_manager(self.run_dir / cfg.checkpoint.dir, cfg.checkpoint)
        self.step_fn = make_train_step(cfg.model, self.optimizer, self.mesh, self.rules, self.state_shardings,
                                       micro_batches=cfg.data.micro_batches, z_loss=cfg.z_loss,
                                       loss_chunk_size=cfg.loss_chunk_size)
        self.constrain_activations = cfg.mesh.constrain_activations and self._model_traces_under_mesh()
        if self.validation_rows is not None:
            self.eval_fn = make_eval_step(cfg.model, self.mesh, self.rules, self.params_shardings,
                                          loss_chunk_size=cfg.loss_chunk_size)
        self._stop_requested = False

    def _open_source(self) -> RowSource:
        """The training rows, refused on every process if any process cannot read or train on its
        share: hosts read different files, and one that stopped alone would leave the others waiting
        in the first step's collectives."""
        cfg = self.cfg
        where = f"data.path {cfg.data.path or '<synthetic>'!r}"
        source, problem = None, None
        try:
            source = make_source(cfg.data, cfg.model.vocab_size, max_segments=self.max_segments)
            if self.max_segments and (source.max_runs or 0) > self.max_segments:
                raise DataError(f"{where}: rows hold up to {source.max_runs} runs of segment ids (padding counted), "
                                f"more than model.max_segments={self.max_segments} allows")
        except Exception as e:  # noqa: BLE001 - whatever it is, every process must stop (this one re-raises it)
            problem = e
        stop_together(problem, where)
        return source

    def _model_traces_under_mesh(self) -> bool:
        """Whether the model's activation constraints trace under the mesh (else run without them)."""
        cfg = self.cfg
        shape = jax.ShapeDtypeStruct((cfg.data.global_batch_size // cfg.data.micro_batches, cfg.data.seq_len), jnp.int32)
        loss_fn = make_loss_fn(cfg.model, cfg.z_loss, cfg.loss_chunk_size)
        batch = {k: shape for k in ("input_ids", "loss_mask", "segment_ids", "positions")}
        try:
            with mesh_context(self.mesh, self.rules, True):
                jax.eval_shape(jax.value_and_grad(loss_fn, has_aux=True), self.abstract_params, batch, 1.0)
            return True
        except Exception as e:  # noqa: BLE001 - a model bug must not stop training; say so loudly
            warnings.warn(f"activation sharding constraints disabled: the model does not trace under the mesh "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:300]})")
            return False

    def summary(self) -> str:
        """What this run is about to do, logged at its start: the figures to check before a long run."""
        cfg, m, d = self.cfg, self.cfg.model, self.cfg.data
        state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((self.abstract_params, self.abstract_opt_state)))
        warm = warmup_steps(cfg.optimizer, self.total_steps)
        latest = self.manager.latest_step()
        start = f"init_from {cfg.init_from}" if latest is None else f"resumes from its checkpoint at step {latest}"
        return "\n".join([
            f"model: {m.num_params():,} parameters ({m.num_layers} layers, hidden {m.hidden_size}), "
            f"{m.param_dtype} weights, {m.dtype} compute, attention {m.attention_kernel(seq_len=d.seq_len)}, remat {m.remat_policy}",
            f"mesh: {dict(self.mesh.shape)} over {self.mesh.devices.size} {self.mesh.devices.flat[0].device_kind} "
            f"devices, {jax.process_count()} process(es)",
            f"data: {d.path or '<synthetic>'}: {self.source.rows:,} rows of {d.seq_len} tokens; batch "
            f"{d.global_batch_size} rows ({d.micro_batches} micro-batch(es)), {d.global_batch_size * d.seq_len:,} "
            f"tokens a step, {steps_per_epoch(self.source, d.global_batch_size):,} steps an epoch",
            f"schedule: {self.total_steps:,} steps; lr {cfg.optimizer.lr:g}, {warm} warm-up steps, cosine to "
            f"{cfg.optimizer.min_lr:g}",
            f"state: {_size(state_bytes)} of weights and optimiser moments, "
            f"{_size(state_bytes / self.mesh.devices.size)} a device when fully sharded",
            f"run folder: {self.run_dir} ({start})",
        ])

    # ---- state ---------------------------------------------------------------------------------
    def _initial_params(self) -> Any:
        cfg = self.cfg
        if cfg.init_from == "scratch":
            init = jax.jit(lambda r: self.llama.init_params(cfg.model, r), out_shardings=self.params_shardings)
            return init(jax.random.PRNGKey(cfg.seed))
        if cfg.init_from.startswith("hf:"):
            src = self._hf_as_orbax(cfg.init_from[3:])
        else:
            src = cfg.init_from[len("orbax:"):]
        from semcoder_jax.checkpoint import load_params, read_model_config

        head, _, tail = src.rpartition("@")
        src, step = (head, int(tail)) if head and tail.isdigit() else (src, None)  # a folder may hold an "@"
        # Before reading any array: shapes of another architecture fail deep inside Orbax instead.
        check_same_architecture(cfg.model, read_model_config(src, step), cfg.init_from)
        params, _ = load_params(src, step, dtype=cfg.model.param_dtype, sharding=self.params_shardings)
        return jax.device_put(params, self.params_shardings)

    def _hf_as_orbax(self, src: str) -> str:
        """Convert a HF folder, or a hub id (``ID[@REVISION]``), once into ``run_dir/hf_import``,
        streamed, for a sharded load. A hub id loads as ``semcoder eval`` and ``generate`` load one:
        at the commit its revision (default: main) names now, which ``init_from`` then names too, so
        that the run's config.yaml records it."""
        out, record = self.run_dir / "hf_import", self.run_dir / "hf_import.source"
        problem = None
        if jax.process_index() == 0:
            try:
                folder, source, where = src, str(Path(src).absolute()), f"init_from {self.cfg.init_from!r}"
                if not Path(src).exists():
                    from semcoder_jax.hub import hub_commit, hub_snapshot, split_revision

                    repo_id, revision = split_revision(src)
                    try:
                        commit = hub_commit(repo_id, revision)
                        source, folder = f"{repo_id}@{commit}", None
                    except SemcoderError as e:
                        raise SemcoderError(f"{where}: {e}") from None
                    log.info("%s: hub model %s at commit %s", where, repo_id, commit)
                    self.cfg = dataclasses.replace(self.cfg, init_from=f"hf:{source}")
                if not (out.exists() and record.exists() and record.read_text() == source):
                    from semcoder_jax.convert import hf_to_orbax

                    record.unlink(missing_ok=True)  # an import cut short must not pass for the one recorded
                    if out.exists():  # converted from another init_from
                        log.info("%s was converted from another source than %s: converting again", out, source)
                        shutil.rmtree(out)
                    if folder is None:  # fetched only now: a run folder converted before needs no weights
                        try:
                            folder = hub_snapshot(repo_id, commit)
                        except SemcoderError as e:
                            raise SemcoderError(f"{where}: {e}") from None
                    hf_to_orbax(folder, out, dtype=self.cfg.model.param_dtype)
                    record.write_text(source)
            except Exception as e:  # noqa: BLE001 - the other processes wait for this one: all must stop
                problem = e
        # Also the barrier: the others read run_dir/hf_import only once it is written.
        stop_together(problem, f"init_from {self.cfg.init_from!r}", "could not convert it")
        return str(out)

    def _init_from_as_started(self) -> TrainConfig:
        """On a resume, ``init_from=hf:ID`` with the commit this run folder was started from (its
        import's record), so that config.yaml, written again, keeps naming it."""
        src, record = self.cfg.init_from.removeprefix("hf:"), self.run_dir / "hf_import.source"
        if src == self.cfg.init_from or Path(src).exists() or not record.exists():
            return self.cfg
        started = record.read_text()
        if started.partition("@")[0] != src.partition("@")[0]:  # imported from another model: not this start
            return self.cfg
        return dataclasses.replace(self.cfg, init_from=f"hf:{started}")

    def initial_state(self) -> tuple[int, State, DataPosition]:
        """Resume from the run folder's latest checkpoint, else start from ``init_from``."""
        latest = self.manager.latest_step()
        if latest is not None:
            from semcoder_jax.checkpoint import read_model_config

            where = f"checkpoint {self.manager.directory} step {latest}"
            check_same_architecture(self.cfg.model, read_model_config(self.manager.directory, latest), where)
            try:
                params, opt_state, data_state = checkpointing.restore(self.manager, latest, self.abstract_params,
                                                                      self.abstract_opt_state)
            except ValueError as e:  # Orbax: the saved trees have another structure (architecture is checked above)
                raise ConfigError(f"{where}: its optimiser state does not fit this config's optimizer (is "
                                  f"optimizer.clip_norm > 0 in one run and not in the other?); start a new run_dir "
                                  f"with init_from=orbax:{self.manager.directory}") from e
            self._check_same_data_order(data_state, where)
            if data_state.get("total_steps", self.total_steps) != self.total_steps:
                log.warning("%s was trained on a %d-step schedule; this run's has %d steps, which the learning rate "
                            "follows from step %d on", where, data_state["total_steps"], self.total_steps, latest + 1)
            log.info("resuming from %s step %d", self.manager.directory, latest)
            self.cfg = self._init_from_as_started()
            return latest, {"params": params, "opt_state": opt_state}, DataPosition.from_json(data_state)
        params = self._initial_params()
        opt_state = jax.jit(self.optimizer.init, out_shardings=self.state_shardings["opt_state"])(params)
        return 0, {"params": params, "opt_state": opt_state}, DataPosition()

    def _data_order(self) -> dict[str, Any]:
        """What fixes the batch at a data position; a resumed run must agree with its checkpoint on it."""
        data = self.cfg.data
        tf_data = isinstance(self.source, TFRecordSource)
        order = {"rows": self.source.rows, "global_batch_size": data.global_batch_size, "shuffle_seed": data.shuffle_seed,
                 "processes": jax.process_count(),  # each process reads its own share of the files
                 "data": self.source.fingerprint,  # the same row count read from other (or re-packed) files
                 "reader": "tf.data" if tf_data else "python"}  # their shuffles differ
        if tf_data:  # tf.data's shuffle: the buffer decides the order too
            order["shuffle_buffer"] = data.shuffle_buffer
        return order

    def _check_same_data_order(self, data_state: dict[str, Any], where: str) -> None:
        for key, value in self._data_order().items():
            saved = data_state.get(key, value)  # checkpoints from before these were recorded
            if saved != value:
                name = {"rows": "the training data's row count", "processes": "the number of processes",
                        "data": "the training data (file names, sizes, checksums)",
                        "reader": "the TFRecord reader (tf.data, or python without TensorFlow)"}.get(key, f"data.{key}")
                raise ConfigError(f"{where}: {name} was {saved} but is {value} now, so the run cannot resume where "
                                  f"it stopped; start a new run_dir with init_from=orbax:{self.manager.directory}")

    def save(self, step: int, state: State, position: DataPosition) -> None:
        checkpointing.save(self.manager, step, state["params"], state["opt_state"],
                           {**position.to_json(), **self._data_order(), "total_steps": self.total_steps}, self.cfg.model)

    def evaluate(self, params: Any) -> dict[str, Any]:
        """The validation loss (token-weighted cross-entropy) of ``params`` and its target count."""
        cfg = self.cfg
        rows = cfg.data.global_batch_size // cfg.data.micro_batches
        total = None
        with mesh_context(self.mesh, self.rules, self.constrain_activations):
            for host_batch in eval_batches(self.validation_rows, rows, jax.process_index(), jax.process_count(),
                                           cfg.validation.max_batches, cfg.data.pad_id):
                sums = self.eval_fn(params, to_global(host_batch, self.batch_sharding, rows))
                total = sums if total is None else total + sums
        total = jax.device_get(total)
        return {"eval_loss": float(total.loss) / max(float(total.weight), 1.0), "eval_tokens": int(total.weight)}

    def _read_host_batch(self, batches: BatchIterator) -> dict[str, Any]:
        """This host's next rows, read and checked (token ids, segment runs). Several processes: all
        stop at the same step if any cannot read or train on its rows, since one that stopped alone
        would leave the others waiting in the step's collectives."""
        where, host_batch, problem = f"data.path {self.cfg.data.path or '<synthetic>'!r}", None, None
        try:
            host_batch = next(batches)
            at = batches.position  # after the read: an epoch's end rolls over inside it
            where += f": epoch {at.epoch}, batch {at.batch - 1}"
            check_token_ids(host_batch["input_ids"], self.cfg.model.vocab_size, where)
            if self.check_batch_runs:
                check_segment_runs(host_batch["segment_ids"], self.max_segments, where)
        except Exception as e:  # noqa: BLE001 - a shard cut off, off the schema or unreadable is found only as it is read
            problem = e
        stop_together(problem, where)
        return host_batch

    def _write_metrics(self, writer: MetricsWriter, step: int, record: dict[str, Any]) -> None:
        """Process 0 writes a logged step's record; if that fails (a full disk, W&B), every process
        stops at this step: the others would wait for it in the next step's collectives."""
        problem = None
        try:
            writer.write(step, record)
        except Exception as e:  # noqa: BLE001 - whatever it is, every process must stop (this one re-raises it)
            problem = e
        stop_together(problem, f"run_dir {str(self.run_dir)!r}: step {step}", "could not write the step's metrics "
                      "(metrics.jsonl, TensorBoard, W&B)")

    def _stop_if_not_finite(self, history: list[dict[str, Any]], last_step: int) -> None:
        """Raise ``TrainingDiverged`` naming the first of ``history``'s steps (ending at ``last_step``)
        whose loss or gradient norm is NaN or infinite, before that state is checkpointed."""
        first = last_step - len(history) + 1
        for i, m in enumerate(history):
            loss, norm = float(m["loss"]), float(m["grad_norm"])
            if not (math.isfinite(loss) and math.isfinite(norm)):
                latest = self.manager.latest_step()
                kept = (f"the run's last checkpoint, step {latest} in {self.manager.directory}, comes before it"
                        if latest is not None else "the run has no checkpoint yet")
                raise TrainingDiverged(
                    f"step {first + i}: the loss is {loss} and the gradient norm {norm}; training stopped there "
                    f"(its weights are no longer finite, and are not saved): {kept}. Check that step's data, or "
                    f"lower optimizer.lr or lengthen the warm-up, and resume")

    # ---- loop ----------------------------------------------------------------------------------
    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("%s: saving a checkpoint after the current step, then exiting", signal.Signals(signum).name)
        self._stop_requested = True

    def run(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train to ``total_steps`` (or until ``stop_after``/SIGTERM, saving first); returns logged records."""
        cfg = self.cfg
        is_main = jax.process_index() == 0
        if is_main:
            log.info("%s", self.summary())
        step, state, position = self.initial_state()
        cfg = self.cfg  # a hub id's init_from names the commit it started from now (see _hf_as_orbax)
        if step >= self.total_steps and is_main:
            log.warning("nothing to train: the run folder's checkpoint is at step %d of a %d-step schedule (raise "
                        "max_steps or data.epochs to train on, or give another run_dir)", step, self.total_steps)
        batches = BatchIterator(self.source, cfg.data.global_batch_size, position)
        where, problem = f"data.path {cfg.data.path or '<synthetic>'!r}", None
        try:
            batches.check_rows_before(self.total_steps - step)
        except Exception as e:  # noqa: BLE001 - each host checks its own share: all must stop if one does
            problem = e
        stop_together(problem, where)
        problem = None
        try:
            if is_main:  # once the checkpoint, if any, accepts this config: a refused one is not recorded
                save_config(cfg, self.run_dir / "config.yaml")
            writer = MetricsWriter(cfg, self.run_dir, is_main, resumed_step=step)
        except Exception as e:  # noqa: BLE001 - process 0 alone writes these: the others would wait for it in the first step
            problem = e
        stop_together(problem, f"run_dir {str(self.run_dir)!r}", "could not open the run's outputs (config.yaml, "
                      "metrics.jsonl, TensorBoard, W&B)")
        tokens_per_step = cfg.data.global_batch_size * cfg.data.seq_len
        flops_per_token = cfg.model.flops_per_token(cfg.data.seq_len)
        peak = peak_tflops_per_device(self.mesh.devices.flat[0], cfg.peak_tflops)
        kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "-1"))
        pending: list[dict[str, Any]] = []  # the metrics of the steps since the last log, on the devices
        previous = None
        # Several processes: JAX's preemption service catches SIGTERM (on any one host) and every
        # host learns it at the same step through ``reached_preemption``; a Python handler here would
        # replace the service's and let each host stop at the step it alone saw the signal.
        if cfg.checkpoint.save_on_sigterm and _is_main_thread() and jax.process_count() == 1:
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        records: list[dict[str, Any]] = []
        profiling = StepProfiler(cfg.profile.start_step, cfg.profile.steps, self.run_dir / "profile")
        last_saved = step
        timer_start, timer_steps = None, 0
        try:
            while step < self.total_steps:
                profiling.before_step(step + 1)
                batch = to_global(self._read_host_batch(batches), self.batch_sharding, cfg.data.global_batch_size)
                with mesh_context(self.mesh, self.rules, self.constrain_activations):
                    state, metrics = self.step_fn(state, batch)
                step += 1
                pending.append(metrics)
                profiling.after_step(step, metrics)
                timer_steps += 1
                if timer_start is None:  # the first step compiles: time from its end
                    jax.block_until_ready(metrics)
                    timer_start, timer_steps = time.perf_counter(), 0
                evaluating = bool(cfg.validation.every) and (step % cfg.validation.every == 0 or step == self.total_steps)
                if step % cfg.log_every == 0 or step == self.total_steps or evaluating:
                    history, pending = jax.device_get(pending), []
                    metrics = history[-1]
                    now = time.perf_counter()
                    record = {"loss": float(metrics["loss"])}
                    if cfg.z_loss:
                        record["z_loss"] = float(metrics["z_loss"])
                    record.update(lr=float(self.schedule(step - 1)), grad_norm=float(metrics["grad_norm"]),
                                  target_tokens=int(metrics["target_tokens"]),
                                  epoch=batches.position.epoch, batch=batches.position.batch)
                    if timer_steps:  # the steps since the timer started: not the first, which compiles
                        dt = (now - timer_start) / timer_steps
                        tps = tokens_per_step / dt
                        real = sum(int(m["tokens"]) for m in history[-timer_steps:]) / timer_steps
                        record.update(step_time_s=dt, tokens_per_s=tps, nonpad_tokens_per_s=real / dt,
                                      mfu=mfu(tps, flops_per_token, self.mesh.devices.size, peak))
                    finite = all(math.isfinite(float(m[k])) for m in history for k in ("loss", "grad_norm"))
                    if evaluating and finite:
                        record.update(self.evaluate(state["params"]))
                    self._write_metrics(writer, step, record)
                    records.append({"step": step, **record})
                    self._stop_if_not_finite(history, step)
                    timer_start, timer_steps = time.perf_counter(), 0
                stopping = self._stop_requested or step == stop_after or step == kill_at
                if jax.process_count() > 1:  # every host stops at the same step after a pre-emption notice
                    stopping = stopping or self.manager.reached_preemption(step)
                if step % cfg.checkpoint.every == 0 or step == self.total_steps or stopping:
                    jax.block_until_ready(state)  # the steps still running count as step time, not saving
                    saving_since = time.perf_counter()
                    self._stop_if_not_finite(jax.device_get(pending), step)
                    self.save(step, state, batches.position)
                    last_saved = step
                    timer_start += time.perf_counter() - saving_since
                if step == kill_at:
                    self.manager.wait_until_finished()
                    os.kill(os.getpid(), signal.SIGKILL)
                if stopping:
                    break
            if last_saved != step:
                self.save(step, state, batches.position)
            self.manager.wait_until_finished()
        finally:
            profiling.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            writer.close()
        self.state, self.step = state, step
        return records

    def close(self) -> None:
        self.manager.close()


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(cfg: TrainConfig, stop_after: int | None = None) -> list[dict[str, Any]]:
    trainer = Trainer(cfg)
    try:
        return trainer.run(stop_after=stop_after)
    finally:
        trainer.close()

"""Throughput of the trainer's step: tokens/s, model TFLOP/s and MFU for a model config and mesh.

Runs the real train step (``semcoder_jax.train``: sharded state, donated buffers, token-weighted
loss, AdamW) on synthetic packed rows, and prints JSON lines in the format of
``../shared/bench/ref_llama_step.py`` with the same FLOP convention (6·N + 12·L·d·S per token,
N = matmul weights incl. the output head) and the same measured bf16 matmul peak.

  python benchmarks/train_step.py --model deepseek-coder-6.7b --batch 4 --seq 2048 \
      --remat save_dots_no_batch --attention cudnn --packed
  python benchmarks/train_step.py --model tiny --batch 2 --seq 64        # CPU check
  python benchmarks/train_step.py --model deepseek-coder-6.7b --batch 4 --seq 2048 --compile-only \
      --set model.num_layers=4 loss_chunk_size=512                        # memory, nothing allocated
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")  # 6.7B + fp32 AdamW needs ~110 GB

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _args import positive_int  # noqa: E402


def matmul_peak_tflops() -> float:
    """bf16 8192² matmul throughput, measured exactly as the reference script does."""
    a = jax.random.normal(jax.random.PRNGKey(0), (8192, 8192), jnp.bfloat16)
    b = jax.random.normal(jax.random.PRNGKey(1), (8192, 8192), jnp.bfloat16)
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(20):
        r = f(a, b)
    r.block_until_ready()
    return 2 * 8192**3 / ((time.perf_counter() - t0) / 20) / 1e12


def top_device_ops(trace_dir: str, n: int, steps: int) -> list[dict]:
    """The ``n`` device ops with the most time per step in a ``jax.profiler`` trace, as HLO ops
    (the trace's "XLA Ops" line) and as kernels (its stream lines)."""
    import glob
    from collections import Counter, defaultdict

    try:
        from jax.profiler import ProfileData
    except ImportError:  # a JAX without it: the step's figures are printed already
        return [dict(top_ops="this JAX has no jax.profiler.ProfileData to read the trace with")]

    by_line: dict[str, tuple[Counter, Counter]] = defaultdict(lambda: (Counter(), Counter()))
    paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    if paths:  # this run's trace only: a reused folder holds earlier runs' too
        newest = max({os.path.dirname(p) for p in paths}, key=os.path.getmtime)
        paths = [p for p in paths if os.path.dirname(p) == newest]
    for path in paths:
        for plane in ProfileData.from_file(path).planes:
            if not plane.name.startswith("/device:"):
                continue
            for line in plane.lines:
                kind = "ops" if line.name == "XLA Ops" else "kernels" if "stream" in line.name.lower() else None
                if kind:
                    total, count = by_line[kind]
                    for ev in line.events:
                        total[ev.name] += ev.duration_ns
                        count[ev.name] += 1
    rows = []
    for kind, (total, count) in sorted(by_line.items()):
        all_ms = sum(total.values()) / steps / 1e6
        rows.append(dict(kind=kind, op="(all)", ms_per_step=round(all_ms, 3), calls_per_step=sum(count.values()) / steps))
        rows += [
            dict(kind=kind, op=name[:160], ms_per_step=round(ns / steps / 1e6, 3), calls_per_step=count[name] / steps)
            for name, ns in total.most_common(n)
        ]
    return rows


def synthetic_batch(batch: int, seq: int, vocab: int, segments: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows of ``segments`` equal segments (1 = unpacked), prompt half masked out of the loss."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (batch, seq))
    seg_len = seq // segments
    idx = np.arange(seq)
    seg = np.minimum(idx // seg_len, segments - 1) + 1
    pos = idx - (seg - 1) * seg_len
    mask = (pos >= seg_len // 2).astype(np.int64)
    tile = lambda x: np.broadcast_to(x, (batch, seq)).copy()
    return {"input_ids": ids, "loss_mask": tile(mask), "segment_ids": tile(seg), "positions": tile(pos)}


def compiled_memory(trainer, batch: int, seq: int) -> dict:
    """XLA's buffer sizes (GB per device) for the train step compiled on abstract state: what a
    configuration needs before any memory is allocated."""
    from semcoder_jax.packed_schema import FEATURES
    from semcoder_jax.train.step import mesh_context

    state = {"params": trainer.abstract_params, "opt_state": trainer.abstract_opt_state}
    rows = {k: jax.ShapeDtypeStruct((batch, seq), jnp.int32, sharding=trainer.batch_sharding) for k in FEATURES}
    t0 = time.perf_counter()
    with mesh_context(trainer.mesh, trainer.rules, trainer.constrain_activations):
        compiled = trainer.step_fn.lower(state, rows).compile()
    stats = compiled.memory_analysis()
    gb = lambda n: round(n / 1e9, 3)  # noqa: E731
    return dict(
        cfg=trainer.cfg.model.name, backend=jax.default_backend(), mesh=dict(trainer.mesh.shape),
        compile_s=round(time.perf_counter() - t0, 1), arguments_gb=gb(stats.argument_size_in_bytes),
        outputs_gb=gb(stats.output_size_in_bytes), aliased_gb=gb(stats.alias_size_in_bytes),
        temp_gb=gb(stats.temp_size_in_bytes),
        # Donated state is updated in place, so outputs aliasing arguments add nothing.
        total_gb=gb(stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes
                    + stats.temp_size_in_bytes),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny", help="model preset or YAML/HF config path")
    p.add_argument("--batch", type=positive_int, default=4, help="global batch (rows)")
    p.add_argument("--seq", type=positive_int, default=2048)
    p.add_argument("--remat", default=None, help="model.remat_policy (default: the preset's)")
    p.add_argument("--attention", default=None, help="xla | cudnn | splash (default: the preset's)")
    p.add_argument("--packed", action="store_true", help="pack --segments segments per row")
    p.add_argument("--segments", type=positive_int, default=4)
    p.add_argument("--micro-batches", type=positive_int, default=1)
    p.add_argument("--dtype", default=None, help="compute dtype (default: the preset's)")
    p.add_argument("--moment-dtype", default="float32")
    p.add_argument("--mesh", default="data=1,fsdp=-1,tensor=1", help="mesh axis sizes, e.g. fsdp=8 or data=2,fsdp=4")
    p.add_argument("--devices", type=int, default=-1, help="use the first N devices")
    p.add_argument("--steps", type=positive_int, default=5, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps after the compiling one")
    p.add_argument("--peak-tflops", type=float, default=None, help="per-device peak for mfu_vs_table_peak")
    p.add_argument("--vocab", type=int, default=None, help="override the vocabulary (CPU checks)")
    p.add_argument("--profile", default=None, metavar="DIR", help="trace the timed steps into DIR (TensorBoard)")
    p.add_argument("--top-ops", type=int, default=0, metavar="N", help="with --profile: print the N costliest device ops")
    p.add_argument("--compile-only", action="store_true",
                   help="compile the step for abstract state (nothing allocated) and print XLA's memory figures per device")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra TrainConfig overrides")
    args = p.parse_args()
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps: expected 0 or more, got {args.warmup_steps}")
    if args.top_ops and not args.profile:
        p.error("--top-ops reads the trace of --profile DIR; pass both")
    if args.packed and args.segments > args.seq:
        p.error(f"--segments {args.segments} > --seq {args.seq}: a segment needs a token at least")

    from semcoder_jax.train.config import load_train_config
    from semcoder_jax.train.input import to_global
    from semcoder_jax.train.metrics import peak_tflops_per_device
    from semcoder_jax.train.step import mesh_context
    from semcoder_jax.train.trainer import Trainer

    print("devices", jax.devices(), "jax", jax.__version__, flush=True)
    peak = matmul_peak_tflops() if jax.default_backend() == "gpu" else None
    print("bf16 matmul TFLOP/s", peak, flush=True)

    segments = args.segments if args.packed else 1
    overrides = [
        f"model={args.model}",
        f"data.seq_len={args.seq}",
        f"data.global_batch_size={args.batch}",
        f"data.micro_batches={args.micro_batches}",
        f"data.synthetic_rows={args.batch}",
        f"optimizer.moment_dtype={args.moment_dtype}",
        "optimizer.warmup_steps=0",
        f"max_steps={1 + args.warmup_steps + args.steps}",
        f"mesh.num_devices={args.devices}",
        "tensorboard=false",
        f"model.max_position_embeddings={max(args.seq, 2048)}",
    ]
    overrides += [f"mesh.{kv}" for kv in args.mesh.split(",") if kv]
    for key, value in (("remat_policy", args.remat), ("attention", args.attention), ("dtype", args.dtype), ("vocab_size", args.vocab)):
        if value is not None:
            overrides.append(f"model.{key}={value}")
    overrides += args.set
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = load_train_config(None, overrides + [f"run_dir={run_dir}"])
        trainer = Trainer(cfg)
        if args.compile_only:
            print(json.dumps(compiled_memory(trainer, args.batch, args.seq)), flush=True)
            trainer.close()
            return
        t0 = time.perf_counter()
        _, state, _ = trainer.initial_state()
        jax.block_until_ready(state)
        init_s = time.perf_counter() - t0
        host = synthetic_batch(args.batch, args.seq, cfg.model.vocab_size, segments)
        batch = to_global(host, trainer.batch_sharding, args.batch)
        with mesh_context(trainer.mesh, trainer.rules, trainer.constrain_activations):
            t0 = time.perf_counter()
            state, metrics = trainer.step_fn(state, batch)
            jax.block_until_ready(metrics)
            compile_s = time.perf_counter() - t0
            for _ in range(args.warmup_steps):
                state, metrics = trainer.step_fn(state, batch)
            jax.block_until_ready(metrics)
            if args.profile:
                jax.profiler.start_trace(args.profile)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                state, metrics = trainer.step_fn(state, batch)
            jax.block_until_ready(metrics)
            step_s = (time.perf_counter() - t0) / args.steps
            if args.profile:
                jax.profiler.stop_trace()
        trainer.close()

    tokens = args.batch * args.seq
    flops_tok = cfg.model.flops_per_token(args.seq)
    n_dev = trainer.mesh.devices.size
    result = dict(
        cfg=cfg.model.name, impl=cfg.model.attention_kernel(seq_len=args.seq), remat=cfg.model.remat_policy, packed=segments,
        mesh=dict(trainer.mesh.shape), dtype=cfg.model.dtype, micro_batches=args.micro_batches,
        init_s=round(init_s, 1), compile_s=round(compile_s, 1), step_s=round(step_s, 4),
        tok_per_s=round(tokens / step_s), model_tflops=round(flops_tok * tokens / step_s / 1e12, 1),
        loss=float(metrics["loss"]), activation_constraints=trainer.constrain_activations,
    )
    per_device = result["model_tflops"] / n_dev
    if peak:
        result["mfu_vs_measured_peak"] = round(per_device / peak, 3)
    table = peak_tflops_per_device(trainer.mesh.devices.flat[0], args.peak_tflops)
    if table:
        result["mfu_vs_table_peak"] = round(per_device / table, 3)
    try:
        stats = trainer.mesh.devices.flat[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            result["peak_mem_gb"] = round(stats["peak_bytes_in_use"] / 1e9, 1)
    except Exception:  # noqa: BLE001 - not every backend reports memory
        pass
    print(json.dumps(result), flush=True)
    if args.profile and args.top_ops:
        rows = top_device_ops(args.profile, args.top_ops, args.steps)
        for row in rows or [{"top_ops": f"no device ops in the trace under {args.profile} (a CPU run records none)"}]:
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

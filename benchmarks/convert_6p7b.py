"""Conversion of a random 6.7B-shaped bf16 checkpoint both ways: wall time and peak RSS.

Builds a random DeepSeek-Coder-6.7B-shaped HF folder on disk one tensor at a time, then times
``semcoder convert hf-to-orbax`` and ``orbax-to-hf`` (each in its own process, peak RSS from
``wait4``) against copying the same bytes once (read + write). Prints one JSON line per stage.

    python benchmarks/convert_6p7b.py                 # the full 6.7B shape (~40 GB of disk)
    python benchmarks/convert_6p7b.py --layers 2      # a quick check of the script
    python benchmarks/convert_6p7b.py --warm          # each stage's input cached, as the copy's is
    python benchmarks/convert_6p7b.py --cold          # page cache dropped before each stage (root)

``input_cached_gb`` is how much of a stage's input was in the page cache when it started: with
three 13 GB folders on a machine with less memory, a stage may read part of its input from disk.

Targets: peak RSS < 6 GB for each direction; each direction within 2x of the copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
from _args import fresh_scratch, positive_int

from semcoder_jax.convert.hf_io import TensorPlan, write_sharded
from semcoder_jax.convert.mapping import param_mappings
from semcoder_jax.model.config import get_model_config


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_random_hf(out: Path, config, shard_bytes: int, seed: int = 0) -> None:
    """A HF folder of random bf16 weights; only one tensor is in memory at a time.

    Each tensor is cut from a 32 MB pool of N(0, 0.02) values at random offsets: as
    (in)compressible as real weights, and fast to make.
    """
    rng = np.random.default_rng(seed)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)

    def random_tensor(shape):
        def make():
            flat = np.empty(int(np.prod(shape)), ml_dtypes.bfloat16)
            pos = 0
            while pos < flat.size:
                start = int(rng.integers(0, pool.size // 2))
                n = min(flat.size - pos, pool.size - start)
                flat[pos:pos + n] = pool[start:start + n]
                pos += n
            return flat.reshape(shape)

        return make

    plans = []
    for m in param_mappings(config):
        for name in m.hf_names(config):
            plans.append(TensorPlan(name, m.hf_shape(config), np.dtype(ml_dtypes.bfloat16), random_tensor(m.hf_shape(config))))
    # HF's order: embedding, layer by layer, norm, head
    plans.sort(key=lambda p: (p.name.startswith("lm_head"), p.name.startswith("model.norm"), _layer(p.name)))
    out.mkdir(parents=True)
    write_sharded(out, plans, shard_bytes)
    (out / "config.json").write_text(json.dumps(config.to_hf_config("bfloat16"), indent=2))


def _layer(name: str) -> int:
    parts = name.split(".")
    return int(parts[2]) if len(parts) > 2 and parts[1] == "layers" else -1


def copy_once(src: Path, dst: Path, block: int = 64 << 20) -> None:
    """Read every file of ``src`` and write it to ``dst`` (the I/O floor of a conversion)."""
    dst.mkdir(parents=True)
    buf = bytearray(block)
    view = memoryview(buf)
    for f in sorted(src.iterdir()):
        with open(f, "rb", buffering=0) as r, open(dst / f.name, "wb", buffering=0) as w:
            while n := r.readinto(buf):
                w.write(view[:n])


def cached_gb(path: Path) -> float | None:
    """GB of ``path``'s files in the page cache (``fincore``), or None where it is missing."""
    files = [str(p) for p in path.rglob("*") if p.is_file()]
    if not files or not shutil.which("fincore"):
        return None
    out = subprocess.run(["fincore", "-b", "-n", "-r", "-o", "RES", *files], capture_output=True, text=True)
    if out.returncode:
        return None
    return round(sum(int(line) for line in out.stdout.split()) / 1e9, 2)


def warm(path: Path) -> None:
    """Read every file of ``path`` once, so a stage starts with its input cached as the copy did."""
    buf = bytearray(64 << 20)
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        with open(f, "rb", buffering=0) as r:
            while r.readinto(buf):
                pass


def drop_page_cache() -> None:
    """Write back and drop the page cache, so that a stage reads its input from disk (needs root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        raise SystemExit(f"--cold needs root to write /proc/sys/vm/drop_caches: {e}") from None


def timed_process(argv: list[str]) -> tuple[float, float, float, int]:
    """Wall seconds, CPU seconds (user + system), peak RSS (GB) of the process, exit status."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024 / 1e9, os.waitstatus_to_exitcode(status)


def timed(fn, *args) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn(*args)`` in this process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    fn(*args)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - start, cpu


def spot_check(src: Path, exported: Path, names: list[str]) -> bool:
    from semcoder_jax.convert.hf_io import HFWeights

    a, b = HFWeights(src), HFWeights(exported)
    return all(np.array_equal(a.read(n).view(np.uint16), b.read(n).view(np.uint16)) for n in names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default="/tmp/semcoder-convert-bench", help="scratch folder, emptied first when it holds only an earlier run's files")
    parser.add_argument("--model", default="deepseek-coder-6.7b")
    parser.add_argument("--layers", type=positive_int, default=None, help="override the number of layers (quick runs)")
    parser.add_argument("--source-shard-size", type=int, default=5 * 10**9)
    parser.add_argument("--max-shard-size", default="5GB", help="orbax-to-hf output shard size")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each timed stage, copy included")
    parser.add_argument("--warm", action="store_true",
                        help="read each conversion's input just before timing it (the copy reads a cached input)")
    args = parser.parse_args()

    overrides = [f"num_layers={args.layers}"] if args.layers else []
    config = get_model_config(args.model, overrides)
    work = Path(args.workdir)
    fresh_scratch(work, {"hf_in", "orbax", "hf_out", "copy"})
    total = config.num_params() * 2
    free = shutil.disk_usage(work).free
    emit(stage="setup", model=config.name, layers=config.num_layers, params=config.num_params(),
         bf16_bytes=total, free_disk_gb=round(free / 1e9, 1), cpus=os.cpu_count())
    if free < 3.2 * total:
        emit(stage="abort", reason=f"needs ~{3.2 * total / 1e9:.0f} GB free disk, have {free / 1e9:.0f} GB")
        return 1
    hf_in, orbax_dir, hf_out, copy_dir = (work / n for n in ("hf_in", "orbax", "hf_out", "copy"))
    try:
        seconds, _ = timed(build_random_hf, hf_in, config, args.source_shard_size)
        emit(stage="generate", seconds=round(seconds, 1), bytes=dir_bytes(hf_in))

        if args.cold:
            drop_page_cache()
        input_cached = cached_gb(hf_in)
        copy_s, copy_cpu = timed(copy_once, hf_in, copy_dir)
        emit(stage="copy_once", seconds=round(copy_s, 1), cpu_s=round(copy_cpu, 1),
             gb_per_s=round(dir_bytes(copy_dir) / copy_s / 1e9, 3), input_cached_gb=input_cached,
             load_avg=os.getloadavg()[0])
        shutil.rmtree(copy_dir)
        startup_s, startup_cpu, _, _ = timed_process(
            [sys.executable, "-c", "import jax, orbax.checkpoint, tensorstore, semcoder_jax.convert"])
        emit(stage="python_startup", seconds=round(startup_s, 1), cpu_s=round(startup_cpu, 1))

        cli = [sys.executable, "-m", "semcoder_jax.cli.main", "convert"]
        if args.warm:
            warm(hf_in)
        if args.cold:
            drop_page_cache()
        env_note = {"JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")}
        input_cached = cached_gb(hf_in)
        seconds, cpu, rss, code = timed_process(cli + ["hf-to-orbax", "--hf-dir", str(hf_in), "--out", str(orbax_dir)])
        emit(stage="hf_to_orbax", exit=code, seconds=round(seconds, 1), cpu_s=round(cpu, 1), peak_rss_gb=round(rss, 2),
             vs_copy=round(seconds / copy_s, 2), out_bytes=dir_bytes(orbax_dir) if code == 0 else None,
             input_cached_gb=input_cached, load_avg=os.getloadavg()[0], **env_note)
        if code:
            return code

        if args.warm:
            warm(orbax_dir)
        if args.cold:
            drop_page_cache()
        input_cached = cached_gb(orbax_dir)
        seconds, cpu, rss, code = timed_process(cli + ["orbax-to-hf", "--checkpoint", str(orbax_dir), "--out", str(hf_out),
                                                  "--dtype", "bfloat16", "--max-shard-size", args.max_shard_size])
        shards = sorted(p.name for p in hf_out.glob("*.safetensors")) if code == 0 else []
        emit(stage="orbax_to_hf", exit=code, seconds=round(seconds, 1), cpu_s=round(cpu, 1), peak_rss_gb=round(rss, 2),
             vs_copy=round(seconds / copy_s, 2), shards=len(shards), out_bytes=dir_bytes(hf_out) if code == 0 else None,
             input_cached_gb=input_cached, load_avg=os.getloadavg()[0])
        if code:
            return code
        last = config.num_layers - 1
        names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                 f"model.layers.{last}.mlp.down_proj.weight", "lm_head.weight"]
        emit(stage="spot_check", tensors=names, bit_exact=spot_check(hf_in, hf_out, names))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

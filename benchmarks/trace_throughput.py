"""Traced executions per second over the 800 CRUXEval functions in the sandbox, plus the mean line
coverage that their single given input reaches versus type-aware mutation (``generate_inputs``).

    python benchmarks/trace_throughput.py [--repeats 2] [--coverage] [--n 10]

The machine is shared: run when ``uptime`` shows it quiet and report the load average.
"""

from __future__ import annotations

import argparse
import os
import time

from _args import positive_int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=positive_int, default=2)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--coverage", action="store_true", help="also measure coverage before/after mutation")
    parser.add_argument("--n", type=positive_int, default=10, help="inputs per function for the coverage run")
    args = parser.parse_args()
    from semcoder_jax.execution import Sandbox, generate_inputs, measure_coverage, reference_data, trace_many

    problems = reference_data.cruxeval()
    items = [(p["code"], f"f({p['input']})") for p in problems]
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machine)")
    with Sandbox(workers=args.workers) as box:
        box.run("pass")
        best = 0.0
        for _ in range(args.repeats):
            start = time.perf_counter()
            traces = trace_many(items, sandbox=box)
            best = max(best, len(items) / (time.perf_counter() - start))
        events = sum(len(t.events) for t in traces)
        ok = sum(t.status == "passed" for t in traces)
        print(f"traced executions: {best:.1f}/s over {len(items)} CRUXEval calls "
              f"({ok} passed, {events / len(items):.1f} events per trace)")
        if args.coverage:
            from concurrent.futures import ThreadPoolExecutor

            start = time.perf_counter()
            with ThreadPoolExecutor(box.config.resolved_workers() * 2) as pool:
                base = list(pool.map(lambda p: measure_coverage(p["code"], "f", [p["input"]], sandbox=box), problems))
                grown = list(pool.map(lambda p: generate_inputs(p["code"], "f", [p["input"]], n=args.n, sandbox=box),
                                      problems))
            took = time.perf_counter() - start
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            print(f"mean line coverage:   given input {mean([b[0] for b in base]):.4f}  "
                  f"after mutation {mean([g.line_coverage for g in grown]):.4f}")
            print(f"mean branch coverage: given input {mean([b[1] for b in base]):.4f}  "
                  f"after mutation {mean([g.branch_coverage for g in grown]):.4f}")
            print(f"mean inputs per function {mean([len(g.inputs) for g in grown]):.1f}; coverage run took {took:.1f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

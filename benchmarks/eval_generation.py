"""Generation throughput of the ``jax`` backend against ``hf`` on the same machine and model.

    python benchmarks/eval_generation.py --hf-dir DIR [--prompts 64] [--max-new-tokens 256]
        [--batch-size 32] [--dtype bfloat16] [--benchmark humaneval]

Prompts are the benchmark's real prompts; generation is greedy with no stop strings, so both
backends produce exactly ``max_new_tokens`` per prompt unless EOS comes first. Prints new tokens/s
per backend (after one warm-up call that compiles/loads) and whether the texts agree. Tokens are
the backend's own count of what it generated (EOS included); re-tokenising the text would not
give it back (decoding is not invertible), so a backend without counts is reported as such.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _args import positive_int  # noqa: E402

from eval.backends import BackendConfig, get_backend  # noqa: E402
from eval.benchmarks import load_problems  # noqa: E402
from eval.tasks import build_prompt  # noqa: E402


def generated_tokens(completions: list) -> tuple[int | None, str]:
    """Tokens generated over the first completion of each prompt, and what was counted: the
    backend's own counts, or None where any is missing."""
    counts = [getattr(c[0], "num_tokens", None) for c in completions]
    if any(k is None for k in counts):
        return None, "the backend reports no token counts"
    return sum(counts), "generated tokens as the backend counts them, EOS included"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-dir", required=True)
    ap.add_argument("--benchmark", default="humaneval")
    ap.add_argument("--prompts", type=positive_int, default=64)
    ap.add_argument("--max-new-tokens", type=positive_int, default=256)
    ap.add_argument("--batch-size", type=positive_int, default=32)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--backends", nargs="+", default=["jax", "hf"])
    args = ap.parse_args()
    problems = load_problems(args.benchmark, limit=args.prompts)
    prompts = [build_prompt(args.benchmark, p) for p in problems]
    outputs = {}
    for name in args.backends:
        backend = get_backend(name, BackendConfig(hf_dir=args.hf_dir, dtype=args.dtype, batch_size=args.batch_size))
        backend.generate(prompts[: args.batch_size], max_new_tokens=args.max_new_tokens)  # warm-up / compile
        t0 = time.time()
        texts = backend.generate(prompts, max_new_tokens=args.max_new_tokens)
        dt = time.time() - t0
        n_tokens, counted = generated_tokens(texts)
        outputs[name] = texts
        rate = f"{n_tokens / dt:.1f}" if n_tokens is not None else "n/a"
        print(f"{name:5} prompts={len(prompts)} new_tokens={n_tokens if n_tokens is not None else 'n/a'} "
              f"seconds={dt:.2f} tokens/s={rate} ({counted})", flush=True)
        backend.close()
    if len(outputs) == 2:
        a, b = outputs.values()
        same = sum(x == y for x, y in zip(a, b))
        print(f"identical greedy completions: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()

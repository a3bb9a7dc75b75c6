"""``semcoder eval run``: problems → prompts → backend (through the generation cache) → samples →
official scoring → ``results.json``; optional self-refinement rounds afterwards."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from eval.backends import Completion
from eval.benchmarks import load_problems
from eval.cache import GenerationCache
from eval.config import EvalConfig
from eval.tasks import build_prompt, stop_strings, to_sample
from semcoder_jax.errors import SemcoderError

RESULTS_FILE = "results.json"
GENERATIONS_FILE = "generations.jsonl"
SAMPLES_FILE = "samples.jsonl"


def generation_settings(cfg: EvalConfig, **extra: Any) -> dict[str, Any]:
    g = dataclasses.asdict(cfg.generation)
    g.pop("batch_size")
    return {"benchmark": cfg.benchmark, "prompt_style": cfg.prompt_style, "quotes": cfg.use_quotes, **g, **extra}


def generate_cached(
    backend: Any,
    prompts: dict[str, str],
    cache: GenerationCache,
    *,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    stop: Sequence[str],
    seed: int,
    batch_size: int,
    top_k: int = 0,
    on_batch: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict[str, list[Completion]]:
    """Completions per task; only tasks missing from the cache reach the backend, and each batch is
    on disk before the next one starts. Task k of ``prompts`` is sampled with seed ``seed + k * n``
    (backends offset a call's seed by ``i * n`` for its i-th prompt), whatever the batch size and
    whatever an interrupted run left in the cache, so a resumed run samples what an uninterrupted one would;
    a cached sample drawn with another seed (the task stood elsewhere in another run) or by another
    of the backend's sampling schemes (``sampling_scheme``, e.g. before it seeded rows) is drawn again.
    Generations in the cache file that are not reused (another model, backend revision or setting,
    an older cache format) are reported to ``log`` with what differs. ``progress``: a bar of the
    problems generated, moved at each completed prompt where the backend reports them (``on_row``),
    else at each of its own batches (see :func:`_progress_batches`). ``top_k`` reaches the backend
    only when on (> 0), so backends written before it still run with it off."""
    index = {t: k for k, t in enumerate(prompts)}
    seed_of = {t: seed + k * n for t, k in index.items()} if temperature > 0 else {}
    scheme = getattr(backend, "sampling_scheme", None) if temperature > 0 else None
    missing = [(t, i) for t, p in prompts.items() for i in range(n) if cache.get(t, i, p, seed_of.get(t), scheme) is None]
    todo = list(dict.fromkeys(t for t, _ in missing))
    if log:
        why = [cache.not_reused(t, i, prompts[t]) for t, i in missing]
        stale = sum(1 for w in why if w)
        if stale:
            log(f"{cache.path}: {stale} cached generation(s) of these prompts not reused, generated again: "
                f"{cache.explain(set().union(*why))}")
    done_count = 0
    batches = _contiguous_batches(todo, index, max(1, batch_size))  # batch size 0 would send empty batches
    rows = progress and "on_row" in inspect.signature(backend.generate).parameters
    if progress and not rows:
        batches = _progress_batches(backend, batches, n if temperature > 0 else 1)
    bar_lock = threading.Lock()
    with tqdm(total=len(todo), desc="generate", unit="problem", disable=not progress) as bar:

        def row_done() -> None:
            with bar_lock:  # called from the backend's threads
                bar.update(1)

        for batch in batches:
            try:
                outs = backend.generate(
                    [prompts[t] for t in batch], n=n, temperature=temperature, top_p=top_p,
                    max_new_tokens=max_new_tokens, stop=tuple(stop), seed=seed + index[batch[0]] * n,
                    **({"top_k": top_k} if top_k else {}), **({"on_row": row_done} if rows else {}),
                )
            except SemcoderError as e:  # it counts prompts within the batch: say which tasks they are
                raise SemcoderError(f"generating tasks {', '.join(batch)} (in this order): {e}") from None
            outs = list(outs)
            short = [(t, len(texts)) for t, texts in zip(batch, outs) if len(texts) < n]
            short += [(t, 0) for t in batch[len(outs):]]
            done = [(t, texts) for t, texts in zip(batch, outs) if len(texts) >= n]
            cache.put_many([(t, i, prompts[t], text) for t, texts in done for i, text in enumerate(texts[:n])], seed_of, scheme)
            if short:
                got = ", ".join(f"{t}: {k}" for t, k in short[:5])
                raise SemcoderError(
                    f"backend {getattr(backend, 'name', type(backend).__name__)} returned fewer than n={n} completions "
                    f"for {len(short)} of {len(batch)} prompts ({got}); nothing was scored"
                )
            done_count += len(batch)
            if not rows:
                bar.update(len(batch))
            if on_batch:
                on_batch(done_count, len(todo))
    out = {t: [cache.get(t, i, p, seed_of.get(t), scheme) for i in range(n)] for t, p in prompts.items()}
    return {t: [Completion("") if c is None else c for c in cs] for t, cs in out.items()}


def _contiguous_batches(todo: list[str], index: dict[str, int], size: int) -> list[list[str]]:
    """``todo`` in batches of at most ``size`` tasks that stand next to each other in the run."""
    batches: list[list[str]] = []
    for t in todo:
        if batches and len(batches[-1]) < size and index[batches[-1][-1]] + 1 == index[t]:
            batches[-1].append(t)
        else:
            batches.append([t])
    return batches


def _progress_batches(backend: Any, batches: list[list[str]], per: int) -> list[list[str]]:
    """``batches`` cut into calls of whole batches of the backend's own (hf, jax: ``per`` rows a
    prompt, ``batch_size`` rows a batch, in order), so that a bar moves at each of them (minutes
    apart on a CPU) instead of once per ``generation.batch_size`` prompts, with every batch, and
    so every sample, as in one call. Other backends (vLLM batches a whole call at once) are left whole."""
    own = getattr(getattr(backend, "config", None), "batch_size", None)
    if getattr(backend, "name", None) not in ("hf", "jax") or not isinstance(own, int) or own < 1:
        return batches
    size = math.lcm(own, per) // per
    return [b[i : i + size] for b in batches for i in range(0, len(b), size)]


def load_benchmark(cfg: EvalConfig) -> list:
    """The run's problems; none (an empty data file, an LCB date window) is an error, not a result
    without a score."""
    problems = load_problems(cfg.benchmark, path=cfg.data, limit=cfg.limit, **cfg.problem_options())
    if not problems:
        window = {k: v for k, v in cfg.problem_options().items() if v}
        raise SemcoderError(f"{cfg.data or cfg.benchmark}: no problems to evaluate" + (f" ({window})" if window else ""))
    return problems


def write_samples(out_dir: Path, benchmark: str, completions: dict[str, list[str]], samples: dict[str, list[str]]) -> None:
    """One row a sample: the completion, how it ended where the backend said (``finish_reason``,
    which ``eval score`` reads back), its generated ``tokens`` where known, and what is scored."""
    field = "solution" if benchmark in ("humaneval", "mbpp", "lcb-lite") else "answer"
    with open(out_dir / SAMPLES_FILE, "w", encoding="utf-8") as f:
        for t, outs in completions.items():
            for c, s in zip(outs, samples[t]):
                row = {"task_id": t, "completion": str(c), field: s}
                for key, value in (("finish_reason", getattr(c, "finish_reason", None)), ("tokens", getattr(c, "num_tokens", None))):
                    if value is not None:
                        row[key] = value
                f.write(json.dumps(row) + "\n")
    if benchmark.startswith("cruxeval"):
        (out_dir / "generations.json").write_text(json.dumps(samples))


def run_eval(
    cfg: EvalConfig,
    backend: Any,
    out_dir: str | Path,
    *,
    model_name: str | None = None,
    sandbox: Any = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    from eval.scoring import score

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    problems = load_benchmark(cfg)
    style, quotes = cfg.prompt_style, cfg.use_quotes
    prompts = {p.task_id: build_prompt(cfg.benchmark, p, style, quotes) for p in problems}
    identity = backend.identity()
    stop = stop_strings(cfg.benchmark, style)  # generations are stored cut at these: part of the key
    cache = GenerationCache.for_run(out_dir / GENERATIONS_FILE, identity, generation_settings(cfg, stop=list(stop)))
    g = cfg.generation
    t0 = time.time()
    completions = generate_cached(
        backend, prompts, cache, n=g.n, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, max_new_tokens=g.max_new_tokens,
        stop=stop, seed=g.seed, batch_size=g.batch_size, progress=progress, log=log,
        on_batch=None if progress else lambda done, total: log(f"generated {done}/{total} uncached problems"),
    )
    gen_s = time.time() - t0
    by_id = {p.task_id: p for p in problems}
    samples = {t: [to_sample(cfg.benchmark, by_id[t], c, style, quotes, cfg.sanitize) for c in cs] for t, cs in completions.items()}
    write_samples(out_dir, cfg.benchmark, completions, samples)
    t0 = time.time()
    result = score(cfg.benchmark, problems, samples, sandbox=sandbox, progress=progress)
    results: dict[str, Any] = {
        "benchmark": cfg.benchmark,
        "model": model_name or str(identity.get("model")),
        "backend": identity,
        "config": dataclasses.asdict(cfg),
        "summary": result.summary(),
        "timing_s": {"generation": round(gen_s, 2), "scoring": round(time.time() - t0, 2)},
        "details": result.details,
    }
    if cfg.refine_rounds > 0:
        from eval.refine import refine

        results["refine"] = refine(cfg, problems, backend, samples, result, out_dir, sandbox=sandbox, log=log)
    (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=str))
    return results

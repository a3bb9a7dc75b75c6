"""GPU checks of the model and sampler; prints one JSON object per line.

1. ``logits``: bf16 logits (xla and cudnn attention, unpacked and packed rows) against the
   float32 reference (``highest`` matmul precision) for a mid-size random model.
2. ``sampler``: JAX KV-cache sampler throughput (tokens/s), random 6.7B-shaped bf16 weights.
3. ``hf``: Hugging Face ``generate`` (torch, bf16, cuda, SDPA) at the same shapes.

Each part runs in its own subprocess (so that JAX and torch never hold GPU memory at the same
time and one failure does not stop the rest). ``--quick`` (the default off-GPU) runs tiny sizes where
the command line gives none.

  python benchmarks/model_gpu.py                  # full sizes on a GPU, about 2 minutes
  python benchmarks/model_gpu.py --quick          # tiny sizes, any machine

Exits 1 when a part (or an attention implementation in it) failed or timed out; its row says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _args import positive_int


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def _model_config(shape: str, layers: int, vocab: int | None, **runtime):
    from semcoder_jax.model.config import get_model_config

    cfg = get_model_config(shape)
    changes = dict(num_layers=layers, remat_policy="none", **runtime)
    if vocab:
        changes["vocab_size"] = vocab
    return cfg.replace(**changes)


def part_logits(args) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from semcoder_jax.model import llama

    cfg32 = _model_config(args.logits_shape, args.logits_layers, args.vocab, dtype="float32", param_dtype="float32",
                          attention="xla")
    params = llama.init_params(cfg32, jax.random.PRNGKey(0))
    b, s = args.logits_batch, args.logits_seq
    ids = jax.random.randint(jax.random.PRNGKey(1), (b, s), 0, cfg32.vocab_size)
    bounds = jnp.array([0, s // 3, (2 * s) // 3])
    seg = jnp.broadcast_to((jnp.arange(s)[None, :] >= bounds[:, None]).sum(0), (b, s)).astype(jnp.int32)
    seg = seg.at[:, s - s // 8 :].set(0)  # trailing padding

    def run(cfg, p, segment_ids):
        return jax.jit(lambda p, x, sg: llama.apply(cfg, p, x, None, sg))(p, ids, segment_ids)

    with jax.default_matmul_precision("highest"):
        refs = {"unpacked": run(cfg32, params, jnp.ones_like(ids)), "packed": run(cfg32, params, seg)}
    p16 = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    for impl in args.attention:
        cfg16 = cfg32.replace(dtype="bfloat16", param_dtype="bfloat16", attention=impl)
        for kind, segment_ids in (("unpacked", jnp.ones_like(ids)), ("packed", seg)):
            try:
                got = run(cfg16, p16, segment_ids)
                ref = refs[kind]
                valid = np.asarray(segment_ids != 0)
                diff = np.abs(np.asarray(got) - np.asarray(ref))[valid]
                top1 = (np.asarray(got.argmax(-1)) == np.asarray(ref.argmax(-1)))[valid]
                emit(part="logits", attention=impl, rows=kind, shape=args.logits_shape, layers=cfg32.num_layers,
                     batch=b, seq=s, max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                     ref_std=float(np.asarray(ref)[valid].std()), top1_agreement=float(top1.mean()),
                     finite=bool(np.isfinite(np.asarray(got)).all()))
            except Exception as e:  # report and go on to the next implementation
                emit(part="logits", attention=impl, rows=kind, error=str(e).splitlines()[0][:300])


def part_sampler(args) -> None:
    import jax
    import numpy as np

    from semcoder_jax.model import llama
    from semcoder_jax.sampling import Sampler

    cfg = _model_config(args.sampler_shape, args.sampler_layers, args.vocab, dtype="bfloat16", param_dtype="bfloat16")
    t0 = time.perf_counter()
    params = llama.init_params(cfg, jax.random.PRNGKey(0))
    jax.block_until_ready(params)
    init_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    prompts = [rng.integers(100, 30000 if cfg.vocab_size > 30000 else cfg.vocab_size, args.prompt_len).tolist()
               for _ in range(args.batch)]
    sampler = Sampler(cfg, params)
    kw = dict(max_new_tokens=args.new_tokens, eos_id=-1)
    t0 = time.perf_counter()
    sampler.generate(prompts, **kw)
    first_s = time.perf_counter() - t0
    for mode, extra in (("greedy", {}), ("top_p", dict(temperature=0.8, top_p=0.95, seed=1))):
        if mode == "top_p":
            sampler.generate(prompts, **kw, **extra)  # compile the sampling variant
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = sampler.generate(prompts, **kw, **extra)
            times.append(time.perf_counter() - t0)
        n_tokens = sum(len(o) for o in out)
        best = min(times)
        emit(part="sampler", impl="jax", mode=mode, shape=args.sampler_shape, layers=cfg.num_layers, batch=args.batch,
             prompt_len=args.prompt_len, new_tokens=args.new_tokens, tokens=n_tokens, seconds=round(best, 3),
             tokens_per_s=round(n_tokens / best, 1), first_call_s=round(first_s, 1), init_s=round(init_s, 1),
             device=str(jax.devices()[0]))


def part_hf(args) -> None:
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = _model_config(args.sampler_shape, args.sampler_layers, args.vocab)
    hf_cfg = LlamaConfig(**{k: v for k, v in cfg.to_hf_config().items() if k not in ("architectures", "model_type")})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    t0 = time.perf_counter()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(hf_cfg, attn_implementation="sdpa", torch_dtype=dtype).eval()
    init_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    ids = torch.tensor(rng.integers(100, min(30000, cfg.vocab_size), (args.batch, args.prompt_len)), device=device)
    mask = torch.ones_like(ids)
    kw = dict(attention_mask=mask, do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
              pad_token_id=0)
    with torch.no_grad():
        model.generate(ids, **kw)  # warm-up
        times = []
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = model.generate(ids, **kw)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    n_tokens = (out.shape[1] - args.prompt_len) * args.batch
    best = min(times)
    emit(part="sampler", impl="hf-transformers", mode="greedy", shape=args.sampler_shape, layers=cfg.num_layers,
         batch=args.batch, prompt_len=args.prompt_len, new_tokens=args.new_tokens, tokens=n_tokens,
         seconds=round(best, 3), tokens_per_s=round(n_tokens / best, 1), init_s=round(init_s, 1),
         device=torch.cuda.get_device_name() if device == "cuda" else "cpu")


PARTS = {"logits": part_logits, "sampler": part_sampler, "hf": part_hf}


QUICK = dict(logits_shape="tiny", sampler_shape="tiny", logits_layers=2, sampler_layers=2, logits_seq=64, batch=4,
             prompt_len=16, new_tokens=16, repeats=1, vocab=512)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="*", default=list(PARTS), choices=list(PARTS))
    p.add_argument("--quick", action="store_true", default=None, help="tiny sizes (default when there is no GPU)")
    p.add_argument("--full", dest="quick", action="store_false", help="full sizes even without a GPU")
    p.add_argument("--logits-shape", default="deepseek-coder-1.3b")
    p.add_argument("--logits-layers", type=positive_int, default=4)
    p.add_argument("--logits-batch", type=positive_int, default=2)
    p.add_argument("--logits-seq", type=positive_int, default=1024)
    p.add_argument("--attention", nargs="*", default=["xla", "cudnn"])
    p.add_argument("--sampler-shape", default="deepseek-coder-6.7b")
    p.add_argument("--sampler-layers", type=positive_int, default=32)
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--prompt-len", type=positive_int, default=128)
    p.add_argument("--new-tokens", type=positive_int, default=128)
    p.add_argument("--repeats", type=positive_int, default=2)
    p.add_argument("--vocab", type=positive_int, default=None, help="override the vocabulary size")
    p.add_argument("--timeout", type=positive_int, default=240, help="seconds per part")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part here
    args = p.parse_args(argv)
    quick = not _has_gpu() if args.quick is None else args.quick
    if quick:  # tiny sizes are the defaults then; sizes given on the command line still hold
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
        args.quick = True
        args.attention = [a for a in args.attention if a == "xla" or _has_gpu()]
    return args


def _has_gpu() -> bool:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        return out.returncode == 0 and "GPU" in out.stdout
    except (OSError, subprocess.SubprocessError):
        return False


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.part:
        PARTS[args.part](args)
        return 0
    env = {**os.environ, "XLA_PYTHON_CLIENT_MEM_FRACTION": os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9")}
    if not _has_gpu():
        env.setdefault("JAX_PLATFORMS", "cpu")
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--quick", "--full")]
    mode = ["--quick"] if args.quick else ["--full"]
    failed = []
    for name in args.parts:
        start = time.perf_counter()
        cmd = [sys.executable, os.path.abspath(__file__), *forwarded, *mode, "--part", name]
        try:
            proc = subprocess.run(cmd, env=env, timeout=args.timeout, capture_output=True, text=True)
            sys.stdout.write(proc.stdout)
            if proc.returncode or '"error": ' in proc.stdout:
                failed.append(name)
            if proc.returncode:
                emit(part=name, error=f"exit {proc.returncode}", stderr_tail=proc.stderr[-1500:])
        except subprocess.TimeoutExpired as e:
            sys.stdout.write((e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""))
            emit(part=name, error=f"timed out after {args.timeout} s")
            failed.append(name)
        emit(part=name, wall_s=round(time.perf_counter() - start, 1))
        sys.stdout.flush()
    if failed:  # the figures printed are still worth reading; the exit status says some are missing
        print(f"failed parts: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

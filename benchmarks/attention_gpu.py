"""Packed cuDNN attention on the GPU: agreement with the XLA kernel, and fwd+bwd timings.

Prints JSON lines. ``check``: output and q/k/v gradients of ``cudnn`` with ``packed`` segments
(and of the segment-bias fallback) against ``xla``, over real (non-padding) tokens, bf16.
``time``: forward + backward of one attention layer at the 6.7B shape (4 x 2048, 32 heads of
128, 4 segments per row), as ``../shared/bench/attn_packing_probe.py`` measures it.

  python benchmarks/attention_gpu.py

Exits 1 when a case failed (off a GPU: all of them, "cuDNN is not detected"); its row says why.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp

from semcoder_jax.model.attention import dot_product_attention, packed_segments


def _inputs(b, s, h, d, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    q, kk, v = (jax.random.normal(k[i], (b, s, h, d), jnp.bfloat16) for i in range(3))
    bounds = jnp.array([0, s // 5, s // 2, (4 * s) // 5])
    seg = (jnp.arange(s)[None, :] >= bounds[:, None]).sum(0)[None, :].repeat(b, 0).astype(jnp.int32)
    return q, kk, v, seg


def _loss_fn(impl, packed_m):
    def f(q, k, v, seg):
        packed = packed_segments(seg, packed_m) if packed_m else None
        out = dot_product_attention(q, k, v, segment_ids_q=seg, segment_ids_kv=seg, implementation=impl, packed=packed)
        w = (seg != 0).astype(jnp.float32)[:, :, None, None]
        return (out.astype(jnp.float32) * w * jnp.cos(jnp.arange(out.shape[-1], dtype=jnp.float32))).sum(), out

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))


def check() -> bool:
    q, k, v, seg = _inputs(2, 512, 4, 128)
    seg = seg.at[0, 448:].set(0).at[1].set(jnp.where(jnp.arange(512) < 300, 1, 2))  # padding; 2 segments
    (_, ref), gref = _loss_fn("xla", 0)(q, k, v, seg)
    real = (seg != 0)[:, :, None, None]
    ok = True
    for name, impl, m in (("cudnn_packed", "cudnn", 8), ("cudnn_bias", "cudnn", 0)):
        try:
            (_, out), g = _loss_fn(impl, m)(q, k, v, seg)
            diff = lambda a, b: float(jnp.max(jnp.abs(jnp.where(real, a.astype(jnp.float32) - b.astype(jnp.float32), 0))))
            print(json.dumps(dict(part="check", case=name, out_maxabs=diff(out, ref),
                                  grad_maxabs=[diff(a, b) for a, b in zip(g, gref)],
                                  grad_scale=[float(jnp.max(jnp.abs(a.astype(jnp.float32)))) for a in gref])), flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(json.dumps(dict(part="check", case=name, error=str(e)[:400])), flush=True)
            ok = False
    return ok


def timings() -> bool:
    q, k, v, seg = _inputs(4, 2048, 32, 128)
    ok = True
    for name, impl, m, sg in (("cudnn_causal_no_segments", "cudnn", 0, jnp.ones_like(seg)),
                              ("cudnn_packed", "cudnn", 32, seg), ("cudnn_packed_m8", "cudnn", 8, seg),
                              ("cudnn_bias", "cudnn", 0, seg)):
        try:
            f = _loss_fn(impl, m)
            jax.block_until_ready(f(q, k, v, sg))
            t0 = time.perf_counter()
            for _ in range(20):
                r = f(q, k, v, sg)
            jax.block_until_ready(r)
            print(json.dumps(dict(part="time", case=name, ms=round((time.perf_counter() - t0) / 20 * 1e3, 3))), flush=True)
        except Exception as e:  # noqa: BLE001
            print(json.dumps(dict(part="time", case=name, error=str(e)[:400])), flush=True)
            ok = False
    return ok


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    print("jax", jax.__version__, jax.devices(), flush=True)
    checked = check()
    timed = timings()
    raise SystemExit(0 if checked and timed else 1)

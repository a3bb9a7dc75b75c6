"""``semcoder convert``: Hugging Face <-> Orbax checkpoints."""

from __future__ import annotations

import argparse

NOTHING_WRITTEN = "nothing was written at --out"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert checkpoints between Hugging Face and Orbax")
    sub = parser.add_subparsers(dest="direction", metavar="DIRECTION", required=True)

    to_orbax = sub.add_parser("hf-to-orbax", help="HF LlamaForCausalLM folder -> Orbax checkpoint (step 0)")
    to_orbax.add_argument("--hf-dir", required=True,
                          help="folder with config.json and safetensors (or pytorch_model.bin), or a hub id")
    to_orbax.add_argument("--revision", default=None, help="a hub id's branch, tag or commit (default: main)")
    to_orbax.add_argument("--out", required=True, help="new checkpoint folder (must not exist or be empty)")
    to_orbax.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default=None,
                          help="stored param dtype (default: the HF tensors' dtype)")
    to_orbax.add_argument("--compress", action="store_true", help="zstd-compress the arrays (smaller, slower)")
    to_orbax.set_defaults(func=_hf_to_orbax, on_interrupt=NOTHING_WRITTEN)

    to_hf = sub.add_parser("orbax-to-hf", help="Orbax checkpoint -> HF LlamaForCausalLM folder")
    to_hf.add_argument("--checkpoint", required=True, help="checkpoint folder (steps) or a params-only Orbax folder")
    to_hf.add_argument("--step", type=int, default=None, help="step to export (default: the latest)")
    to_hf.add_argument("--out", required=True, help="new HF folder (must not exist or be empty)")
    to_hf.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id to save beside the weights")
    to_hf.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="bfloat16",
                       help="stored weight dtype (default: bfloat16)")
    to_hf.add_argument("--max-shard-size", default="5GB", help="largest safetensors file (default 5GB)")
    to_hf.set_defaults(func=_orbax_to_hf, on_interrupt=NOTHING_WRITTEN)


def _hf_to_orbax(args: argparse.Namespace) -> int:
    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.convert import hf_to_orbax
    from semcoder_jax.hub import pinned_model_dir

    hf_dir, commit = pinned_model_dir(args.hf_dir, args.revision)
    quiet_orbax_warnings()
    _make_parent(args.out)
    out = hf_to_orbax(hf_dir, args.out, dtype=args.dtype, compress=args.compress)
    print(f"wrote {out}" + (f" (hub model {args.hf_dir} at commit {commit})" if commit else ""))
    return 0


def _orbax_to_hf(args: argparse.Namespace) -> int:
    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.convert import orbax_to_hf
    from semcoder_jax.hub import pinned_tokenizer

    tokenizer = pinned_tokenizer(args.tokenizer) if args.tokenizer else None
    quiet_orbax_warnings()
    _make_parent(args.out)
    out = orbax_to_hf(args.checkpoint, args.out, step=args.step, tokenizer=tokenizer,
                      dtype=args.dtype, max_shard_size=args.max_shard_size)
    print(f"wrote {out}")
    return 0


def _make_parent(out: str) -> None:
    """The folder ``--out`` goes in; one it cannot make was a traceback from the conversion."""
    from pathlib import Path

    from semcoder_jax.errors import SemcoderError

    parent = Path(out).absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SemcoderError(f"--out {out}: cannot make its folder {parent} ({e.strerror or e})") from None

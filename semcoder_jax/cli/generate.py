"""``semcoder generate``: complete the ``prompt`` field of each JSONL row with the JAX sampler."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from semcoder_jax.errors import SemcoderError
from semcoder_jax.hub import check_revision, pinned_model_dir, pinned_tokenizer


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate",
        help="complete JSONL prompts with a checkpoint (KV-cache sampler)",
        description="Read JSONL rows with a 'prompt' field; write the same rows plus 'completion'.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Orbax checkpoint directory (training run or hf-to-orbax output)")
    src.add_argument("--hf-dir", help="Hugging Face LlamaForCausalLM folder (safetensors), or a hub id (loaded at the "
                     "commit it names now, as semcoder eval does)")
    p.add_argument("--revision", help="hub id: the branch, tag or commit to load (default: main)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer folder or hub id (default: the --hf-dir's own if it has one, else the shipped DeepSeek-Coder)")
    p.add_argument("--prompts", required=True, help="input JSONL with a 'prompt' string per row")
    p.add_argument("--out", required=True, help="output JSONL")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0,
                   help="sample from the K likeliest tokens, after the temperature and before top-p (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--stop", nargs="*", default=[], type=unescape,
                   help=r"stop strings (not included in the completion); backslash escapes such as \n are read as in Python")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                   help="params and compute dtype (default: bfloat16 on GPU/TPU, float32 on CPU)")
    p.set_defaults(func=run, on_interrupt="nothing was written at --out")


def unescape(text: str) -> str:
    r"""``\n``, ``\t``, ``\\`` and other Python escapes in a command-line string; other text as is."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


def read_prompts(path: str) -> list[tuple[int, dict]]:
    """The rows with their line numbers, for errors that name the line."""
    from semcoder_jax.jsonl import iter_jsonl

    rows = []
    for n, row in iter_jsonl(path):
        if not isinstance(row.get("prompt"), str):
            raise SemcoderError(f"{path}:{n}: field 'prompt' is missing or not a string")
        rows.append((n, row))
    return rows


def run(args: argparse.Namespace) -> int:
    numbered = read_prompts(args.prompts)
    rows = [row for _, row in numbered]
    if args.batch_size < 1:
        raise SemcoderError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.top_k < 0:  # the sampler refuses it too, but only once the model has loaded
        raise SemcoderError(f"--top-k must be >= 0 (0: off), got {args.top_k}")
    check_revision(args.revision, args.hf_dir, args.checkpoint)
    if args.step is not None and not args.checkpoint:  # it would be ignored
        raise SemcoderError(f"--step {args.step}: a checkpoint's step, but the model is --hf-dir {args.hf_dir}")
    if Path(args.out).is_dir():  # found only after every completion, as a traceback
        raise SemcoderError(f"--out {args.out}: is a folder; give the output JSONL file's path")
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    try:  # as early: a folder that cannot be written
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch()
        tmp.unlink()
    except OSError as e:
        raise SemcoderError(f"--out {args.out}: cannot write it ({e.strerror or e})") from None

    from tqdm import tqdm

    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.sampling import Sampler, load_model_for_inference
    from semcoder_jax.tokenizer import load_tokenizer, tokenizer_source

    quiet_orbax_warnings()
    hf_dir, commit = pinned_model_dir(args.hf_dir, args.revision) if args.hf_dir else (None, None)
    tokenizer = load_tokenizer(pinned_tokenizer(tokenizer_source(args.tokenizer, hf_dir)))
    config, params = load_model_for_inference(checkpoint=args.checkpoint, step=args.step, hf_dir=hf_dir, dtype=args.dtype)
    sampler = Sampler(config, params, tokenizer)
    # Similar lengths share a batch (less padding); output keeps the input order, and row i samples
    # with seed + i whatever batch its length puts it in.
    lengths = [len(tokenizer(r["prompt"]).input_ids) for r in rows]
    context = config.max_position_embeddings
    too_long = [i for i, n in enumerate(lengths) if n >= context]
    if too_long:  # the sampler would refuse it in the last batch (longest last), after every other completion
        i = too_long[0]
        raise SemcoderError(f"{args.prompts}:{numbered[i][0]}: the prompt has {lengths[i]} tokens, no room for a "
                            f"completion within the model's max_position_embeddings of {context} "
                            f"({len(too_long)} such prompt(s))")
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    completions: dict[int, str] = {}
    for start in tqdm(range(0, len(order), args.batch_size), desc="generate", unit="batch", disable=None):
        idx = order[start : start + args.batch_size]
        texts = sampler.generate_text(
            [rows[i]["prompt"] for i in idx], max_new_tokens=args.max_new_tokens, temperature=args.temperature,
            top_p=args.top_p, top_k=args.top_k, seeds=[args.seed + i for i in idx], stop=args.stop,
        )
        completions.update(zip(idx, texts))

    with tmp.open("w") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({**row, "completion": completions[i]}) + "\n")
    os.replace(tmp, out)
    print(f"wrote {len(rows)} completions to {out}" + (f" (hub model {args.hf_dir} at commit {commit})" if commit else ""))
    return 0

"""Padding of our best-fit packer vs SemCoder's right-padding to each batch's longest row.

Same records for both: the formatted records of a data build (``records/*.jsonl``), tokenised with
the shipped DeepSeek-Coder tokenizer, packed as the build packs them (``--max-segments``, the data
config's default 8; 0 for no limit). Target: < 2% padding for the packer at seq_len 2048.

    python benchmarks/packing_padding.py --build out/data/demo [--seq-len 2048] [--max-segments 8] [--batch-sizes 4 8 16 32]
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from _args import positive_int


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True, help="output folder of `semcoder data build`")
    ap.add_argument("--seq-len", type=positive_int, default=2048)
    ap.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[4, 8, 16, 32])
    ap.add_argument("--max-segments", type=int, default=None, help="examples a row holds at most (default: the data config's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.max_segments is not None and args.max_segments < 0:
        ap.error(f"--max-segments: expected 0 (no limit) or more, got {args.max_segments}")
    record_files = [p for p in sorted(Path(args.build, "records").glob("*.jsonl")) if p.stem != "rejects"]
    if not record_files:
        ap.error(f"--build: no {Path(args.build, 'records', '*.jsonl')} (the output folder of `semcoder data build`?)")

    from data_pipeline import packing
    from data_pipeline.config import DataConfig
    from data_pipeline.records import read_jsonl
    from data_pipeline.tokenization import tokenize_records
    from semcoder_jax.tokenizer import load_tokenizer

    records = [r for p in record_files for r in read_jsonl(p)]
    examples, too_long = tokenize_records(records, load_tokenizer(), args.seq_len)
    if not examples:
        raise SystemExit(f"no record of {len(records)} under {args.build} fits in --seq-len {args.seq_len}")
    lengths = [len(e) for e in examples]
    print(f"{len(examples)} records ({len(too_long)} longer than {args.seq_len} dropped), "
          f"mean {sum(lengths) / len(lengths):.0f} tokens, max {max(lengths)}")
    max_segments = DataConfig.max_segments if args.max_segments is None else args.max_segments
    rows = packing.pack(examples, args.seq_len, mode="best_fit", seed=args.seed, max_segments=max_segments)
    print(f"best-fit packing into {args.seq_len}, at most {max_segments or 'any number of'} examples a row: {len(rows)} rows, padding {100 * packing.padding_fraction(rows, args.seq_len):.2f}% "
          f"(the fewest rows that could hold them: {-(-sum(lengths) // args.seq_len)})")
    pad_rows = packing.pack(examples, args.seq_len, mode="pad", seed=args.seed)
    print(f"one record per {args.seq_len}-token row (pad mode): padding {100 * packing.padding_fraction(pad_rows, args.seq_len):.2f}%")
    shuffled = lengths[:]
    random.Random(args.seed).shuffle(shuffled)
    for bs in args.batch_sizes:
        frac = packing.right_pad_batches_fraction(shuffled, bs)
        print(f"SemCoder right-padding, shuffled batches of {bs}: padding {100 * frac:.2f}%")


if __name__ == "__main__":
    main()

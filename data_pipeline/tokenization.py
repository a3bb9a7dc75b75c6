"""Formatted records -> token ids: BOS + prompt, then response + EOS; loss on the response only."""

from __future__ import annotations

from typing import Any, Sequence

from data_pipeline.packing import Example


def tokenize_records(records: Sequence[dict[str, Any]], tokenizer, seq_len: int) -> tuple[list[Example], list[dict[str, Any]]]:
    """Examples, and rejects (``too_long`` when BOS+prompt+response+EOS exceeds ``seq_len``)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        from semcoder_jax.errors import SemcoderError

        raise SemcoderError("tokenizer has no BOS or EOS token id (config key tokenizer)")
    examples, rejects = [], []
    batch = 256
    for s in range(0, len(records), batch):
        chunk = records[s : s + batch]
        p_ids = tokenizer([r["prompt"] for r in chunk], add_special_tokens=False)["input_ids"]
        r_ids = tokenizer([r["response"] for r in chunk], add_special_tokens=False)["input_ids"]
        for rec, p, r in zip(chunk, p_ids, r_ids):
            ids = (bos, *p, *r, eos)
            if len(ids) > seq_len:
                rejects.append({"record": {"id": rec["id"], "kind": rec["kind"]}, "reason": "too_long", "detail": f"{len(ids)} tokens > seq_len {seq_len}"})
                continue
            mask = (0,) * (1 + len(p)) + (1,) * (len(r) + 1)
            examples.append(Example(rec["id"], ids, mask))
    return examples, rejects

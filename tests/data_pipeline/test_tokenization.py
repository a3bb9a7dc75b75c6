"""Tokenising records: the loss mask covers exactly the response."""

from data_pipeline.tokenization import tokenize_records
from semcoder_jax import prompts


def test_tokenize_masks_exactly_the_response(tokenizer):
    recs = [{"id": "a", "kind": "nl2code", "prompt": prompts.render("nl2code", "Add."), "response": "def add(a, b):\n    return a + b"},
            {"id": "b", "kind": "nl2code", "prompt": "x " * 400, "response": "y"}]
    exs, rejects = tokenize_records(recs, tokenizer, seq_len=128)
    assert [r["reason"] for r in rejects] == ["too_long"] and rejects[0]["record"]["id"] == "b"
    (ex,) = exs
    assert ex.input_ids[0] == tokenizer.bos_token_id == 32013 and ex.input_ids[-1] == tokenizer.eos_token_id == 32014
    target = [t for t, m in zip(ex.input_ids, ex.loss_mask) if m]
    assert tokenizer.decode(target[:-1]) == recs[0]["response"] and target[-1] == 32014
    prompt_part = [t for t, m in zip(ex.input_ids[1:], ex.loss_mask[1:]) if not m]
    assert tokenizer.decode(prompt_part) == recs[0]["prompt"]

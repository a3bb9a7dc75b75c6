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


def test_records_are_encoded_as_the_reference_encodings_with_bos_and_eos(tokenizer):
    """Prompt and response are encoded apart as SemCoder's training does (BOS + prompt, response + EOS),
    each as the shipped tokenizer's reference encodings (llama.cpp's DeepSeek-Coder vocabulary test)."""
    from semcoder_jax import DEFAULT_TOKENIZER_DIR

    texts = (DEFAULT_TOKENIZER_DIR / "reference-encodings.inp").read_text(encoding="utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    lines = (DEFAULT_TOKENIZER_DIR / "reference-encodings.out").read_text(encoding="utf-8").split("\n")
    want = [[int(i) for i in line.split()] for line in lines[: len(texts)]]
    pairs = [(i, (i + 7) % len(texts)) for i in range(len(texts))]
    recs = [{"id": f"r{i}", "kind": "forward", "prompt": texts[i], "response": texts[j]} for i, j in pairs]
    exs, rejects = tokenize_records(recs, tokenizer, seq_len=4096)
    assert not rejects and [e.id for e in exs] == [r["id"] for r in recs]
    for (i, j), ex in zip(pairs, exs):
        assert list(ex.input_ids) == [32013, *want[i], *want[j], 32014], (texts[i], texts[j])
        assert list(ex.loss_mask) == [0] * (1 + len(want[i])) + [1] * (len(want[j]) + 1)

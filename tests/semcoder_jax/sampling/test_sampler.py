"""The KV-cache sampler against HF generate, sampling reproducibility, stop strings, buckets."""

import jax
import numpy as np
import pytest

from semcoder_jax.errors import SemcoderError
from semcoder_jax.model import llama
from semcoder_jax.model.config import get_model_config
from semcoder_jax.sampling import Sampler


class _IdsTokenizer:
    """Decodes ids as ``<id>`` words: stop strings without a real vocabulary."""

    @staticmethod
    def decode(ids, skip_special_tokens=True):
        return "".join(f"<{int(t)}>" for t in ids)


def test_greedy_batch_equals_hf_generate_left_padded(hf_llama):
    """One left-padded batch: prompts either side of the 16-token prompt bucket and one filling the
    32-token bucket (no padding), decoding in one loop and in chunks of 8 (stop strings), a stop
    string cutting past a chunk boundary, and a row capped at max_position_embeddings (its tokens up
    to there are still HF's)."""
    import torch

    hf, config, params = hf_llama(kv_heads=2)
    context, new = 40, 20
    sampler = Sampler(config.replace(max_position_embeddings=context), params, _IdsTokenizer(), chunk_size=8)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, config.vocab_size, n).tolist() for n in (3, 15, 16, 17, 32)]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(x)) + x for x in prompts])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts])
    hf.generation_config.eos_token_id = None
    with torch.no_grad():
        out = hf.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=new, pad_token_id=0)
    assert out.shape == (len(prompts), width + new)
    want = [out[i, width:width + min(new, context - len(x))].tolist() for i, x in enumerate(prompts)]
    assert [len(w) for w in want] == [20, 20, 20, 20, 8] and len({tuple(w) for w in want}) == 5

    assert sampler.generate(prompts, max_new_tokens=new, eos_id=-1) == want
    assert sampler.generate(prompts, max_new_tokens=new, eos_id=-1, stop=["<-1>"]) == want  # chunked decode
    row = want[2]
    stop = next(t for t in row[10:] if t not in row[:10])
    cut = sampler.generate(prompts, max_new_tokens=new, eos_id=-1, stop=[f"<{stop}>"])
    assert cut[2] == row[: row.index(stop) + 1]  # ids keep the token that completes the stop string
    assert all(c == w[: len(c)] for c, w in zip(cut, want))


@pytest.fixture(scope="module")
def tiny_sampler(tokenizer):
    config = get_model_config("tiny")
    params = llama.init_params(config, jax.random.PRNGKey(0))
    params = jax.tree.map(lambda a: a * 5, params)  # a peakier distribution than the init's
    return Sampler(config, params, tokenizer, chunk_size=8)


def test_sampling_is_reproducible_per_seed_and_varies_across_seeds(tiny_sampler):
    prompts = [[32013, 100, 200], [32013, 7, 8, 9, 10, 11]]
    kw = dict(max_new_tokens=16, temperature=1.0, top_p=0.9, eos_id=-1)
    a = tiny_sampler.generate(prompts, seed=1, **kw)
    assert a == tiny_sampler.generate(prompts, seed=1, **kw)
    b = tiny_sampler.generate(prompts, seed=2, **kw)
    assert a != b
    greedy = tiny_sampler.generate(prompts, max_new_tokens=16, eos_id=-1)
    assert greedy == tiny_sampler.generate(prompts, max_new_tokens=16, eos_id=-1, seed=5)
    assert a != greedy
    # top_p this small keeps only the most likely token: sampling becomes greedy.
    assert tiny_sampler.generate(prompts, seed=3, max_new_tokens=16, temperature=1.0, top_p=1e-6, eos_id=-1) == greedy


def test_eos_ends_a_row_and_is_not_returned(tiny_sampler):
    prompt = [[32013, 100, 200]]
    free = tiny_sampler.generate(prompt, max_new_tokens=12, eos_id=-1)[0]
    eos = free[5]
    cut = tiny_sampler.generate(prompt, max_new_tokens=12, eos_id=eos)[0]
    assert cut == free[: free.index(eos)]


def test_stop_strings_cut_the_completion(tiny_sampler, tokenizer):
    prompt = "def f(x):"
    free = tiny_sampler.generate_text([prompt], max_new_tokens=24, eos_id=-1)[0]
    assert len(free) > 8
    stop = free[4:7]
    cut = tiny_sampler.generate_text([prompt], max_new_tokens=24, eos_id=-1, stop=[stop])[0]
    assert cut == free[: free.index(stop)]
    ids = tiny_sampler.generate([tokenizer(prompt).input_ids], max_new_tokens=24, eos_id=-1, stop=[stop])[0]
    text = tokenizer.decode(ids)
    assert stop in text and stop not in tokenizer.decode(ids[:-1])


def test_prompt_buckets_do_not_recompile(tiny_sampler):
    before = tiny_sampler._prefill._cache_size()
    tiny_sampler.generate([[1, 2, 3]], max_new_tokens=8, eos_id=-1)
    mid = tiny_sampler._prefill._cache_size()
    tiny_sampler.generate([[1, 2, 3, 4, 5, 6, 7]], max_new_tokens=8, eos_id=-1)
    tiny_sampler.generate([[9] * 12], max_new_tokens=8, eos_id=-1)
    assert tiny_sampler._prefill._cache_size() == mid <= before + 1


def test_left_padding_does_not_change_a_row(tiny_sampler):
    short, long = [32013, 5, 6], [32013] + list(range(40, 60))
    alone = tiny_sampler.generate([short], max_new_tokens=10, eos_id=-1)[0]
    together = tiny_sampler.generate([long, short], max_new_tokens=10, eos_id=-1)[1]
    assert alone == together


def test_bad_arguments_are_clear_errors(tiny_sampler):
    with pytest.raises(SemcoderError, match="prompt 1 is empty"):
        tiny_sampler.generate([[1], []])
    with pytest.raises(SemcoderError, match="top_p"):
        tiny_sampler.generate([[1]], top_p=0.0)
    # out of the vocabulary: the embedding read NaN and every new token came out as 0
    vocab = tiny_sampler.config.vocab_size
    with pytest.raises(SemcoderError, match=f"prompt 1 has token id {vocab} at position 2, outside the model's vocabulary of {vocab}"):
        tiny_sampler.generate([[1], [1, 2, vocab]], max_new_tokens=2)
    with pytest.raises(SemcoderError, match="prompt 0 has token id -5 at position 1"):
        tiny_sampler.generate([[1, -5]], max_new_tokens=2)
    with pytest.raises(SemcoderError, match="tokenizer"):
        Sampler(tiny_sampler.config, tiny_sampler.params).generate([[1]], stop=["x"])


def test_empty_stop_string_is_an_error_not_an_empty_completion(tiny_sampler):
    # ``--stop "$UNSET"`` passes "": it is in every text, so each completion would silently become "".
    with pytest.raises(SemcoderError, match="stop strings must not be empty"):
        tiny_sampler.generate_text(["def f(x):"], max_new_tokens=4, eos_id=-1, stop=["\ndef", ""])


def test_top_p_one_keeps_every_token():
    """With top_p = 1 no token is filtered, even where the float32 running sum reaches 1 early."""
    import jax.numpy as jnp

    from semcoder_jax.sampling.sampler import nucleus_logits

    logits = jnp.array([[30.0, 0.0, -1.0]])  # softmax rounds the top probability to 1.0
    np.testing.assert_array_equal(np.isfinite(nucleus_logits(logits, jnp.float32(1.0), jnp.float32(1.0))), [[True, True, True]])
    np.testing.assert_array_equal(np.isfinite(nucleus_logits(logits, jnp.float32(1.0), jnp.float32(0.5))), [[True, False, False]])


def test_a_rows_sample_depends_on_its_prompt_and_seed_not_on_its_batch(tiny_sampler):
    """As vLLM's per-request seed: one key per batch gave a row other noise beside other prompts,
    at another position, or in another batch size bucket."""
    x, others = [32013, 100, 200], [[32013, 7, 8, 9], [32013] + list(range(40, 60)), [32013, 5], [32013, 6, 6]]
    kw = dict(max_new_tokens=12, temperature=1.0, eos_id=-1)
    alone = tiny_sampler.generate([x], seeds=[11], **kw)[0]
    assert tiny_sampler.generate([others[0], x], seeds=[3, 11], **kw)[1] == alone
    assert tiny_sampler.generate([others[1], others[2], x], seeds=[4, 5, 11], **kw)[2] == alone  # a padding row, a longer bucket
    assert tiny_sampler.generate(others + [x], seeds=[1, 2, 3, 4, 11], **kw)[4] == alone  # batch bucket 8
    # Each batch below reuses a (batch, prompt) bucket compiled above: a new bucket costs a compile.
    same = tiny_sampler.generate([x, x, x, others[1]], seeds=[11, 12, 11, 4], **kw)
    assert same[0] == same[2] == alone and same[1] != alone
    # The default, seed + i: prompts split into batches at `start` with `seed + start` sample as one call.
    prompts = [x] + others
    whole = tiny_sampler.generate(prompts, seed=7, **kw)
    assert whole == tiny_sampler.generate(prompts[:2], seed=7, **kw) + tiny_sampler.generate(prompts[2:], seed=9, **kw)
    assert len({tuple(r) for r in tiny_sampler.generate([x] * 4 + [others[1]], seed=7, **kw)[:4]}) == 4
    greedy = tiny_sampler.generate([x], max_new_tokens=12, eos_id=-1)
    assert greedy == tiny_sampler.generate([x], seeds=[5], max_new_tokens=12, eos_id=-1) != [alone]


def test_seeds_do_not_recompile(tiny_sampler):
    kw = dict(max_new_tokens=8, temperature=1.0, eos_id=-1)
    tiny_sampler.generate([[1, 2, 3]], seed=1, **kw)
    sizes = tiny_sampler._prefill._cache_size(), tiny_sampler._decode._cache_size()
    tiny_sampler.generate([[1, 2, 4]], seeds=[2**32 - 1], **kw)
    tiny_sampler.generate([[1, 2, 5]], seed=12345, **kw)
    assert (tiny_sampler._prefill._cache_size(), tiny_sampler._decode._cache_size()) == sizes


def test_seeds_must_match_the_prompts(tiny_sampler):
    with pytest.raises(SemcoderError, match="2 seeds for 1 prompts"):
        tiny_sampler.generate([[1, 2]], seeds=[1, 2], temperature=1.0)


def test_generation_stops_at_the_models_context_length(tiny_sampler):
    """As vLLM: prompt + new tokens never pass max_position_embeddings (RoPE positions past the
    trained range); a longer max_new_tokens is capped per row, the tokens before the cap unchanged."""
    a, b = [32013, 100, 200, 300], [32013] + list(range(40, 48))
    free = tiny_sampler.generate([a, b], max_new_tokens=20, eos_id=-1)
    short = Sampler(tiny_sampler.config.replace(max_position_embeddings=10), tiny_sampler.params, chunk_size=8)
    assert short.generate([a, b], max_new_tokens=20, eos_id=-1) == [free[0][:6], free[1][:1]]
    assert short.generate([a], max_new_tokens=3, eos_id=-1) == [free[0][:3]]


def test_a_prompt_that_fills_the_context_is_an_error_naming_it(tiny_sampler):
    short = Sampler(tiny_sampler.config.replace(max_position_embeddings=10), tiny_sampler.params)
    with pytest.raises(SemcoderError, match=r"prompt 1 has 10 tokens: no room for any of max_new_tokens=5 "
                                            r"within the model's max_position_embeddings of 10"):
        short.generate([[32013, 5], [32013] * 10], max_new_tokens=5)


def test_generation_stops_at_any_of_several_eos_ids(tiny_sampler):
    """DeepSeek-Coder instruct and many HF configs list several EOS ids: each one ends a row."""
    prompt = [[32013, 100, 200]]
    free = tiny_sampler.generate(prompt, max_new_tokens=12, eos_id=-1)[0]
    first, later = free[2], free[6]
    assert first not in free[:2] and later not in free[:6] and first != later
    assert tiny_sampler.generate(prompt, max_new_tokens=12, eos_id=[later, first])[0] == free[:2]
    assert tiny_sampler.generate(prompt, max_new_tokens=12, eos_id=[later])[0] == free[:6]
    # the config's ids are the default: the first one and the extra ones alike
    config = tiny_sampler.config.replace(eos_token_id=later, extra_eos_token_ids=[first])
    assert Sampler(config, tiny_sampler.params).generate(prompt, max_new_tokens=12)[0] == free[:2]


@pytest.mark.parametrize("temperature, top_k, top_p", [
    (1.0, 0, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.5, 20, 0.9), (1.0, 3, 0.999), (2.0, 1000, 0.3), (1.0, 1, 0.5),
])
def test_filters_are_hf_warpers(temperature, top_k, top_p):
    """Temperature, then top-k (0: off), then top-p (1: off), as HF generate applies its warpers:
    the same tokens survive with the same probabilities. top-p after top-k once kept every token."""
    import jax.numpy as jnp
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    from semcoder_jax.sampling.sampler import nucleus_logits

    logits = (np.random.default_rng(top_k).normal(size=(4, 256)) * 3).astype(np.float32)
    want = torch.tensor(logits)
    warpers = [TemperatureLogitsWarper(temperature)]
    warpers += [TopKLogitsWarper(top_k)] if top_k > 0 else []
    warpers += [TopPLogitsWarper(top_p)] if top_p < 1 else []
    for warper in warpers:
        want = warper(None, want)
    got = np.asarray(nucleus_logits(jnp.asarray(logits), jnp.float32(temperature), jnp.float32(top_p), jnp.int32(top_k)))
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want.numpy()))
    assert np.isfinite(got).sum(axis=-1).min() >= 1
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(got)), want.softmax(-1).numpy(), atol=1e-6)


def test_top_k_keeps_ties_as_hf():
    import jax.numpy as jnp
    import torch
    from transformers import TopKLogitsWarper

    from semcoder_jax.sampling.sampler import nucleus_logits

    logits = np.array([[5.0, 1.0, 5.0, 3.0, 5.0, 0.0]], np.float32)
    want = np.isfinite(TopKLogitsWarper(2)(None, torch.tensor(logits)).numpy())
    got = np.isfinite(np.asarray(nucleus_logits(jnp.asarray(logits), jnp.float32(1.0), jnp.float32(1.0), jnp.int32(2))))
    np.testing.assert_array_equal(got, want)
    assert got.tolist() == [[True, False, True, False, True, False]]


def test_top_k_one_samples_greedily(tiny_sampler):
    prompts = [[32013, 100, 200], [32013, 7, 8, 9, 10, 11]]  # the shapes of the reproducibility test
    greedy = tiny_sampler.generate(prompts, max_new_tokens=16, eos_id=-1)
    kw = dict(max_new_tokens=16, temperature=1.0, top_p=0.9, eos_id=-1)
    assert tiny_sampler.generate(prompts, seed=1, top_k=1, **kw) == greedy
    assert tiny_sampler.generate(prompts, seed=1, top_k=0, **kw) == tiny_sampler.generate(prompts, seed=1, **kw) != greedy
    with pytest.raises(SemcoderError, match="top_k must be an integer >= 0"):
        tiny_sampler.generate(prompts, top_k=-1, **kw)

"""The jax backend's samples: the same prompt, sample index and run seed give the same text,
whatever the runner's and the backend's batch sizes."""

from eval.backends import BackendConfig, get_backend


def test_samples_do_not_depend_on_the_batch_sizes(tiny_hf, tmp_path):
    from eval.cache import GenerationCache
    from eval.runner import generate_cached

    prompts = {"a": "def add(a, b):\n    return", "b": "x = [1, 2", "c": "# sort a list\n"}
    kw = dict(n=2, temperature=1.0, top_p=1.0, max_new_tokens=6, stop=(), seed=3)
    runs = []
    for runner_bs, backend_bs in ((1, 1), (3, 4)):
        backend = get_backend("jax", BackendConfig(hf_dir=str(tiny_hf), dtype="float32", batch_size=backend_bs))
        cache = GenerationCache(tmp_path / f"{runner_bs}-{backend_bs}.jsonl", "k")
        runs.append(generate_cached(backend, prompts, cache, batch_size=runner_bs, **kw))
    assert runs[0] == runs[1]
    assert len({text for texts in runs[0].values() for text in texts}) > 1

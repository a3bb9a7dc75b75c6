"""Shared fixtures for the evaluation tests: one sandbox and one ground-truth cache per session."""

import pytest


@pytest.fixture(scope="session")
def sandbox():
    from semcoder_jax.execution import Sandbox

    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def gt_cache(tmp_path_factory, monkeypatch_session):
    path = tmp_path_factory.mktemp("eval_gt_cache")
    monkeypatch_session.setenv("SEMCODER_EVAL_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=32256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, rope_theta=10000.0,
        bos_token_id=32013, eos_token_id=32014, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger weights so greedy paths are not near-ties
        for p in model.parameters():
            p.mul_(3.0) if p.dim() > 1 else None
    path = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


class ScriptedBackend:
    """Answers with the reference (or junk) and counts what it is asked; can crash after k calls."""

    name = "scripted"

    def __init__(self, answers, crash_after=None):
        self.answers, self.crash_after = answers, crash_after
        self.calls, self.prompts = 0, 0

    def identity(self):
        return {"backend": "scripted", "model": "oracle"}

    def generate(self, prompts, *, n=1, temperature=0.0, top_p=1.0, max_new_tokens=512, stop=(), seed=0):
        if self.crash_after is not None and self.calls >= self.crash_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.prompts += len(prompts)
        return [[self.answers(p)] * n for p in prompts]

    def close(self):
        pass


def _make_humaneval_oracle():
    from eval.benchmarks import load_problems
    from semcoder_jax import prompts as P

    by_prompt = {}
    for p in load_problems("humaneval")[:6]:
        instr, prefix = P.nl2code_humaneval(p.prompt)
        by_prompt[P.nl2code_prompt(instr, prefix)] = p.canonical_solution + "```\njunk after the block"
    return lambda prompt: by_prompt.get(prompt, "    return None\n")


@pytest.fixture
def scripted_backend():
    """The ``ScriptedBackend`` class (test modules can't import conftest under ``--import-mode=importlib``)."""
    return ScriptedBackend


@pytest.fixture
def humaneval_oracle():
    """Answers the first six HumanEval prompts with their reference solution, others with junk."""
    return _make_humaneval_oracle()

"""The shipped DeepSeek-Coder tokenizer matches the original's encodings and special tokens."""

import pytest

from semcoder_jax import DEFAULT_TOKENIZER_DIR
from semcoder_jax.errors import SemcoderError
from semcoder_jax.tokenizer import load_tokenizer

SEPARATOR = "\n__ggml_vocab_test__\n"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _reference_cases():
    texts = (DEFAULT_TOKENIZER_DIR / "reference-encodings.inp").read_text(encoding="utf-8").split(SEPARATOR)
    assert texts[-1] == ""  # every case, the last included, ends with the separator
    texts = texts[:-1]
    lines = (DEFAULT_TOKENIZER_DIR / "reference-encodings.out").read_text(encoding="utf-8").split("\n")
    ids = [[int(i) for i in line.split()] for line in lines[: len(texts)]]
    return texts, ids


def test_reference_file_has_46_cases():
    texts, ids = _reference_cases()
    assert len(texts) == len(ids) == 46


def test_reproduces_reference_encodings(tok):
    texts, want = _reference_cases()
    got = [tok.encode(t, add_special_tokens=False) for t in texts]
    mismatched = [(t, g, w) for t, g, w in zip(texts, got, want) if g != w]
    assert not mismatched, mismatched[:3]


def test_bos_added_by_default_and_decodes_back(tok):
    code = "def add(a, b):\n    return a + b\n"
    ids = tok(code).input_ids
    assert ids[0] == 32013 and ids.count(32013) == 1
    assert ids[1:] == tok.encode(code, add_special_tokens=False)
    assert tok.decode(ids, skip_special_tokens=True) == code


def test_special_token_ids(tok):
    assert tok.bos_token_id == 32013 and tok.eos_token_id == 32014
    expected = {
        "<｜begin▁of▁sentence｜>": 32013,
        "<｜end▁of▁sentence｜>": 32014,
        "<｜fim▁hole｜>": 32015,
        "<｜fim▁begin｜>": 32016,
        "<｜fim▁end｜>": 32017,
        "<pad>": 32018,
        "<|User|>": 32019,
        "<|Assistant|>": 32020,
        "<|EOT|>": 32021,
    }
    assert {t: tok.convert_tokens_to_ids(t) for t in expected} == expected
    for token, i in expected.items():  # one token each, not split into bytes
        assert tok.encode(token, add_special_tokens=False) == [i]


def test_loads_from_path_string(tokenizer_dir, tok):
    assert load_tokenizer(str(tokenizer_dir)).encode("x = 1", add_special_tokens=False) == tok.encode(
        "x = 1", add_special_tokens=False
    )


def test_bad_tokenizer_is_one_line_error(tmp_path):
    with pytest.raises(SemcoderError, match="cannot load tokenizer"):
        load_tokenizer(tmp_path / "nothing-here")


def test_loads_without_a_warning():
    """Every data build and evaluation loads it: a warning about its config would be noise each time."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", "from semcoder_jax.tokenizer import load_tokenizer; load_tokenizer()"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "tokenizer_class" not in run.stdout + run.stderr, run.stderr

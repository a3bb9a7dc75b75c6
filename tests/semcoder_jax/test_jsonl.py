import gzip

import pytest

from semcoder_jax.errors import SemcoderError
from semcoder_jax.jsonl import iter_jsonl


def test_a_line_that_is_not_utf8_is_named_and_the_others_are_kept(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": "\xff"}\n{"c": "\xc3\xa9"}\n')
    with pytest.raises(SemcoderError, match=r"rows\.jsonl:3: not valid UTF-8 \(byte 0xff"):
        list(iter_jsonl(path))
    bad = []
    rows = list(iter_jsonl(path, on_bad=lambda line, text, reason: bad.append((line, reason))))
    assert rows == [(1, {"a": 1}), (4, {"c": "é"})]
    assert [line for line, _ in bad] == [3]


def test_a_broken_gzip_file_is_named(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-20])
    with pytest.raises(SemcoderError, match=r"rows\.jsonl\.gz: not a readable gzip file"):
        list(iter_jsonl(path))


def test_rows_and_their_file_lines(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress('{"a": "π"}\r\n\n[1]\n{"b": 2}'.encode()))
    bad = []
    rows = list(iter_jsonl(path, on_bad=lambda line, text, reason: bad.append((line, text, reason))))
    assert rows == [(1, {"a": "π"}), (4, {"b": 2})]
    assert bad == [(3, "[1]", "expected a JSON object, got list")]


def test_a_bad_line_of_a_crlf_file_is_reported_without_its_line_end(tmp_path):
    """Read as bytes, a Windows line kept its "\r" in the reported text (a reject's "text")."""
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\r\n[1]\r\n{"b": \xff}\r\n')
    bad = []
    rows = list(iter_jsonl(path, on_bad=lambda line, text, reason: bad.append((line, text))))
    assert rows == [(1, {"a": 1})]
    assert bad == [(2, "[1]"), (3, '{"b": \ufffd}')]


def test_a_line_nested_too_deeply_is_a_bad_line_not_a_traceback(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"a": 1}\n' + "[" * 200_000 + "]" * 200_000 + '\n{"b": 2}\n')
    with pytest.raises(SemcoderError, match=r"deep.jsonl:2: JSON nested too deeply"):
        list(iter_jsonl(path))
    bad = []
    rows = list(iter_jsonl(path, on_bad=lambda n, text, reason: bad.append((n, reason))))
    assert [n for n, _ in rows] == [1, 3] and bad == [(2, "JSON nested too deeply to read")]

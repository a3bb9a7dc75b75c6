"""Seed extraction from a code corpus: kinds, duplicates, unparsable files."""

import ast

from data_pipeline.stages.seeds import extract_seeds


def test_extract_seeds_kinds():
    src = "class A:\n    def m(self, x):\n        y = x + 1\n        return y\n\nfor i in range(3):\n    print(i)\n    print(i * 2)\n"
    seeds = extract_seeds(src, min_lines=3)
    assert [s["seed_kind"] for s in seeds] == ["class", "function", "block"]
    assert seeds[1]["code"].startswith("def m(self, x):\n    y = x + 1")


def test_repeated_seed_code_is_rejected_once_per_copy(tmp_path):
    """The same file in two corpus folders gave every seed twice under one id: each problem trained twice."""
    from data_pipeline import build
    from data_pipeline.config import DataConfig

    code = "def twice(x):\n    y = x * 2\n    return y\n"
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "m.py").write_text(code)
    (tmp_path / "a" / "other.py").write_text("\n\n" + code)  # the same code elsewhere in a corpus
    records, rejects = build.source_records(DataConfig(corpus_dirs=[str(tmp_path / "a"), str(tmp_path / "b")], seed_kinds=["function"]))
    assert len(records) == len({r["id"] for r in records}) == 1
    assert [r["reason"] for r in rejects] == ["duplicate_seed"] * 2
    assert all(r["detail"] == f"same code as {records[0]['id']}" for r in rejects)


def test_a_corpus_file_too_deep_to_parse_is_rejected_not_fatal(tmp_path):
    """One generated file with a huge expression stopped the whole build with a RecursionError."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.seeds import collect_seeds

    (tmp_path / "deep.py").write_text("def g(x):\n    y = x\n    return " + "+".join(["x"] * 100_000) + "\n")
    (tmp_path / "ok.py").write_text("def h(x):\n    y = x + 1\n    return y\n")
    records, rejects = collect_seeds(DataConfig(corpus_dirs=[str(tmp_path)]))
    assert [r["name"] for r in records] == ["h"]
    assert [(r["record"]["source_file"], r["reason"]) for r in rejects] == [("deep.py", "unparsable_file")]


def test_corpus_files_are_decoded_as_python_decodes_them(tmp_path):
    """A file saved with a UTF-8 byte-order mark, or in the encoding its coding line declares, is
    valid Python; both were rejected as ``unparsable_file``."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.seeds import collect_seeds

    (tmp_path / "bom.py").write_bytes("def bom(x):\n    y = x + 1\n    return y\n".encode("utf-8-sig"))
    (tmp_path / "latin.py").write_bytes("# -*- coding: latin-1 -*-\ndef latin(s):\n    t = s + 'é'\n    return t\n".encode("latin-1"))
    records, rejects = collect_seeds(DataConfig(corpus_dirs=[str(tmp_path)], seed_kinds=["function"]))
    assert rejects == []
    assert [r["code"] for r in records] == ["def bom(x):\n    y = x + 1\n    return y",
                                            "def latin(s):\n    t = s + 'é'\n    return t"]


def _strings(tree: ast.AST) -> list:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, (str, bytes))]


def test_nested_seed_keeps_multiline_strings_exactly():
    """Dedenting a method moved every line by its column: string lines indented less than the
    ``def`` lost all their leading spaces, the others lost the method's indentation."""
    src = ('class A:\n    def m(self):\n        s = """\n  two\n        eight\n"""\n'
           '        t = f"""{s}\n   three"""\n        return s + t, b"""\n b"""\n')
    method = ast.parse(src).body[0].body[0]
    (seed,) = extract_seeds(src, kinds=("function",))
    assert seed["code"].startswith("def m(self):\n    s = ")
    assert _strings(ast.parse(seed["code"])) == _strings(method) and "\n  two\n        eight\n" in _strings(method)


def test_a_folder_named_like_a_python_file_or_a_broken_link_does_not_stop_the_corpus(tmp_path):
    """``rglob("*.py")`` also yields folders and dangling links: opening either stopped the build with a traceback."""
    from data_pipeline.config import DataConfig
    from data_pipeline.stages.seeds import collect_seeds

    (tmp_path / "pkg.py").mkdir()
    (tmp_path / "pkg.py" / "inner.py").write_text("def h(x):\n    y = x + 1\n    return y\n")
    (tmp_path / "gone.py").symlink_to(tmp_path / "missing.py")
    records, rejects = collect_seeds(DataConfig(corpus_dirs=[str(tmp_path)]))
    assert [(r["name"], r["source_file"]) for r in records] == [("h", "pkg.py/inner.py")]
    assert [(r["record"]["source_file"], r["reason"]) for r in rejects] == [("gone.py", "unparsable_file")]

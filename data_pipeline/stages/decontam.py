"""Decontamination against HumanEval(+), MBPP(+), CRUXEval and, when given, LiveCodeBench.

A problem is dropped when its normalised solution is within an edit-similarity threshold (rapidfuzz)
of a benchmark program, when its statement is within ``text_similarity`` of a benchmark statement
(both lower-cased words; a statement, the record's as the benchmark's, is a Python prompt's docstrings
or other text, without doctest examples or asserts), or when it shares a large fraction of code,
statement or whole-prompt n-grams with one benchmark item: of the record's n-grams, or of the item's
(a benchmark solution or statement copied into a longer one; items of at least
``MIN_CONTAINED_GRAMS`` n-grams, shorter ones are common phrases).
Execution samples sharing an input/output pair with CRUXEval are removed from the record.
"""

from __future__ import annotations

import ast
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_pipeline.config import DecontamConfig, resolve_path
from data_pipeline.stages.base import Reject, StageContext

_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
MIN_CONTAINED_GRAMS = 5


_TYPING_MODULES = ("typing", "__future__")


def _strip_annotations(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    fn.returns = None
    args = fn.args
    for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if a is not None:
            a.annotation = None


def normalize_code(code: str) -> str:
    """Docstrings, comments, type annotations and ``typing`` imports dropped, the first function
    renamed to ``f``, layout canonical: a benchmark solution copied with or without its annotations
    (``def f(s: str) -> int`` or ``def f(s)``) is the same program."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return " ".join(code.split())
    tree.body = [n for n in tree.body if not (
        isinstance(n, ast.ImportFrom) and n.module in _TYPING_MODULES
        or isinstance(n, ast.Import) and all(a.name in _TYPING_MODULES for a in n.names))] or [ast.Pass()]
    first = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _strip_annotations(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        if first is None and isinstance(node, ast.FunctionDef):
            first = node.name
    if first and first != "f":
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == first:
                node.name = "f"
            elif isinstance(node, ast.Name) and node.id == first:
                node.id = "f"
    return ast.unparse(tree)


def normalize_text(text: str) -> str:
    """Lower-cased words, punctuation and layout dropped: re-cased or re-punctuated statements match."""
    return " ".join(_WORD.findall(text.lower()))


# Words every task statement uses: they tell no two problems apart.
_TASK_WORDS = frozenset(
    "a an the to of in on at by for from with and or is are be been it its this that these those which who "
    "whether if then else when than as all each every any given write function python program code method find "
    "return returns check get compute calculate number numbers list lists string strings".split())
_SUFFIX = re.compile(r"(?:ing|ed|es|er|est|s)$")


def content_words(text: str) -> frozenset[str]:
    """A normalised statement's words that say what the task is about, crudely stemmed (``finds`` and
    ``find``, ``closer`` and ``closest`` alike): two statements a character ratio puts close but that
    differ in one of these (``median`` and ``minimum`` of three numbers, ``hexagonal`` and ``centered
    hexagonal`` numbers) are other problems."""
    stems = (w if len(w) <= 4 else _SUFFIX.sub("", w) for w in text.split() if w not in _TASK_WORDS)
    return frozenset(w for w in stems if w not in _TASK_WORDS)


def _without_examples(doc: str) -> str:
    """A docstring without its doctest examples (``>>>`` lines and their output) and ``assert`` lines."""
    kept, in_example = [], False
    for line in doc.splitlines():
        s = line.strip()
        if s.startswith((">>>", "assert ")):
            in_example = True
        elif not (in_example and s):
            in_example = False
            kept.append(line)
    return "\n".join(kept)


def statement(prompt: str) -> str:
    """The natural-language statement of a prompt, a benchmark's or a record's alike (so that a copied
    prompt compares equal): a Python prompt (HumanEval, MBPP+) gives its docstrings, any other text
    itself, both without doctest examples or asserts."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return _without_examples(prompt)
    docs = [ast.get_docstring(n) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    docs = [_without_examples(d) for d in docs if d]
    return "\n".join(docs) if docs else _without_examples(prompt)


def _expr_key(text: str) -> str:
    """The expression's AST, so quoting and spacing do not matter (``"a"`` == ``'a'``, ``(1, )`` == ``(1,)``)."""
    try:
        return ast.dump(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return " ".join(text.split())


def io_key(inp: str, out: str) -> tuple[str, str]:
    """The key of an input/output pair (input as the arguments of a call)."""
    return _expr_key(f"f({inp.strip()})"), _expr_key(out.strip())


def ngrams(text: str, n: int, token: re.Pattern = _TOKEN) -> set[tuple[str, ...]]:
    toks = token.findall(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def text_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    return ngrams(normalize_text(text), n, _WORD)


@dataclass
class BenchmarkIndex:
    config: DecontamConfig
    names: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    code_grams: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    text_grams: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    texts: list[str] = field(default_factory=list)
    text_words: list[frozenset[str]] = field(default_factory=list)  # content_words of each text
    code_sizes: list[int] = field(default_factory=list)
    text_sizes: list[int] = field(default_factory=list)
    # The whole prompt's n-grams of tokens as written (signature, examples and punctuation too): a record
    # made of a copied prompt with a few words around it (a Markdown fence, "Complete this function")
    # is mostly these, where a short statement alone is under the ratio and too short to be contained.
    prompt_grams: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    prompt_sizes: list[int] = field(default_factory=list)
    io_pairs: dict[tuple[str, str], str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config: DecontamConfig) -> "BenchmarkIndex":
        index = cls(config)
        for name in config.benchmarks:
            index.add_file(name, find_benchmark(name, config.benchmark_dirs))
        if config.livecodebench:
            index.add_file("livecodebench", Path(resolve_path(config.livecodebench)))
        return index

    def add_file(self, bench: str, path: Path) -> None:
        """Every row of a benchmark JSONL (or .gz). A file that does not read is a ``RecordError``
        naming it, which stops the build: any other error would reject every problem as a
        ``stage_error`` and finish with no data."""
        from data_pipeline.records import RecordError, read_jsonl_lines

        self.sources.append(str(path))
        for lineno, row in read_jsonl_lines(path):
            try:
                self.add_row(bench, row)
            except (TypeError, AttributeError, ValueError) as e:
                raise RecordError(f"{path}:{lineno}: not a benchmark problem ({type(e).__name__}: {e})") from None

    def add_row(self, bench: str, row: dict[str, Any]) -> None:
        rid = str(row.get("task_id") or row.get("id") or row.get("question_id") or len(self.names))
        code = row.get("code") or ((row.get("prompt") or "") + (row.get("canonical_solution") or ""))
        prompt = row.get("prompt") or row.get("question_content") or row.get("text") or ""
        text = statement(prompt)
        i = len(self.names)
        self.names.append(f"{bench}:{rid}")
        norm = normalize_code(code) if code.strip() else ""
        self.codes.append(norm)
        self.texts.append(normalize_text(text))
        self.text_words.append(content_words(self.texts[-1]))
        grams = ngrams(norm, self.config.ngram)
        self.code_sizes.append(len(grams))
        for g in grams:
            self.code_grams[g].add(i)
        grams = text_ngrams(text, self.config.ngram)
        self.text_sizes.append(len(grams))
        for g in grams:
            self.text_grams[g].add(i)
        grams = ngrams(prompt, self.config.ngram)
        self.prompt_sizes.append(len(grams))
        for g in grams:
            self.prompt_grams[g].add(i)
        if "input" in row and "output" in row and "cruxeval" in bench.lower():
            self.io_pairs[io_key(str(row["input"]), str(row["output"]))] = self.names[i]

    def _overlap(self, grams: set, table: dict, sizes: list[int]) -> tuple[float, int | None]:
        """The largest fraction of shared n-grams with one item, of the record's or, for an item of at
        least ``MIN_CONTAINED_GRAMS``, of the item's; ties go to the first item, not the first hit."""
        if not grams:
            return 0.0, None
        hits: Counter[int] = Counter()
        for g in grams:
            for i in table.get(g, ()):
                hits[i] += 1
        if not hits:
            return 0.0, None

        def frac(i: int) -> float:
            return hits[i] / (min(len(grams), sizes[i]) if sizes[i] >= MIN_CONTAINED_GRAMS else len(grams))

        i = max(hits, key=lambda i: (frac(i), -i))
        return frac(i), i

    def match_problem(self, solution: str, problem: str) -> tuple[str, str] | None:
        """(reason, benchmark item) when the problem is contaminated, else None."""
        from rapidfuzz import fuzz, process

        norm = normalize_code(solution)
        best = process.extractOne(norm, self.codes, scorer=fuzz.ratio, score_cutoff=self.config.edit_similarity)
        if best is not None:
            return "edit_similarity", f"{self.names[best[2]]} ({best[1]:.1f})"
        frac, i = self._overlap(ngrams(norm, self.config.ngram), self.code_grams, self.code_sizes)
        if i is not None and frac >= self.config.ngram_overlap:
            return "code_ngram_overlap", f"{self.names[i]} ({frac:.2f})"
        prompt, problem = problem, statement(problem)
        text = normalize_text(problem)
        if text:
            words = content_words(text)
            for _, score, j in process.extract(text, self.texts, scorer=fuzz.ratio, score_cutoff=self.config.text_similarity,
                                               limit=None):
                if words == self.text_words[j]:
                    return "text_similarity", f"{self.names[j]} ({score:.1f})"
        frac, i = self._overlap(text_ngrams(problem, self.config.ngram), self.text_grams, self.text_sizes)
        if i is not None and frac >= self.config.ngram_overlap:
            return "text_ngram_overlap", f"{self.names[i]} ({frac:.2f})"
        frac, i = self._overlap(ngrams(prompt, self.config.ngram), self.prompt_grams, self.prompt_sizes)
        if i is not None and frac >= self.config.ngram_overlap:
            return "prompt_ngram_overlap", f"{self.names[i]} ({frac:.2f})"
        return None

    def match_io(self, inp: str, out: str) -> str | None:
        inp, out = inp.strip(), out.strip()
        if len(inp) + len(out) < self.config.min_io_chars:
            return None
        return self.io_pairs.get(io_key(inp, out))


def find_benchmark(name: str, dirs: list[str]) -> Path:
    """``name`` (or its gzip-compressed ``name.gz``) in the first of ``dirs`` that has it, else as a path."""
    for d in dirs:
        for candidate in (name, f"{name}.gz"):
            p = Path(resolve_path(d)) / candidate
            if p.exists():
                return p
    p = Path(resolve_path(name))
    if p.exists():
        return p
    from data_pipeline.records import RecordError

    raise RecordError(f"decontamination benchmark {name!r} not found in {dirs} (config keys decontam.benchmarks, decontam.benchmark_dirs)")


def process(record: dict[str, Any], ctx: StageContext) -> list[dict[str, Any]] | Reject:
    if not ctx.config.decontam.enabled:
        return [record]
    index = ctx.decontam_index
    hit = index.match_problem(record["solution"], record["problem"])
    if hit is not None:
        return Reject(hit[0], hit[1])
    out = dict(record)
    for kind in ("forward", "backward"):
        kept = []
        for item in record.get(kind, []):
            if index.match_io(item["input"], item["output"]):
                ctx.note("decontam.cruxeval_io_pair_removed")
            else:
                kept.append(item)
        out[kind] = kept
    return [out]

"""Decontamination against HumanEval(+), MBPP(+), CRUXEval and, when given, LiveCodeBench.

A problem is dropped when its normalised solution is within an edit-similarity threshold (rapidfuzz)
of a benchmark program, or shares a large fraction of code or text n-grams with one benchmark
problem. Execution samples sharing an input/output pair with CRUXEval are removed from the record.
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


def _expr_key(text: str) -> str:
    """The expression's AST, so quoting and spacing do not matter (``"a"`` == ``'a'``, ``(1, )`` == ``(1,)``)."""
    try:
        return ast.dump(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return " ".join(text.split())


def io_key(inp: str, out: str) -> tuple[str, str]:
    """The key of an input/output pair (input as the arguments of a call)."""
    return _expr_key(f"f({inp.strip()})"), _expr_key(out.strip())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    toks = _TOKEN.findall(text)
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


@dataclass
class BenchmarkIndex:
    config: DecontamConfig
    names: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    code_grams: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
    text_grams: dict[tuple[str, ...], set[int]] = field(default_factory=lambda: defaultdict(set))
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
        text = row.get("prompt") or row.get("question_content") or row.get("text") or ""
        i = len(self.names)
        self.names.append(f"{bench}:{rid}")
        norm = normalize_code(code) if code.strip() else ""
        self.codes.append(norm)
        for g in ngrams(norm, self.config.ngram):
            self.code_grams[g].add(i)
        for g in ngrams(text, self.config.ngram):
            self.text_grams[g].add(i)
        if "input" in row and "output" in row and "cruxeval" in bench.lower():
            self.io_pairs[io_key(str(row["input"]), str(row["output"]))] = self.names[i]

    def _overlap(self, grams: set, table: dict) -> tuple[float, int | None]:
        if not grams:
            return 0.0, None
        hits: Counter[int] = Counter()
        for g in grams:
            for i in table.get(g, ()):
                hits[i] += 1
        if not hits:
            return 0.0, None
        i, n = max(hits.items(), key=lambda kv: (kv[1], -kv[0]))  # ties: the first benchmark item, not the first hit
        return n / len(grams), i

    def match_problem(self, solution: str, problem: str) -> tuple[str, str] | None:
        """(reason, benchmark item) when the problem is contaminated, else None."""
        from rapidfuzz import fuzz, process

        norm = normalize_code(solution)
        best = process.extractOne(norm, self.codes, scorer=fuzz.ratio, score_cutoff=self.config.edit_similarity)
        if best is not None:
            return "edit_similarity", f"{self.names[best[2]]} ({best[1]:.1f})"
        frac, i = self._overlap(ngrams(norm, self.config.ngram), self.code_grams)
        if i is not None and frac >= self.config.ngram_overlap:
            return "code_ngram_overlap", f"{self.names[i]} ({frac:.2f})"
        frac, i = self._overlap(ngrams(problem, self.config.ngram), self.text_grams)
        if i is not None and frac >= self.config.ngram_overlap:
            return "text_ngram_overlap", f"{self.names[i]} ({frac:.2f})"
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

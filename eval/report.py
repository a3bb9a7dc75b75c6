"""``semcoder eval report``: results.json files → the paper's Table 1 layout (Markdown) with the
paper's SemCoder numbers alongside, and a bar chart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from semcoder_jax.errors import SemcoderError

COLUMNS = [
    ("HumanEval (+)", "humaneval"),
    ("MBPP (+)", "mbpp"),
    ("LCB-Lite", "lcb-lite"),
    ("CRUXEval-I", "cruxeval-i"),
    ("CRUXEval-O", "cruxeval-o"),
    ("LCB-Exec", "lcb-exec"),
]

# Table 1 of Ding et al. (NeurIPS 2024): pass@1, base (plus) for HumanEval/MBPP.
PAPER = {
    "SemCoder-S (paper)": {"humaneval": (79.3, 74.4), "mbpp": (79.6, 68.5), "lcb-lite": 27.5, "cruxeval-i": 63.6, "cruxeval-o": 63.9, "lcb-exec": 61.2},
    "SemCoder (paper)": {"humaneval": (73.2, 68.9), "mbpp": (79.9, 65.3), "lcb-lite": 22.4, "cruxeval-i": 62.5, "cruxeval-o": 65.1, "lcb-exec": 59.7},
}


def collect(dirs: Sequence[str | Path]) -> dict[str, dict[str, Any]]:
    """``{model: {benchmark: pass@1 or (base, plus)}}`` from results.json files in ``dirs`` (searched
    recursively). A run on a ``--limit`` slice is a row of its own, named so; two results for one
    model and benchmark are refused, since either could be the one meant."""
    rows: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, str], Path] = {}
    for d in dirs:
        d = Path(d)
        files = [d] if d.is_file() else sorted(d.rglob("results.json"))
        if not files:
            raise SemcoderError(f"{d}: no results.json found")
        for f in files:
            try:
                res = json.loads(f.read_text())
                s = res["summary"]
                bench, model = res["benchmark"], res.get("model") or f.parent.name
                limit = (res.get("config") or {}).get("limit")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise SemcoderError(f"{f}: not a results file ({type(e).__name__}: {e})") from None
            if limit:
                model = f"{model} (first {limit} problems)"
            if (model, bench) in seen:
                raise SemcoderError(f"{seen[model, bench]} and {f} both hold {bench} results of {model}; report one of them, or tell runs apart with `eval run --name`")
            seen[model, bench] = f
            value: Any = s.get("pass@1")
            if "plus_pass@1" in s:
                value = (s.get("pass@1"), s["plus_pass@1"])
            rows.setdefault(model, {})[bench] = value
    return rows


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (tuple, list)):
        return f"{v[0]:.1f} ({v[1]:.1f})"
    return f"{v:.1f}"


def markdown_table(rows: dict[str, dict[str, Any]], with_paper: bool = True) -> str:
    all_rows = {**rows, **(PAPER if with_paper else {})}
    header = "| Model | " + " | ".join(c for c, _ in COLUMNS) + " |"
    sep = "|---|" + "---|" * len(COLUMNS)
    lines = [header, sep]
    for model, vals in all_rows.items():
        lines.append(f"| {model} | " + " | ".join(_cell(vals.get(b)) for _, b in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def chart_path(path: str | Path, formats: Sequence[str] = ("png",)) -> Path:
    """The file a chart given ``path`` goes to: ``report.png`` inside a folder (one that exists, or
    a path ending with a slash), else ``path`` with ``.png`` added unless it ends with one of the
    image ``formats`` (matplotlib added it unasked, and ``DIR`` became ``DIR.png``)."""
    text = str(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir():
        return p / "report.png"
    if p.suffix[1:].lower() in formats:
        return p
    return p.with_name(p.name + ".png")


def bar_chart(rows: dict[str, dict[str, Any]], path: str | Path, with_paper: bool = True) -> Path:
    """Draw the chart; returns the file written (see :func:`chart_path`), its folder made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    all_rows = {**rows, **(PAPER if with_paper else {})}
    labels = [c for c, _ in COLUMNS]
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(all_rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (model, vals) in enumerate(all_rows.items()):
        ys = []
        for _, b in COLUMNS:
            v = vals.get(b)
            ys.append(v[0] if isinstance(v, (tuple, list)) else (v if v is not None else 0.0))
        ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=model)
    ax.set_xticks(x, labels)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        out = chart_path(path, tuple(fig.canvas.get_supported_filetypes()))
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)
    return out

"""``semcoder data stats DIR``: the build report as text, and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from data_pipeline.records import RecordError, read_jsonl


def load_report(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    out = Path(out_dir)
    for name in ("report.json", "manifest.json"):
        if not (out / name).exists():
            raise RecordError(f"{out / name}: not found (is {out} a finished data build?)")
    loaded = []
    for name in ("report.json", "manifest.json"):
        try:
            loaded.append(json.loads((out / name).read_text(encoding="utf-8")))
        except json.JSONDecodeError as e:
            raise RecordError(f"{out / name}:{e.lineno}: not valid JSON ({e.msg})") from None
    return loaded[0], loaded[1]


def stage_order(stages: dict[str, Any]) -> list[str]:
    from data_pipeline.stages.base import STAGE_ORDER

    known = ["seeds", *STAGE_ORDER, "tokenize_pack"]
    return [s for s in known if s in stages] + sorted(s for s in stages if s not in known)


def format_report(report: dict[str, Any], manifest: dict[str, Any]) -> str:
    lines = [f"runner: {report.get('runner')}  rows: {report['rows']}  examples: {report['examples']}  seq_len: {manifest['seq_len']}",
             f"tokens: {manifest['tokens']['total']} (target {manifest['tokens']['target']})  padding: {100 * manifest['padding_fraction']:.2f}%",
             f"records by kind: {json.dumps(manifest['counts']['records_by_kind'])}"]
    if "validation" in manifest["splits"]:
        val = manifest["splits"]["validation"]
        lines.append(f"validation (held out by problem): rows: {val['rows']}  examples: {val['examples']}  problems: {val['problems']}"
                     f"  padding: {100 * val['padding_fraction']:.2f}%  (figures above: train)")
    lines += ["", f"{'stage':<16}{'in':>8}{'out':>8}{'rejected':>10}  reasons / notes"]
    for name in stage_order(report["stages"]):
        st = report["stages"][name]
        rej = sum(st["rejected"].values())
        detail = ", ".join(f"{k}={v}" for k, v in {**st["rejected"], **st.get("notes", {})}.items())
        lines.append(f"{name:<16}{st['in']:>8}{st['out']:>8}{rej:>10}  {detail}")
    return "\n".join(lines)


def write_plots(out_dir: str | Path, plot_dir: str | Path | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    plot_dir = Path(plot_dir) if plot_dir else out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    report, manifest = load_report(out)
    written = []

    lengths: dict[str, list[int]] = {}
    for path in sorted((out / "records").glob("*.jsonl")):
        if path.stem == "rejects":
            continue
        lengths[path.stem] = [len(r["prompt"]) + len(r["response"]) for r in read_jsonl(path)]
    fig, ax = plt.subplots(figsize=(7, 4))
    for kind, vals in lengths.items():
        ax.hist(vals, bins=30, alpha=0.6, label=f"{kind} ({len(vals)})")
    ax.set(xlabel="characters (prompt + response)", ylabel="records", title="Record lengths")
    ax.legend()
    written.append(_save(fig, plot_dir / "lengths.png"))

    cov = []
    for path in sorted((out / "stages" / "decontam").glob("shard-*.jsonl")):
        cov += [(r.get("line_coverage", 0.0), r.get("branch_coverage", 0.0)) for r in read_jsonl(path)]
    fig, ax = plt.subplots(figsize=(7, 4))
    if cov:
        ax.hist([c[0] for c in cov], bins=20, alpha=0.6, label="line")
        ax.hist([c[1] for c in cov], bins=20, alpha=0.6, label="branch")
        ax.legend()
    ax.set(xlabel="coverage of the kept inputs", ylabel="problems", title="Input coverage")
    written.append(_save(fig, plot_dir / "coverage.png"))

    fig, ax = plt.subplots(figsize=(8, 4))
    names = stage_order(report["stages"])
    bottom = [0] * len(names)
    reasons = sorted({r for st in report["stages"].values() for r in st["rejected"]})
    for reason in reasons:
        vals = [report["stages"][n]["rejected"].get(reason, 0) for n in names]
        ax.bar(names, vals, bottom=bottom, label=reason)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(ylabel="records rejected", title="Rejections per stage")
    if reasons:
        ax.legend(fontsize=7)
    ax.tick_params(axis="x", rotation=30)
    written.append(_save(fig, plot_dir / "rejections.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

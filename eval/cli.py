"""``semcoder eval run | score | report | refine``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.benchmarks import BENCHMARKS

RESUME = "rerun the same command to resume: the generations so far (OUT/generations.jsonl) are reused"


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate on HumanEval(+), MBPP(+), LiveCodeBench, CRUXEval")
    sub = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="generate with a backend, score, write results.json")
    _run_args(run)
    run.set_defaults(func=_run, on_interrupt=RESUME)

    ref = sub.add_parser("refine", help="run with iterative self-refinement (default 5 rounds)")
    _run_args(ref)
    ref.set_defaults(func=_run, refine_default=5, on_interrupt=RESUME)

    score = sub.add_parser("score", help="score a samples file with the official semantics")
    score.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    score.add_argument("--samples", required=True, help="EvalPlus-style JSONL or CRUXEval generations JSON")
    score.add_argument("--data", help="local benchmark data file (LiveCodeBench: required offline)")
    score.add_argument("--prompt-style", default="semcoder", help="the prompt style raw CRUXEval/LCB-Exec completions "
                       "(semcoder, direct, cot) or LCB-Lite ones (semcoder, generic) answered, read as `eval run` reads them")
    score.add_argument("--quotes", action=argparse.BooleanOptionalAction, default=None,
                       help="read raw answers' double quotes back as single ones (default: with --prompt-style semcoder)")
    score.add_argument("--sanitize", action="store_true", help="apply EvalPlus's sanitiser to HumanEval/MBPP programs")
    score.add_argument("--base-only", action="store_true", help="HumanEval/MBPP: base tests only")
    score.add_argument("--json", action="store_true", help="print one JSON line")
    score.add_argument("--details", help="write per-sample results to this JSON file")
    score.set_defaults(func=_score)

    rep = sub.add_parser("report", help="Markdown table (paper's Table 1 layout) and bar chart")
    rep.add_argument("dirs", nargs="+", help="result directories (results.json, searched recursively)")
    rep.add_argument("--out", help="write the Markdown here (default: print)")
    rep.add_argument("--png", help="bar chart path (default: next to --out, else report.png)")
    rep.add_argument("--no-paper", action="store_true", help="leave out the paper's rows")
    rep.set_defaults(func=_report)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", required=True, type=_benchmark_list, metavar="NAME[,NAME...]",
                   help=f"one or more of {', '.join(BENCHMARKS)}, comma-separated: the model loads once for all")
    p.add_argument("--backend", required=True, choices=("vllm", "hf", "jax", "openai"))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="Orbax training checkpoint directory")
    src.add_argument("--hf-dir", help="Hugging Face model directory, or a hub id (keyed and loaded at the commit it names)")
    p.add_argument("--revision", help="hub id: the branch, tag or commit to load (default: main)")
    p.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    p.add_argument("--tokenizer", help="tokenizer folder, or a hub id (loaded at its main branch's commit); "
                   "default: the model's own, else the shipped DeepSeek-Coder one")
    p.add_argument("--config", help="eval YAML or preset name (default: the benchmark's, "
                   "configs/eval/<benchmark>.yaml); one benchmark only")
    p.add_argument("--out", default=None, help="output directory (default: eval_out/<benchmark>; "
                   "with several benchmarks, OUT/<benchmark> each)")
    p.add_argument("--name", help="model name for reports")
    p.add_argument("--limit", type=int, help="first N problems only")
    p.add_argument("--data", help="local benchmark data file")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="weights and compute (default: bfloat16; hf and jax on CPU: float32)")
    p.add_argument("--batch-size", type=int, default=16, help="backend batch size (hf, jax); requests in flight (openai)")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--base-url", help="openai: server URL")
    p.add_argument("--model", help="openai: model name")
    p.add_argument("--chat", action="store_true", help="openai: use chat completions")
    p.add_argument("--max-retries", type=int, default=5, help="openai: retries per request (rate limits, server errors)")
    p.add_argument("--vllm-fields", choices=("auto", "on", "off"), default="auto",
                   help="openai: send top_k/min_p/repetition_penalty at their off values so a vLLM server's model defaults "
                   "do not apply (auto: to any server but OpenAI's API; off for a server that refuses them)")
    p.add_argument("--refine-rounds", type=int, help="self-refinement rounds (eval refine: default 5)")
    p.add_argument("--with-trace", action="store_true", help="refine: add the failing run's trace")
    p.add_argument("--progress", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. generation.n=10")


def _benchmark_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown benchmark {', '.join(unknown) or repr(text)}; "
                                         f"choose from {', '.join(BENCHMARKS)}")
    return list(dict.fromkeys(names))


def _run(args: argparse.Namespace) -> int:
    from eval.backends import BackendConfig, get_backend
    from eval.config import EvalConfig
    from eval.runner import run_eval
    from semcoder_jax.checkpoint import quiet_orbax_warnings
    from semcoder_jax.config import load_config, preset_path, read_yaml
    from semcoder_jax.errors import SemcoderError

    names = args.benchmark
    if len(names) > 1 and (args.config or args.data or any(o.startswith("data=") for o in args.overrides)):
        raise SemcoderError("--config and --data belong to one benchmark (a data= override too); run several benchmarks with their presets")
    for item in args.overrides:  # one of several names would run every benchmark as that one
        if item.startswith("benchmark=") and [item.partition("=")[2]] != names:
            raise SemcoderError(f"{item}: give the benchmark with --benchmark (it names the output and the results)")
    # The command's default first, so that a refine_rounds=N override wins over it, and only where
    # the --config file does not set it.
    default = getattr(args, "refine_default", 0)
    if args.config:
        path = preset_path("eval", args.config)
        given = read_yaml(path)
        if given.get("benchmark", names[0]) != names[0]:  # its settings (prompts, budgets) are another benchmark's
            raise SemcoderError(f"--config {path}: is for benchmark {given['benchmark']!r}, not {names[0]!r}")
        if "refine_rounds" in given:
            default = 0
    overrides = [f"refine_rounds={default}"] if default else []
    overrides += args.overrides
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    if args.data:
        overrides.append(f"data={args.data}")
    if args.refine_rounds is not None:
        overrides.append(f"refine_rounds={args.refine_rounds}")
    if args.with_trace:
        overrides.append("refine_with_trace=true")
    configs = {}
    for name in names:  # every config is checked before the model loads
        try:
            configs[name] = load_config(EvalConfig, preset_path("eval", args.config or name), [f"benchmark={name}", *overrides])
        except ValueError as e:
            raise SemcoderError(str(e)) from None
    if args.backend != "openai" and not (args.checkpoint or args.hf_dir):
        raise SemcoderError(f"--backend {args.backend} needs --checkpoint DIR or --hf-dir DIR")
    outs = {name: Path(args.out) if args.out and len(names) == 1 else Path(args.out or "eval_out") / name for name in names}
    for out in outs.values():  # found only once the model had loaded, as a traceback
        taken = next((p for p in (out, *out.parents) if p.exists()), None)
        if taken is not None and not taken.is_dir():
            raise SemcoderError(f"--out {out}: {taken} is a file; give a folder for the results")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SemcoderError(f"--out {out}: cannot make the folder ({e.strerror or e})") from None
    bcfg = BackendConfig(
        checkpoint=args.checkpoint, step=args.step, hf_dir=args.hf_dir, revision=args.revision, tokenizer=args.tokenizer,
        dtype=args.dtype, batch_size=args.batch_size, tensor_parallel_size=args.tensor_parallel_size, base_url=args.base_url,
        model=args.model, chat=args.chat, max_retries=args.max_retries,
        vllm_fields={"auto": None, "on": True, "off": False}[args.vllm_fields],
    )
    quiet_orbax_warnings()
    backend = get_backend(args.backend, bcfg)
    try:
        for name, cfg in configs.items():
            out = outs[name]
            res = run_eval(cfg, backend, out, model_name=args.name, progress=args.progress, log=lambda s: print(s, file=sys.stderr))
            summary = {"benchmark": name, **res["summary"]}
            print(json.dumps(summary | ({"refine_pass@1": res["refine"]["pass@1"]} if "refine" in res else {})), flush=True)
            print(f"wrote {out / 'results.json'}", file=sys.stderr)
    finally:
        backend.close()
    return 0


def _score(args: argparse.Namespace) -> int:
    from eval.benchmarks import load_problems
    from eval.samples_io import read_samples
    from eval.scoring import score
    from eval.scoring.sanitize import sanitize
    from eval.tasks import check_style
    from semcoder_jax.errors import SemcoderError

    try:
        check_style(args.benchmark, args.prompt_style)
    except ValueError as e:
        raise SemcoderError(str(e)) from None
    problems = load_problems(args.benchmark, path=args.data)
    samples = read_samples(args.samples, args.benchmark, problems, style=args.prompt_style, quotes=args.quotes)
    if args.sanitize and args.benchmark in ("humaneval", "mbpp"):
        by_id = {p.task_id: p for p in problems}
        samples = {t: [sanitize(s, by_id[t].entry_point) for s in ss] for t, ss in samples.items()}
    result = score(args.benchmark, problems, samples, base_only=args.base_only, progress=not args.json)
    summary = result.summary()
    summary["n_benchmark_problems"] = len(problems)
    if args.details:
        _write(args.details, json.dumps({"summary": summary, "details": result.details}, default=str), "--details")
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from eval.report import bar_chart, collect, markdown_table

    rows = collect(args.dirs)
    md = markdown_table(rows, with_paper=not args.no_paper)
    png = args.png or (str(Path(args.out).with_suffix(".png")) if args.out else "report.png")
    if args.out:
        _write(args.out, md, "--out")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(md)
    try:
        Path(png).parent.mkdir(parents=True, exist_ok=True)
        written = bar_chart(rows, png, with_paper=not args.no_paper)
    except OSError as e:
        raise _cannot_write("--png" if args.png else "the chart", png, e) from None
    print(f"wrote {written}", file=sys.stderr)
    return 0


def _cannot_write(flag: str, path: str, e: OSError) -> Exception:
    from semcoder_jax.errors import SemcoderError

    return SemcoderError(f"{flag} {path}: cannot write it ({e.strerror or e})")


def _write(path: str, text: str, flag: str) -> None:
    """Write an output file (its folder made), or fail with one line naming the flag, not a traceback."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
    except OSError as e:
        raise _cannot_write(flag, path, e) from None

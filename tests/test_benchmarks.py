"""The benchmark scripts that device sessions depend on still run (tiny CPU configurations)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str, timeout: int = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


@pytest.fixture(scope="module")
def gpu_image_env(tmp_path_factory) -> dict[str, str]:
    """tensorflow and vllm hidden from the benchmark, as on the GPU image (``tests/test_imports.py``)."""
    spec = importlib.util.spec_from_file_location("test_imports", ROOT / "tests" / "test_imports.py")
    test_imports = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_imports)
    return test_imports.gpu_image_env(tmp_path_factory.mktemp("gpu_image"))


def _last_json(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--devices", "1", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_step_benchmark_times_the_real_step(gpu_image_env):
    out = _last_json(gpu_image_env, "--model", "tiny", "--batch", "2", "--seq", "64", "--packed", "--steps", "2",
                     "--warmup-steps", "1", "--vocab", "512", "--set", "loss_chunk_size=16")
    assert out["packed"] == 4 and out["tok_per_s"] > 0 and out["step_s"] > 0 and 0 < out["loss"] < 10


def test_train_step_benchmark_compile_only_reports_memory(gpu_image_env):
    out = _last_json(gpu_image_env, "--model", "tiny", "--batch", "2", "--seq", "64",
                     "--compile-only")  # 32k vocab: ~0.1 GB
    assert out["arguments_gb"] > 0 and out["temp_gb"] > 0
    assert abs(out["total_gb"] - (out["arguments_gb"] + out["outputs_gb"] - out["aliased_gb"] + out["temp_gb"])) < 0.002


def _gpu_script(tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("nvidia-smi", "python3", "timeout"):  # anything the suite would run fails loudly
        (bin_dir / name).write_text("#!/bin/sh\necho RAN\nexit 9\n")
        (bin_dir / name).chmod(0o755)
    return subprocess.run(["bash", str(ROOT / "benchmarks" / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})


@pytest.mark.parametrize("script", ["gpu_suite.sh", "gpu_train_variants.sh"])
def test_gpu_scripts_help_prints_usage_and_runs_nothing(tmp_path, script):
    """`--help` used to start the 6.7B GPU runs (on a CPU machine: a 6.7B train step)."""
    done = _gpu_script(tmp_path, script, "--help")
    assert done.returncode == 0, done.stderr
    assert "time limit" in done.stdout and "RAN" not in done.stdout + done.stderr and "===" not in done.stdout
    assert not (tmp_path / "gpu_results").exists()


@pytest.mark.parametrize("script,args", [("gpu_suite.sh", ["--dry-run"]), ("gpu_suite.sh", ["fast"]),
                                         ("gpu_train_variants.sh", ["-h2", "base;;"])])
def test_gpu_scripts_refuse_what_they_do_not_take_and_run_nothing(tmp_path, script, args):
    """A mistyped option used to start the whole GPU suite."""
    done = _gpu_script(tmp_path, script, *args)
    assert done.returncode == 2 and "--help for usage" in done.stderr, done.stdout + done.stderr
    assert "RAN" not in done.stdout + done.stderr and not (tmp_path / "gpu_results").exists()


@pytest.mark.parametrize("script,args,message", [
    ("sandbox_throughput.py", ["--repeats", "0"], "--repeats: expected an integer >= 1"),
    ("trace_throughput.py", ["--repeats", "0"], "--repeats: expected an integer >= 1"),
    ("train_step.py", ["--steps", "0"], "--steps: expected an integer >= 1"),
    ("train_step.py", ["--top-ops", "5"], "--top-ops reads the trace of --profile"),
    ("eval_scoring.py", ["--datasets", "cruxeval-o"], "invalid choice: 'cruxeval-o'"),
    ("eval_scoring.py", ["--limit", "0"], "--limit: expected an integer >= 1"),
    ("eval_generation.py", ["--hf-dir", "x", "--prompts", "0"], "--prompts: expected an integer >= 1"),
    ("packing_padding.py", ["--build", "/nonexistent"], "no /nonexistent/records/*.jsonl"),
    ("packing_padding.py", ["--build", "x", "--batch-sizes", "8", "0"], "--batch-sizes: expected an integer >= 1"),
    ("data_stages.py", ["--n", "0"], "--n: expected an integer >= 1"),
    ("convert_6p7b.py", ["--layers", "0"], "--layers: expected an integer >= 1"),  # 0 used to mean the full 6.7B
])
def test_bad_arguments_are_one_usage_line(script, args, message):
    """They used to fail with a traceback after the setup (empty max(), division by zero, KeyError)."""
    done = _bench(script, *args)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_packing_benchmark_says_when_no_record_fits(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "nl2code.jsonl").write_text(
        json.dumps({"id": "a", "kind": "nl2code", "prompt": "Write f.", "response": "def f(): pass"}) + "\n")
    done = _bench("packing_padding.py", "--build", str(tmp_path), "--seq-len", "4")
    assert done.returncode == 1 and "no record of 1" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("script,args", [("data_stages.py", ["--n", "1", "--out"]),
                                         ("convert_6p7b.py", ["--layers", "1", "--workdir"])])
def test_scratch_folder_holding_other_files_is_left_alone(tmp_path, script, args):
    """A mistyped --out/--workdir used to be deleted whole (``shutil.rmtree``) before the run."""
    (tmp_path / "thesis.tex").write_text("years of work")
    done = _bench(script, *args, str(tmp_path))
    assert done.returncode == 1 and "did not make (thesis.tex)" in done.stderr, done.stderr[-2000:]
    assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_scratch_folder_of_an_earlier_run_is_emptied(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _args import fresh_scratch
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    (tmp_path / "build" / "records").mkdir(parents=True)
    (tmp_path / "corpus").write_text("")
    fresh_scratch(tmp_path, {"corpus", "build"})
    assert tmp_path.is_dir() and not any(tmp_path.iterdir())


def test_model_gpu_quick_keeps_the_sizes_given():
    """``--quick`` used to overwrite them: ``--quick --batch 2`` timed batch 4."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("model_gpu", ROOT / "benchmarks" / "model_gpu.py")
        model_gpu = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(model_gpu)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    args = model_gpu.parse_args(["--quick", "--batch", "2", "--sampler-shape", "deepseek-coder-1.3b"])
    assert (args.batch, args.sampler_shape, args.new_tokens, args.logits_shape) == (2, "deepseek-coder-1.3b", 16, "tiny")
    assert model_gpu.parse_args(["--full"]).batch == 32


def test_model_gpu_exits_non_zero_when_a_part_fails():
    """A timed-out or failed part used to leave the exit status 0, so the suite's `(rc 0)` hid it."""
    done = _bench("model_gpu.py", "--quick", "--parts", "hf", "--timeout", "1", JAX_PLATFORMS="cpu")
    assert done.returncode == 1 and '"error": "timed out after 1 s"' in done.stdout, done.stdout + done.stderr


def test_attention_gpu_exits_non_zero_when_a_case_fails():
    done = _bench("attention_gpu.py", JAX_PLATFORMS="cpu")  # no cuDNN on CPU: every case fails
    assert done.returncode == 1 and '"error": "cuDNN is not detected."' in done.stdout, done.stdout + done.stderr

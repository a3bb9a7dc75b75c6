"""The benchmark scripts that device sessions depend on still run (tiny CPU configurations)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _last_json(*args: str) -> dict:
    result = subprocess.run([sys.executable, "benchmarks/train_step.py", "--devices", "1", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_train_step_benchmark_times_the_real_step():
    out = _last_json("--model", "tiny", "--batch", "2", "--seq", "64", "--packed", "--steps", "2", "--warmup-steps", "1",
                     "--vocab", "512", "--set", "loss_chunk_size=16")
    assert out["packed"] == 4 and out["tok_per_s"] > 0 and out["step_s"] > 0 and 0 < out["loss"] < 10


def test_train_step_benchmark_compile_only_reports_memory():
    out = _last_json("--model", "tiny", "--batch", "2", "--seq", "64", "--compile-only")  # 32k vocab: ~0.1 GB
    assert out["arguments_gb"] > 0 and out["temp_gb"] > 0
    assert abs(out["total_gb"] - (out["arguments_gb"] + out["outputs_gb"] - out["aliased_gb"] + out["temp_gb"])) < 0.002


@pytest.mark.parametrize("script", ["gpu_suite.sh", "gpu_train_variants.sh"])
def test_gpu_scripts_help_prints_usage_and_runs_nothing(tmp_path, script):
    """`--help` used to start the 6.7B GPU runs (on a CPU machine: a 6.7B train step)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("nvidia-smi", "python3", "timeout"):  # anything the suite would run fails loudly
        (bin_dir / name).write_text("#!/bin/sh\necho RAN\nexit 9\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / script), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert "time limit" in done.stdout and "RAN" not in done.stdout + done.stderr and "===" not in done.stdout
    assert not (tmp_path / "gpu_results").exists()

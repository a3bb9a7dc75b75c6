"""The GPU image has no TensorFlow and no vLLM: every module the trainer, sampler, converter and
evaluation use must import without them (their imports stay inside the functions that need them)."""

import subprocess
import sys

from semcoder_jax import PROJECT_ROOT

ABSENT = ("tensorflow", "tensorflow_datasets", "vllm")

SCRIPT = f"""
import importlib, pkgutil, sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden, as on the GPU image)")

sys.meta_path.insert(0, Absent())
failed = []
for package in ("semcoder_jax", "eval"):
    root = importlib.import_module(package)
    for mod in pkgutil.walk_packages(root.__path__, package + "."):
        if mod.name.endswith(".__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception as e:
            failed.append(f"{{mod.name}}: {{type(e).__name__}}: {{e}}")
leaked = sorted(m for m in sys.modules if m.split(".")[0] in {ABSENT!r})
print("\\n".join(failed + [f"imported: {{m}}" for m in leaked]))
"""


def test_every_trainer_and_eval_module_imports_without_tensorflow_or_vllm():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", out.stdout

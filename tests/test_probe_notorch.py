"""Without torch: `advisor probe` explicitly asked for exits 2 with one line; the API reports a reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FIX = Path(__file__).parent / "fixtures" / "probe"

# A meta-path finder that makes `import torch` fail, as on a machine without it.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code, *args], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))


def test_explicit_probe_without_torch_exits_2_with_one_line():
    r = _run("from advisor.cli.app import main; sys.argv = ['advisor'] + sys.argv[1:]; main()",
             "probe", "tiny-llama-test", "--catalog", str(FIX / "catalog.yaml"))
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: torch is not installed") and "model-advisor[probe]" in lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_builtin_catalog_model_without_torch_exits_2():
    r = _run("from advisor.cli.app import main; sys.argv = ['advisor', 'probe', 'qwen2.5-0.5b']; main()")
    assert r.returncode == 2, r.stderr
    assert "torch is not installed" in r.stderr and "Traceback" not in r.stderr


def test_real_model_probe_without_torch_exits_2(tmp_path):
    r = _run("from advisor.cli.app import main; sys.argv = ['advisor'] + sys.argv[1:]; main()",
             "probe", "--model-path", str(tmp_path))
    assert r.returncode == 2 and "torch is not installed" in r.stderr


def test_local_calibration_without_torch_is_skipped_not_crashed():
    code = f"""
import json
from advisor.catalog.schema import ModelEntry
from advisor.probe.api import local_calibration, microprobe_rates
e = ModelEntry.model_validate_json(open({str(FIX / 'tiny_entry.json')!r}).read())
r = local_calibration(e, "fp32", 1, 64, 8)
print(json.dumps({{"skipped": r.skipped, "m": r.measurement is None, "rates": microprobe_rates() is None,
                   "torch_loaded": "torch" in sys.modules}}))
"""
    r = _run(code)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out == {"skipped": "torch is not installed (pip install 'model-advisor[probe]')", "m": True,
                   "rates": True, "torch_loaded": False}


def test_importing_the_probe_package_does_not_import_torch():
    code = ("import advisor.probe.api, advisor.probe.arch_probe, advisor.probe.real_model, advisor.cli.probe_cmd\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules, 'mlflow' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "False"]

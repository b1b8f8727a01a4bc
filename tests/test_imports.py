"""The runtime path (CLI, pipeline, container, evaluate) never imports torch: the image has none."""

import subprocess
import sys

from .conftest import REPO


def test_runtime_modules_do_not_import_torch():
    code = ("import sys\n"
            "import brasyn_infer.cli, brasyn_infer.pipeline.synthesizer, brasyn_infer.container, brasyn_infer.evaluation.dry_run, brasyn_infer.evaluation.report\n"
            "from brasyn_infer.cli import main\n"
            "heavy = [m for m in ('torch', 'onnx', 'safetensors') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

"""Issue 44: training/ holds the recipes of shipped models (at most 12 modules, no study); every recipe's and every
study's entry point still starts (its --help), so the make targets that call them keep working."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from tests.conftest import HAS_TORCH, REPO

RECIPES = ["train", "train_segmenter", "train_refiner", "validate", "export_checkpoint",
           "fit_copy_blend", "fp16_checkpoint", "route_table", "onnx_segmenter"]
STUDIES = ["posthoc_study", "map_study", "scale_study", "feedback_study", "fit_tone", "fit_trust", "enhancement_study"]


def test_the_top_level_holds_recipes_only():
    modules = sorted(p.stem for p in (REPO / "training").glob("*.py") if p.stem != "__init__")
    assert len(modules) <= 12, modules
    assert not [m for m in modules if "study" in m or m in STUDIES], modules
    assert sorted(p.stem for p in (REPO / "training" / "studies").glob("*.py") if p.stem != "__init__") == \
        sorted([*STUDIES, "laplace"])


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the [torch] extra)")
@pytest.mark.parametrize("module", [f"training.{m}" for m in RECIPES] + [f"training.studies.{m}" for m in STUDIES])
def test_each_entry_point_answers_help(module, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module(module, run_name="__main__")
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_makefile_calls_modules_that_exist():
    import re

    text = (REPO / "Makefile").read_text()
    for name in set(re.findall(r"-m (training(?:\.\w+)+)", text)):
        assert Path(REPO, *name.split(".")).with_suffix(".py").is_file(), name

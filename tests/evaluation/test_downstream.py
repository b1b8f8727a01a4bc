"""``evaluate --segmenter brats``: why it cannot run says so in words (the scores themselves come from the official
metrics package: tests/evaluation/test_seg_metrics.py)."""

import shutil

import pytest

from brasyn_infer.evaluation import downstream


def test_the_docker_segmenter_says_why_it_cannot_run(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "nvidia-smi" else f"/usr/bin/{name}")
    reason = downstream.segmentation_unavailable()
    assert reason is not None and ("nvidia" in reason.lower() or "brats" in reason)


def test_no_hand_written_metric_is_left_beside_the_official_package():
    """Issue 43: the hand-written Dice and HD95 were used by tests only; evaluate scores with brats-evaluation."""
    for name in ("dice", "hd95", "score_segmentation", "regions"):
        assert not hasattr(downstream, name), name
    with pytest.raises(ImportError):
        from brasyn_infer.evaluation.ranking import _ranks  # noqa: F401 - scipy.stats ranks now

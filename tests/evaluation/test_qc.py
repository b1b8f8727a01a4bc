import numpy as np

from brasyn_infer.constants import Modality
from brasyn_infer.evaluation.metrics import Scaled
from brasyn_infer.evaluation.qc import qc_png
from tests.conftest import brain_volume


def test_the_picture_is_the_same_from_volumes_scaled_once(tmp_path):
    """The evaluation passes the volumes it has already scaled: the picture is the one the raw volumes make,
    and a different synthesis makes a different one."""
    truth = brain_volume((24, 24, 20), scale=500.0)
    synthesized = np.roll(truth, 2, axis=0) * 4.0
    uncertainty = np.abs(synthesized - truth).astype(np.float32)
    inputs = {Modality.T1N: truth * 0.5}
    seg = (truth > np.percentile(truth, 97)).astype(np.uint8)
    qc_png(tmp_path / "raw.png", inputs, synthesized, truth, seg, "t", uncertainty=uncertainty)
    qc_png(tmp_path / "scaled.png", inputs, Scaled.of(synthesized), Scaled.of(truth), seg, "t", uncertainty=uncertainty)
    qc_png(tmp_path / "other.png", inputs, truth, truth, seg, "t", uncertainty=uncertainty)
    raw = (tmp_path / "raw.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "scaled.png").read_bytes() == raw
    assert (tmp_path / "other.png").read_bytes() != raw

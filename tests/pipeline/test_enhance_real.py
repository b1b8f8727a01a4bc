"""The default's enhancement stage on a real case (issue 41): the synthesized t1c brought to the manifest's
enhancement contrast where the shipped missing-sequence segmenter finds enhancing tumor, and nowhere else."""

import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.io.cases import scan_folder
from brasyn_infer.io.nifti import read_inputs
from tests.conftest import SHARED

CASE = SHARED / "data" / "cases" / "BraTS-GLI-00001-000"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CASE.is_dir(), reason="../shared (a real case) is absent")]


def test_the_default_enhances_the_guides_tumor_only():
    from brasyn_infer.pipeline.synthesizer import Synthesizer
    from brasyn_infer.synthesis.enhance import gaussian_blur, healthy_median

    volumes = {m: v.data for m, v in read_inputs(scan_folder(CASE).modalities).items() if m is not Modality.T1C}
    synth = Synthesizer(enhance=True, views=None)
    stages = synth.synthesize_stages(volumes, Modality.T1C)
    generated, enhanced = stages["generator"], stages["enhanced"]
    guide = synth.enhancer.guide.segment(volumes)
    et = guide == 3
    assert et.sum() > 500  # this glioma has an enhancing rim, and the guide finds one without t1c
    near = gaussian_blur(et.astype(np.float32), 1.0) > 0  # the feathered region
    changed = enhanced != generated
    assert changed.any() and not (changed & ~near).any()  # nothing changes away from the guide's enhancing tumor
    ratio = synth.enhancer.settings.ratio
    reached = np.median(enhanced[et]) / healthy_median(generated, guide)
    assert np.median(enhanced[et]) > np.median(generated[et])
    assert 0.85 * ratio < reached < 1.05 * ratio  # the interior at the contrast, a little less at the feathered rim
    assert (enhanced[generated == 0] == 0).all()

"""The feed-back alternative of training/studies/feedback_study.py: each output an input for the next."""

from __future__ import annotations

import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.io.nifti import load_volume
from brasyn_infer.pipeline.synthesizer import Synthesizer
from tests.conftest import HAS_TORCH, make_case
from training.studies.feedback_study import fed_back

T1C, T1N, T2F, T2W = Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W


@pytest.mark.skipif(not HAS_TORCH, reason="the tiny pattern model is exported with torch")
def test_each_output_after_the_first_is_made_from_the_ones_before(tmp_path, tiny_any_weights):
    folder = make_case(tmp_path, "F-1", missing="none")
    real = {m: load_volume(next(folder.glob(f"*-{m.value}.nii.gz"))).data for m in (T1C, T1N, T2F, T2W)}
    synth = Synthesizer(tiny_any_weights, prior=False)
    made = fed_back(synth, real, (T1C, T1N, T2W))
    assert sorted(made) == [T1N, T2W]  # the first is the same as all at once: not remade
    first = synth.synthesize_stages({T2F: real[T2F]}, T1C, absent=[T1N, T2W])["generator"]
    second = synth.synthesize_stages({T2F: real[T2F], T1C: first}, T1N, absent=[T2W])["generator"]
    assert np.array_equal(made[T1N], second)
    at_once = synth.synthesize_stages({T2F: real[T2F]}, T1N, absent=[T1C, T2W])["generator"]
    assert not np.array_equal(made[T1N], at_once)

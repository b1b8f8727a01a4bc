"""The stand-in for a missing sequence and the companion's blend toward it (synthesis/stand_in.py)."""

from __future__ import annotations

import numpy as np
import pytest

from brasyn_infer.constants import Modality
from brasyn_infer.synthesis.stand_in import blend_toward, check_copy_blend, copy_source, copy_weight, pattern_label

T1C, T1N, T2F, T2W = Modality.T1C, Modality.T1N, Modality.T2F, Modality.T2W


def test_the_stand_in_is_the_closest_contrast_the_case_has():
    assert copy_source(T1C, [T1N, T2F, T2W]) is T1N
    assert copy_source(T1C, [T2F, T2W]) is T2W
    assert copy_source(T2F, [T1C, T1N, T2W]) is T2W
    assert copy_source(T2F, [T1C, T1N]) is T1N
    assert copy_source(T2W, [T1C]) is T1C


def test_a_pattern_is_named_in_channel_order_and_looked_up_with_its_target():
    assert pattern_label([T2W, T1C]) == "t1c+t2w"
    block = {"t1c+t2w": {"t1c": 0.3}}
    assert copy_weight(block, T1C, [T2W]) == 0.3
    assert copy_weight(block, T2W, [T1C]) == 0.0  # the pattern, not that target
    assert copy_weight(block, T1C, [T2F]) == 0.0  # another pattern
    assert copy_weight({}, T1C, [T2W, T1N]) == 0.0


def test_the_blend_moves_the_synthesis_toward_the_stand_in_and_keeps_the_background():
    rng = np.random.default_rng(0)
    synth = rng.uniform(1, 5, (6, 7, 5)).astype(np.float32)
    stand = rng.uniform(1, 5, (6, 7, 5)).astype(np.float32)
    synth[0], stand[0] = 0, 0
    assert np.array_equal(blend_toward(synth, stand, 0.0), synth)
    assert np.allclose(blend_toward(synth, stand, 1.0), stand)
    half = blend_toward(synth, stand, 0.25)
    assert half.dtype == np.float32 and np.allclose(half, 0.75 * synth + 0.25 * stand, atol=1e-6)
    assert (half[0] == 0).all() and (half >= 0).all()
    assert not np.shares_memory(half, synth)


@pytest.mark.parametrize("block, words", [
    ({"t1c+t2w": {"t1c": 0.5, "t2w": 0}}, None),
    ({"t1c+t1n+t2f": {"t2f": 1}}, None),
    ([1], "must map patterns"),
    ({"t1c": {"t1c": 0.5}}, "two or three"),
    ({"t2w+t1c": {"t1c": 0.5}}, "channel order (t1c+t2w)"),
    ({"t1c+t2w": {"t1n": 0.5}}, "does not synthesize"),
    ({"t1c+t2w": {"t1c": 1.5}}, "not a weight in [0, 1]"),
    ({"t1c+t2w": {"t1c": True}}, "not a weight"),
    ({"t1c+t2w": 0.5}, "must map modalities"),
])
def test_a_copy_blend_block_is_checked(block, words):
    problem = check_copy_blend(block)
    assert (problem is None) if words is None else (words in problem)

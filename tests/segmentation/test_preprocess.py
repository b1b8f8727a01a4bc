"""The segmenter's input: z-scores, the brain's box, crops and 2.5D stacks."""

import numpy as np

from brasyn_infer.segmentation.infer import segment_volume
from brasyn_infer.segmentation.preprocess import axial_stack, brain_box, crop, uncrop, zscore


def test_zscore_keeps_the_background_at_zero():
    x = np.zeros((4, 6, 6, 5), np.float32)
    x[:, 1:5, 1:5, 1:4] = np.arange(48, dtype=np.float32).reshape(4, 4, 3) + 10
    z = zscore(x)
    inside = x[0] != 0
    assert (z[:, ~inside] == 0).all() and abs(z[0][inside].mean()) < 1e-5 and abs(z[0][inside].std() - 1) < 1e-4


def test_the_box_is_a_multiple_and_crop_uncrop_round_trip():
    x = np.zeros((4, 40, 50, 7), np.float32)
    x[:, 3:20, 30:49, 2:5] = 1
    box = brain_box(x, multiple=16)
    assert (box.x1 - box.x0) % 16 == 0 and (box.y1 - box.y0) % 16 == 0
    assert box.x0 <= 3 and box.x1 >= 20 and box.y0 <= 30 and box.y1 >= 49  # may reach past the edge: padded
    boxed = crop(x, box)
    assert boxed.sum() == x.sum()
    assert np.array_equal(uncrop(boxed[0], box, x.shape[1:]), x[0])


def test_the_stack_takes_clamped_neighbours_neighbour_major():
    x = np.stack([np.full((2, 2, 3), c * 10, np.float32) + np.arange(3) for c in range(4)])
    stack = axial_stack(x, np.array([0, 2]), context=1)
    assert stack.shape == (2, 12, 2, 2)
    assert stack[0, :4, 0, 0].tolist() == [0, 10, 20, 30]  # slice -1 clamped to 0
    assert stack[1, 8:, 0, 0].tolist() == [2, 12, 22, 32]  # slice 3 clamped to 2


def test_segment_volume_runs_the_forward_on_the_brain_only():
    x = np.zeros((4, 20, 20, 6), np.float32)
    x[:, 4:12, 4:12, 1:5] = np.random.default_rng(0).random((4, 8, 8, 4)) + 1
    seen = []

    def forward(batch):
        seen.append(batch.shape)
        logits = np.zeros((len(batch), 4, *batch.shape[2:]), np.float32)
        logits[:, 2] = batch[:, 4 * 1 + 2]  # this slice's FLAIR z-score: "edema" where above the mean
        return logits

    classes = segment_volume(x, forward, context=1, multiple=8, batch=3)
    assert sum(s[0] for s in seen) == 4  # the four slices with brain
    brain = (x != 0).any(0)
    assert (classes[~brain] == 0).all() and set(np.unique(classes[brain])) <= {0, 2}
    z = (x[2][brain] - x[2][brain].mean()) / x[2][brain].std()
    assert np.array_equal(classes[brain] == 2, z > 0)

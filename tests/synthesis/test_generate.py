import numpy as np
import pytest

from brasyn_infer.constants import Modality, View
from brasyn_infer.synthesis.generate import generate_volume


class MeanModel:
    """A stand-in generator: the mean of the available channels, counting calls and batch sizes."""

    def __init__(self):
        self.batches: list[int] = []

    def __call__(self, x, mask, missing, view):
        self.batches.append(len(x))
        assert x.shape[1:] == (4, 240, 240) and mask.shape == (len(x), 4)
        assert (x[np.arange(len(x)), missing.astype(int)] == -1).all()
        w = mask[:, :, None, None]
        return ((x * w).sum(1, keepdims=True) / w.sum(1, keepdims=True)).astype(np.float32)


def volume(shape=(20, 24, 18), missing: Modality = Modality.T2F):
    rng = np.random.default_rng(1)
    x4 = rng.uniform(-0.9, 1, (4, *shape)).astype(np.float32)
    x4[:, :3] = -1  # three empty slices along X
    x4[missing.index] = -1
    return x4


@pytest.mark.parametrize("view", list(View))
def test_matches_direct_computation(view):
    x4 = volume()
    y = generate_volume(MeanModel(), x4, Modality.T2F, view, batch_size=7)
    expected = (x4[0] + x4[1] + x4[3]) / 3
    brain = ~(x4[[0, 1, 3]] == -1).all(0)
    np.testing.assert_allclose(y[brain], expected[brain], rtol=1e-6)


def test_background_slices_skip_the_model_exactly():
    x4 = volume()
    model = MeanModel()
    y = generate_volume(model, x4, Modality.T2F, View.SAGITTAL, batch_size=100)
    assert sum(model.batches) == 20 - 3
    assert (y[:3] == -1).all()


def test_batch_size_does_not_change_the_result():
    x4 = volume(missing=Modality.T1C)
    a = generate_volume(MeanModel(), x4, Modality.T1C, View.AXIAL, batch_size=1)
    b = generate_volume(MeanModel(), x4, Modality.T1C, View.AXIAL, batch_size=64)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_progress_counts_every_slice():
    seen = []
    generate_volume(MeanModel(), volume(), Modality.T2F, View.CORONAL, 5, on_batch=seen.append)
    assert sum(seen) == 24


class OutOfMemoryAbove(MeanModel):
    """Fails like a GPU that fits only ``limit`` slices per call."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def __call__(self, x, mask, missing, view):
        from brasyn_infer.errors import DeviceOutOfMemory

        if len(x) > self.limit:
            raise DeviceOutOfMemory(f"{len(x)} slices do not fit")
        return super().__call__(x, mask, missing, view)


def test_out_of_memory_halves_the_batch_and_retries(caplog):
    x4 = volume()
    model = OutOfMemoryAbove(limit=5)
    with caplog.at_level("WARNING"):
        y = generate_volume(model, x4, Modality.T2F, View.AXIAL, batch_size=16)
    assert max(model.batches) <= 5 and sum(model.batches) == 18
    np.testing.assert_allclose(y, generate_volume(MeanModel(), x4, Modality.T2F, View.AXIAL, 16), rtol=1e-6)
    assert [r.message for r in caplog.records] == ["out of device memory: retrying with batch size 8",
                                                   "out of device memory: retrying with batch size 4"]


def test_out_of_memory_at_batch_one_is_raised():
    from brasyn_infer.errors import DeviceOutOfMemory

    with pytest.raises(DeviceOutOfMemory):
        generate_volume(OutOfMemoryAbove(limit=0), volume(), Modality.T2F, View.AXIAL, batch_size=4)


class ViewIdModel(MeanModel):
    """Predicts its view id everywhere: fusion must average the ids voxel by voxel."""

    def __call__(self, x, mask, missing, view):
        super().__call__(x, mask, missing, view)
        return np.broadcast_to(view[:, None, None, None], (len(x), 1, 240, 240)).astype(np.float32)


def test_views_fuse_into_their_voxelwise_mean():
    x4 = volume()
    x4[:, 3:] = np.where(x4[:, 3:] == -1, -1, 0.5)  # brain everywhere outside the empty slices
    x4[Modality.T2F.index] = -1
    views = [View.AXIAL, View.SAGITTAL, View.CORONAL]
    fused = generate_volume(ViewIdModel(), x4, Modality.T2F, views, batch_size=8)
    singles = [generate_volume(ViewIdModel(), x4, Modality.T2F, v, batch_size=8) for v in views]
    np.testing.assert_allclose(fused, np.mean(singles, axis=0), rtol=1e-6)
    inside = fused[5:15, 5:20, 5:15]
    np.testing.assert_allclose(inside, np.mean([v.id for v in views]), rtol=1e-6)


def test_fusion_progress_counts_the_slices_of_every_view():
    from brasyn_infer.synthesis.generate import slice_count

    seen = []
    views = [View.SAGITTAL, View.AXIAL]
    generate_volume(MeanModel(), volume(), Modality.T2F, views, 5, on_batch=seen.append)
    assert sum(seen) == slice_count((20, 24, 18), views) == 20 + 18


def test_the_slice_loop_is_the_windowing_engine(monkeypatch):
    """One engine: the generator's slices go through brasyn_infer.synthesis.windows.accumulate as 1-voxel windows."""
    import brasyn_infer.synthesis.generate as generate
    from brasyn_infer.synthesis.windows import accumulate

    windows = []

    def spy(aggregator, volume, predict, window, overlap, batch_size, on_batch=None):
        windows.append((window, overlap))
        return accumulate(aggregator, volume, predict, window, overlap, batch_size, on_batch)

    monkeypatch.setattr(generate, "accumulate", spy)
    generate_volume(MeanModel(), volume(), Modality.T2F, [View.SAGITTAL, View.AXIAL], 4)
    assert windows == [((1, 24, 18), 0.0), ((20, 24, 1), 0.0)]

import logging

import numpy as np
import pytest

from brasyn_infer.constants import Device
from brasyn_infer.runtime.sessions import CPU, CUDA, TRT, GeneratorSession, available_providers, choose_providers


def test_provider_order_and_cpu_always_last():
    chosen = choose_providers(Device.AUTO, [TRT, CUDA, CPU], batch_size=16)
    assert [p if isinstance(p, str) else p[0] for p in chosen] == [TRT, CUDA, CPU]
    trt_options = chosen[0][1]
    assert trt_options["trt_engine_cache_enable"] is True
    assert trt_options["trt_profile_max_shapes"].startswith("x:16x4x240x240")
    assert choose_providers(Device.CPU, [TRT, CUDA, CPU], 16) == [CPU]
    assert choose_providers(Device.CUDA, [TRT, CUDA, CPU], 16) == [CUDA, CPU]  # cuda means no TensorRT
    assert choose_providers(Device.AUTO, [CPU], 16) == [CPU]


def test_missing_gpu_falls_back_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert choose_providers(Device.CUDA, [CPU], 8) == [CPU]
    assert len(caplog.records) == 1 and "running on CPU" in caplog.records[0].message


def test_session_runs_on_cpu(tiny_weights, caplog):
    session = GeneratorSession(tiny_weights.with_suffix(".onnx"), Device.CPU)
    assert session.providers[-1] == CPU and session.batch_size == 8 and not session.on_gpu
    x = np.full((2, 4, 240, 240), -1, dtype=np.float32)
    mask = np.array([[1, 1, 0, 1]] * 2, dtype=np.float32)
    y = session(x, mask, np.array([2, 2], np.float32), np.zeros(2, np.float32))
    assert y.shape == (2, 1, 240, 240) and np.isfinite(y).all()


@pytest.mark.gpu
@pytest.mark.skipif(CUDA not in available_providers(), reason="no CUDA provider in this onnxruntime (no GPU here)")
def test_cuda_session_matches_cpu(tiny_weights):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 4, 240, 240)).astype(np.float32)
    x[:, 2] = -1
    args = (x, np.array([[1, 1, 0, 1]] * 4, np.float32), np.full(4, 2, np.float32), np.zeros(4, np.float32))
    cpu = GeneratorSession(tiny_weights.with_suffix(".onnx"), Device.CPU)(*args)
    gpu_session = GeneratorSession(tiny_weights.with_suffix(".onnx"), Device.CUDA)
    assert gpu_session.on_gpu
    np.testing.assert_allclose(gpu_session(*args), cpu, atol=1e-3)


def test_io_binding_path_equals_plain_run(tiny_weights):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (3, 4, 240, 240)).astype(np.float32)
    x[:, 0] = -1
    args = (x, np.array([[0, 1, 1, 1]] * 3, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32))
    plain = GeneratorSession(tiny_weights.with_suffix(".onnx"), Device.CPU, io_binding=False)(*args)
    bound = GeneratorSession(tiny_weights.with_suffix(".onnx"), Device.CPU, io_binding=True)(*args)
    np.testing.assert_array_equal(plain, bound)


def test_fp16_reaches_tensorrt_options_only():
    chosen = choose_providers(Device.AUTO, [TRT, CUDA, CPU], 8, fp16=True)
    assert chosen[0][1]["trt_fp16_enable"] is True and chosen[1:] == [CUDA, CPU]


def test_gpu_providers_need_a_driver_and_tensorrt_its_libraries():
    from brasyn_infer.runtime.sessions import usable_providers

    built = [TRT, CUDA, CPU]
    assert usable_providers(built, driver=True, tensorrt=True) == built
    assert usable_providers(built, driver=True, tensorrt=False) == [CUDA, CPU]
    assert usable_providers(built, driver=False, tensorrt=True) == [CPU]  # a GPU build on a machine without a GPU
    assert usable_providers([CPU], driver=True, tensorrt=True) == [CPU]


def test_a_broken_onnxruntime_is_one_clear_error(monkeypatch):
    """onnxruntime and onnxruntime-gpu in one environment leave a module without its API."""
    import sys
    import types

    from brasyn_infer.errors import BrasynError
    from brasyn_infer.runtime.sessions import onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", types.ModuleType("onnxruntime"))
    with pytest.raises(BrasynError, match="incomplete.*pip uninstall -y onnxruntime onnxruntime-gpu"):
        onnxruntime()
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(BrasynError, match="not installed.*brasyn-infer\\[cpu\\]"):
        onnxruntime()


def test_the_default_thread_count_is_the_processes_cpus(monkeypatch):
    """A shard pinned to one core (taskset, a Slurm cpuset) gets one ONNX Runtime thread, not one per CPU of the
    machine (which oversubscribes the core it has)."""
    import os

    from brasyn_infer.runtime import sessions

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert sessions.available_cpus() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert sessions.available_cpus() == 3

"""ONNX Runtime sessions: provider choice (TensorRT, CUDA, CPU), threads, and feeding the graph."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from brasyn_infer.constants import Device
from brasyn_infer.errors import BrasynError, DeviceOutOfMemory, WeightsError

#: How ONNX Runtime's CUDA/TensorRT providers word an allocation failure.
OOM_MARKERS = ("out of memory", "failed to allocate memory", "cudaerrormemoryallocation", "bfcarena")

log = logging.getLogger(__name__)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
GPU_PROVIDERS = (TRT, CUDA)


def cache_dir() -> Path:
    """A writable cache folder (TensorRT engines): ``$BRASYN_CACHE_DIR`` or the temp dir."""
    path = Path(os.environ.get("BRASYN_CACHE_DIR", Path(tempfile.gettempdir()) / "brasyn-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


ORT_FIX = ("install exactly one ONNX Runtime: pip uninstall -y onnxruntime onnxruntime-gpu, then "
           "pip install 'brasyn-infer[cpu]' (or '[gpu]' for CUDA)")


def onnxruntime():
    """The ``onnxruntime`` module, checked: BrasynError with the fix when it is absent or broken.

    ``onnxruntime`` and ``onnxruntime-gpu`` install into the same folder; having both (or uninstalling
    one after the other) leaves a package without its API, which would otherwise surface as an
    AttributeError deep in a run.
    """
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise BrasynError(f"ONNX Runtime is not installed ({error})", fix=ORT_FIX) from None
    if not all(hasattr(ort, name) for name in ("InferenceSession", "SessionOptions", "get_available_providers")):
        where = Path(getattr(ort, "__file__", None) or "?").parent
        raise BrasynError(f"ONNX Runtime at {where} is incomplete (onnxruntime and "
                          "onnxruntime-gpu were both installed, or one was removed after the other)", fix=ORT_FIX)
    return ort


_PRELOADED = False


def preload_gpu_libraries(ort) -> None:
    """Load CUDA and cuDNN from NVIDIA's pip wheels (onnxruntime-gpu[cuda,cudnn]) before a GPU session.

    ``onnxruntime.preload_dlls`` exists from 1.21 on; older builds find the libraries on the system path.
    """
    global _PRELOADED
    if _PRELOADED or not hasattr(ort, "preload_dlls"):
        return
    _PRELOADED = True
    try:
        ort.preload_dlls()
    except Exception as error:  # noqa: BLE001 - the provider then reports what it misses
        log.debug("onnxruntime.preload_dlls() failed: %s", error)


#: Shared libraries whose presence decides whether a GPU provider can start: the NVIDIA driver (mounted
#: from the host by ``docker run --gpus``) and TensorRT's runtime (sonames ONNX Runtime 1.2x/1.3x loads).
DRIVER_LIBRARIES = ("libcuda.so.1",)
TENSORRT_LIBRARIES = ("libnvinfer.so.10", "libnvinfer.so.11")


def loadable(names: tuple[str, ...]) -> bool:
    """Can one of these shared libraries be loaded (``dlopen``) in this process?"""
    import ctypes

    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def usable_providers(built: list[str], driver: bool, tensorrt: bool) -> list[str]:
    """The providers of this onnxruntime build (``built``) that can start here.

    A GPU build lists CUDA and TensorRT even where no GPU driver is present (a CPU machine, a
    container run without ``--gpus``) or where TensorRT is not installed; asking for them then costs
    a page of provider errors before the CPU fallback. So they are dropped up front.
    """
    return [p for p in built if (p not in GPU_PROVIDERS or driver) and (p != TRT or tensorrt)]


def available_providers() -> list[str]:
    """This onnxruntime's providers that can start on this machine, best first."""
    built = list(onnxruntime().get_available_providers())
    if not any(p in GPU_PROVIDERS for p in built):
        return built
    return usable_providers(built, loadable(DRIVER_LIBRARIES), TRT in built and loadable(TENSORRT_LIBRARIES))


#: TensorRT optimization profile of the generator graph; {b} is the batch size.
GENERATOR_SHAPES = "x:{b}x4x240x240,mask:{b}x4,missing:{b},view:{b}"


def trt_shapes(manifest) -> str:
    """The TensorRT profile of a generator manifest's graph (``{b}``: batch): its declared inputs only."""
    inputs = manifest.inputs or ("x", "mask", "missing", "view")
    spatial = "x".join(map(str, manifest.window)) if manifest.kind == "window3d" else "240x240"
    dims = {"x": f"{{b}}x4x{spatial}", "mask": "{b}x4", "missing": "{b}", "view": "{b}"}
    return ",".join(f"{name}:{dims[name]}" for name in inputs if name in dims)


def choose_providers(device: Device, available: list[str], batch_size: int, fp16: bool = False,
                     shapes: str = GENERATOR_SHAPES) -> list:
    """Ordered provider list for ``device``; GPU providers only when this onnxruntime has them.

    ``auto``: TensorRT, CUDA, CPU; ``cuda``: CUDA, CPU (no TensorRT); ``cpu``: CPU. ``shapes`` is
    the graph's TensorRT profile with ``{b}`` for the batch size (1 to ``batch_size``).
    """
    if device is Device.CPU:
        return [CPU]
    chosen: list = []
    if TRT in available and device is Device.AUTO:
        chosen.append((TRT, {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir() / "trt"),
            "trt_fp16_enable": fp16,
            "trt_profile_min_shapes": shapes.format(b=1),
            "trt_profile_opt_shapes": shapes.format(b=batch_size),
            "trt_profile_max_shapes": shapes.format(b=batch_size),
        }))
    if CUDA in available:
        chosen.append(CUDA)
    if device is Device.CUDA and not chosen:
        log.warning("CUDA cannot start here (usable providers: %s): running on CPU; install brasyn-infer[gpu] "
                    "and give the process a GPU (docker run --gpus all)", ", ".join(available))
    chosen.append(CPU)
    return chosen


def default_batch_size(providers: list[str]) -> int:
    return 32 if any(p in GPU_PROVIDERS for p in providers) else 8


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity: what Slurm's --cpus-per-task, a cpuset or `taskset` give
    it), not every CPU of the machine; ONNX Runtime's default thread count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def open_session(onnx_path: Path, device: Device, batch_size: int, threads: int | None, fp16: bool,
                 shapes: str = GENERATOR_SHAPES):
    """An ``onnxruntime.InferenceSession`` on the best provider ``device`` allows; WeightsError if it cannot load."""
    ort = onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Memory patterns pre-plan one buffer per batch shape: +0.4 GB at batch 8 on CPU, no speed gain.
    options.enable_mem_pattern = False
    options.intra_op_num_threads = threads or available_cpus()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    available = available_providers()
    requested = choose_providers(device, available, batch_size, fp16=fp16, shapes=shapes)
    if any(p in GPU_PROVIDERS for p in (r if isinstance(r, str) else r[0] for r in requested)):
        preload_gpu_libraries(ort)
    try:
        session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=requested)
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
        raise WeightsError(f"onnxruntime cannot load the graph ({error})", onnx_path,
                           "re-export the weights, or check the onnxruntime version") from error
    names = [p if isinstance(p, str) else p[0] for p in requested]
    dropped = [p for p in names if p not in session.get_providers()]
    if dropped and device is not Device.CPU:
        log.warning("provider(s) %s could not start; running on %s", ", ".join(dropped), session.get_providers()[0])
    return session


def is_out_of_memory(error: Exception) -> bool:
    return any(marker in str(error).lower() for marker in OOM_MARKERS)


class GeneratorSession:
    """One ONNX Runtime session for a generator graph: ``x`` and whichever of ``mask``, ``missing`` and
    ``view`` it declares -> its first output, or with ``outputs`` several outputs stacked along the channel axis
    (docs/model-contract.md)."""

    def __init__(self, onnx_path: Path, device: Device = Device.AUTO, batch_size: int | None = None,
                 threads: int | None = None, fp16: bool = False, io_binding: bool | None = None,
                 shapes: str = GENERATOR_SHAPES) -> None:
        """``fp16`` lets TensorRT build fp16 engines (other providers stay fp32). ``io_binding``
        (default: on for GPU providers) binds inputs once per call and lets the provider allocate
        the output on its device, copied back once. ``shapes``: the TensorRT profile (``{b}``: batch)."""
        self.path = onnx_path
        self.session = open_session(onnx_path, device, batch_size or 32, threads, fp16, shapes=shapes)
        self.providers = self.session.get_providers()
        self.batch_size = batch_size or default_batch_size(self.providers)
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.output_names = [self.session.get_outputs()[0].name]
        self.io_binding = self.on_gpu if io_binding is None else io_binding
        self.output_device = "cuda" if self.on_gpu else "cpu"

    @property
    def on_gpu(self) -> bool:
        return self.providers[0] in GPU_PROVIDERS

    def __call__(self, x: np.ndarray, mask: np.ndarray | None = None, missing: np.ndarray | None = None,
                 view: np.ndarray | None = None) -> np.ndarray:
        """``x`` (B, 4, ...), ``mask`` (B, 4), ``missing`` and ``view`` (B,), all float32 -> (B, 1, ...);
        only the inputs the graph declares are fed."""
        feed = {k: v for k, v in {"x": x, "mask": mask, "missing": missing, "view": view}.items()
                if k in self.input_names and v is not None}
        try:
            if not self.io_binding:
                return _stack(self.session.run(self.output_names, feed))
            binding = self.session.io_binding()
            for name, array in feed.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(array))
            for name in self.output_names:
                binding.bind_output(name, self.output_device)
            self.session.run_with_iobinding(binding)
            return _stack(binding.copy_outputs_to_cpu())
        except Exception as error:  # onnxruntime's RuntimeException and friends
            if is_out_of_memory(error):
                raise DeviceOutOfMemory(f"batch of {len(x)} does not fit ({error})", self.path,
                                        "use a smaller --batch-size") from error
            raise


    def select_outputs(self, names: list[str]) -> None:
        """Return these outputs (the graph's names), stacked along the channel axis, from now on."""
        found = {o.name for o in self.session.get_outputs()}
        unknown = [n for n in names if n not in found]
        if unknown:
            raise WeightsError(f"the graph has no output {', '.join(unknown)} (it has {', '.join(sorted(found))})",
                               self.path, "re-export the weights, or fix the manifest's outputs")
        self.output_names = list(names)


def _stack(outputs: list[np.ndarray]) -> np.ndarray:
    """One output as it is; several ``(B, 1, ...)`` outputs as one ``(B, k, ...)`` array."""
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=1)


class RefinerSession:
    """One ONNX Runtime session for a 3D Refiner graph ``(x (B, 4, D, H, W), missing (B,)) -> y (B, 1, D, H, W)``."""

    def __init__(self, onnx_path: Path, window: tuple[int, int, int], device: Device = Device.AUTO,
                 threads: int | None = None, fp16: bool = False) -> None:
        self.path = onnx_path
        shapes = "x:{b}x4x" + "x".join(str(n) for n in window) + ",missing:{b}"
        self.session = open_session(onnx_path, device, 1, threads, fp16, shapes=shapes)
        self.providers = self.session.get_providers()

    def __call__(self, x: np.ndarray, missing: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32),
                                           "missing": np.ascontiguousarray(missing, dtype=np.float32)})[0]
        except Exception as error:
            if is_out_of_memory(error):
                raise DeviceOutOfMemory(f"a refiner window of {x.shape[2:]} does not fit ({error})", self.path,
                                        "run with --no-refine, or on the CPU (--device cpu)") from error
            raise

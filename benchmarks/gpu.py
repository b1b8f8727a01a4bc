"""GPU timings (run where a GPU is lent): CUDA fp32 and TensorRT fp16, full-size and default models.

    python benchmarks/gpu.py [--dim 64] [--case examples/BraTS-GLI-00001-000] [--providers cuda trt]

A random-init HFGAN (config A, ``--dim``; random weights time the same as trained ones) is exported
to ONNX; each provider runs the example case end to end (read, normalize, model, write) after one
warm-up case (TensorRT builds its engine there; that time is reported separately). The fp16 engine's
output is compared with the fp32 one on the same slices (max abs diff, normalized units). The bundled
default model is timed the same way. ``--providers cpu`` checks the script on a machine without GPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from brasyn_infer.constants import Device, View  # noqa: E402
from brasyn_infer.io.cases import discover  # noqa: E402
from brasyn_infer.io.nifti import read_inputs  # noqa: E402
from brasyn_infer.pipeline.run import run  # noqa: E402
from brasyn_infer.pipeline.synthesizer import Synthesizer  # noqa: E402
from brasyn_infer.synthesis.generate import generate_volume  # noqa: E402

SETTINGS = {"cpu": (Device.CPU, False), "cuda": (Device.CUDA, False), "trt": (Device.AUTO, True)}


def export_random(dim: int, folder: Path) -> Path:
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig

    torch.manual_seed(0)
    manifest = export(HFGAN(HFGANConfig(dim=dim)), folder, f"random-dim{dim}", default_view=View.SAGITTAL,
                      provenance={"note": "random init, for timing only"})
    return manifest.path


def time_weights(weights: Path | str | None, provider: str, case_dir: Path, batch: int | None) -> tuple[str, float, float, np.ndarray]:
    device, fp16 = SETTINGS[provider]
    if provider == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise SystemExit("no CUDA provider in this onnxruntime")
    synth = Synthesizer(weights, None, batch, device, fp16=fp16)
    entries = discover(case_dir)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run(entries, synth, Path(tmp) / "warm")
        warm = time.perf_counter() - start
        start = time.perf_counter()
        run(entries, synth, Path(tmp) / "timed")
        seconds = time.perf_counter() - start
    case = entries[0].case
    volumes = {m: v.data for m, v in read_inputs(case.inputs).items()}
    x4, _ = synth.normalizer.stack(volumes, case.missing)
    y = generate_volume(synth.session, x4, case.missing, synth.views, synth.batch_size)
    return ",".join(synth.session.providers), warm, seconds, y


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--case", type=Path, default=REPO / "examples" / "BraTS-GLI-00001-000")
    p.add_argument("--providers", nargs="+", default=["cuda", "trt"], choices=sorted(SETTINGS))
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        models = {f"random dim {args.dim}": export_random(args.dim, Path(tmp)), "default": None}
        for label, weights in models.items():
            outputs = {}
            for provider in args.providers:
                used, warm, seconds, y = time_weights(weights, provider, args.case, args.batch_size)
                outputs[provider] = y
                print(f"{label:<16} {provider:<5} [{used}] warm-up case {warm:6.2f} s, then {seconds:6.2f} s per case")
            if "trt" in outputs and "cuda" in outputs:
                diff = float(np.abs(outputs["trt"] - outputs["cuda"]).max())
                print(f"{label:<16} TensorRT fp16 vs CUDA fp32: max abs diff {diff:.4g} (normalized units)")


if __name__ == "__main__":
    main()

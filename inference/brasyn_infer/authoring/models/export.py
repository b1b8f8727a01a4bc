"""Export an HFGAN (or a 3D Refiner) to ONNX with its manifest, after checking ONNX Runtime against torch.

Needs the ``[torch]`` extra. Nothing is written unless the check passes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
from brasyn_infer.authoring.models.hfgan_layers import onnx_friendly
from brasyn_infer.authoring.models.refiner import Refiner
from brasyn_infer.authoring.models.residual import ARCHITECTURE, PriorResidualHFGAN
from brasyn_infer.constants import BRASYN25_STATS, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.manifest import LOG_SCALE, PATTERNS_ANY, PATTERNS_ONE, Manifest, sha256_of, write_manifest
from brasyn_infer.synthesis.trust import Trust

if TYPE_CHECKING:
    from brasyn_infer.runtime.refiner_manifest import RefinerManifest

OPSET = 17
INPUT_NAMES = ["x", "mask", "missing", "view"]
PARITY_ATOL = 1e-4


def example_inputs(batch: int, seed: int = 0, extra_missing: bool = False) -> tuple[torch.Tensor, ...]:
    """Random normalized slices with one missing channel per sample (varying), and view ids; ``extra_missing``:
    sample ``i`` also lacks ``i % 3`` more channels (a pattern model's inputs)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 4, 240, 240, generator=gen) * 4 - 1
    missing = torch.randint(0, 4, (batch,), generator=gen)
    mask = torch.ones(batch, 4)
    mask[torch.arange(batch), missing] = 0
    if extra_missing:
        for i in range(batch):
            others = [c for c in range(4) if c != int(missing[i])]
            mask[i, others[:i % 3]] = 0
    x[mask == 0] = -1
    view = torch.randint(0, 3, (batch,), generator=gen)
    return x, mask, missing.float(), view.float()


def output_names(net: nn.Module) -> list[str]:
    """The graph's outputs: ``y``, and ``log_scale`` for a model with its own uncertainty output."""
    return ["y", LOG_SCALE] if isinstance(net, PriorResidualHFGAN) else ["y"]


def to_onnx(net: nn.Module, path: Path) -> None:
    """Trace ``net`` (eval) to ``path`` with a dynamic batch axis."""
    net = net.eval()
    outputs = output_names(net)
    dynamic = {name: {0: "batch"} for name in INPUT_NAMES + outputs}
    with torch.no_grad(), onnx_friendly():
        torch.onnx.export(
            net, example_inputs(2), str(path), input_names=INPUT_NAMES, output_names=outputs,
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


def parity(net: nn.Module, onnx_path: Path, batch: int = 3) -> float:
    """Max abs difference between ONNX Runtime (CPU) and torch on random inputs, over every output."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    inputs = example_inputs(batch, seed=1, extra_missing=bool(getattr(net, "patterns", False)))
    with torch.no_grad():
        expected = net.eval()(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    feed = {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True) if n in names}
    got = session.run(None, feed)
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))


def export(
    net: HFGAN | PriorResidualHFGAN,
    out_dir: Path,
    name: str,
    normalization: dict[str, Any] | None = None,
    default_view: View = View.SAGITTAL,
    provenance: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    views: tuple[View, ...] = (),
    refiner: dict[str, Any] | None = None,
    uncertainty: dict[str, Any] | None = None,
    trust: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``out_dir/<name>.onnx`` and ``<name>.json``; raise (writing nothing) on a parity failure.

    ``refiner`` is the manifest's refiner block, ``{"weights": NAME, "enabled": bool}`` (none by default);
    ``uncertainty`` the block that turns a ``log_scale`` output into the map (docs/design.md §5); ``trust`` the
    linear-prior blend (``brasyn_infer.synthesis.trust``), checked before anything is written.
    """
    Trust.from_manifest(trust)
    out_dir.mkdir(parents=True, exist_ok=True)
    normalization = normalization or {"scheme": "brasyn25", "stats": BRASYN25_STATS}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp_onnx = Path(tmp) / f"{name}.onnx"
        to_onnx(net, tmp_onnx)
        diff = parity(net, tmp_onnx)
        if not diff <= PARITY_ATOL:
            raise WeightsError(f"ONNX Runtime differs from torch by {diff:.3g} (> {PARITY_ATOL})", tmp_onnx,
                               "nothing was written; report this with the torch and onnxruntime versions")
        residual = isinstance(net, PriorResidualHFGAN)
        manifest = Manifest(
            name=name, architecture=ARCHITECTURE if residual else "hfgan", config=net.cfg.to_dict(),
            normalization=normalization, outputs=tuple(output_names(net)) if residual else (),
            default_view=default_view, onnx=f"{name}.onnx", sha256=sha256_of(tmp_onnx),
            path=out_dir / f"{name}.json",
            provenance={**(provenance or {}), "export": {"torch": torch.__version__, "opset": OPSET,
                                                           "parity_max_abs_diff": diff}},
            training=training or {},
            views=tuple(views),
            refiner=dict(refiner or {}),
            uncertainty=dict(uncertainty or {}),
            trust=dict(trust or {}),
            patterns=PATTERNS_ANY if getattr(net, "patterns", False) else PATTERNS_ONE,
        )
        os.replace(tmp_onnx, manifest.onnx_path)
    write_manifest(manifest)
    return manifest


def load_config(spec: str, checkpoint: Path) -> HFGANConfig:
    """``A``/``B`` (dim inferred from the checkpoint) or a JSON config file."""
    if Path(spec).is_file():
        return HFGANConfig.from_dict(json.loads(Path(spec).read_text()))
    from brasyn_infer.authoring.models.hfgan import config_preset, read_safetensors

    state = read_safetensors(str(checkpoint))
    key = next((k for k in state if k.endswith("encoder_early.conv_initial.weight")), None)
    if key is None:
        raise WeightsError("no HFGAN encoder weights in this checkpoint", checkpoint,
                           "give an HFGAN checkpoint (published BraSyn25 format or training/train.py's)")
    return config_preset(spec, dim=int(state[key].shape[0]))


def refiner_example(batch: int, window: tuple[int, int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random z-scored ``(batch, 4, *window)`` inputs and missing indices, varying per sample."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, *window, generator=gen)
    return x, torch.randint(0, 4, (batch,), generator=gen).float()


def export_refiner(
    net: Refiner,
    out_dir: Path,
    name: str,
    window: tuple[int, int, int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    provenance: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> RefinerManifest:
    """Write ``out_dir/<name>.onnx`` and ``<name>.json`` for a 3D Refiner (batch and spatial axes dynamic);
    raise (writing nothing) when ONNX Runtime differs from torch by more than :data:`PARITY_ATOL`."""
    import onnxruntime as ort

    from brasyn_infer.runtime.refiner_manifest import RefinerManifest
    from brasyn_infer.synthesis.windows import BlendMode

    multiple = 2 ** net.cfg.levels
    if any(n % multiple for n in window):
        raise WeightsError(f"refiner window {window} is not divisible by {multiple}", fix="choose a multiple of 2**levels")
    out_dir.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        tmp_onnx = Path(tmp) / f"{name}.onnx"
        dynamic = {"x": {0: "batch", 2: "d", 3: "h", 4: "w"}, "missing": {0: "batch"}, "y": {0: "batch", 2: "d", 3: "h", 4: "w"}}
        with torch.no_grad():
            torch.onnx.export(net, refiner_example(1, (16, 16, 16)), str(tmp_onnx), input_names=["x", "missing"],
                              output_names=["y"], dynamic_axes=dynamic, opset_version=OPSET, dynamo=False,
                              do_constant_folding=True)
        session = ort.InferenceSession(str(tmp_onnx), providers=["CPUExecutionProvider"])
        x, missing = refiner_example(2, window, seed=1)
        with torch.no_grad():
            expected = net(x, missing).numpy()
        diff = float(np.abs(session.run(None, {"x": x.numpy(), "missing": missing.numpy()})[0] - expected).max())
        if not diff <= PARITY_ATOL:
            raise WeightsError(f"ONNX Runtime differs from torch by {diff:.3g} (> {PARITY_ATOL})", tmp_onnx,
                               "nothing was written; report this with the torch and onnxruntime versions")
        manifest = RefinerManifest(
            name=name, config=net.cfg.to_dict(), window=tuple(window), overlap=overlap, blend=BlendMode(blend),
            onnx=f"{name}.onnx", sha256=sha256_of(tmp_onnx), path=out_dir / f"{name}.json",
            provenance={**(provenance or {}), "export": {"torch": torch.__version__, "opset": OPSET,
                                                       "parity_max_abs_diff": diff}},
            training=training or {})
        os.replace(tmp_onnx, manifest.onnx_path)
    manifest.write()
    return manifest

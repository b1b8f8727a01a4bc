"""Export the embedded segmenter (``unet.UNet2D``) to ONNX with its manifest, after checking ONNX Runtime against
torch. Needs the ``[torch]`` extra; nothing is written unless the check passes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from brasyn_infer.authoring.models.unet import UNet2D
from brasyn_infer.constants import MODALITIES
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.manifest import sha256_of
from brasyn_infer.runtime.segmenter_manifest import SegmenterManifest, check_segmenter
from brasyn_infer.segmentation.preprocess import CLIP

OPSET = 17
PARITY_ATOL = 1e-3


def export_segmenter(net: UNet2D, out: Path, name: str, context: int, training: dict | None = None,
                     provenance: dict | None = None, availability: bool = False) -> Path:
    """``out/<name>.onnx`` (dynamic batch, height and width) and ``out/<name>.json``; returns the manifest's path."""
    import onnxruntime as ort

    net = net.eval()
    out.mkdir(parents=True, exist_ok=True)
    side = 2 * net.cfg.multiple
    example = torch.randn(2, net.cfg.in_channels, side * 3, side * 2)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        onnx_tmp = Path(tmp) / f"{name}.onnx"
        with torch.no_grad():
            torch.onnx.export(net, (example,), str(onnx_tmp), input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"},
                                            "logits": {0: "batch", 2: "height", 3: "width"}},
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        probe = torch.randn(3, net.cfg.in_channels, side * 2, side * 4)
        with torch.no_grad():
            expected = net(probe).numpy()
        got = ort.InferenceSession(str(onnx_tmp), providers=["CPUExecutionProvider"]).run(None, {"x": probe.numpy()})[0]
        diff = float(np.abs(got - expected).max())
        if diff > PARITY_ATOL:
            raise WeightsError(f"ONNX Runtime differs from torch by {diff:.2e}", onnx_tmp, "check the export")
        manifest = SegmenterManifest(
            name=name, kind="slice2d", channels=MODALITIES, normalization={"scheme": "zscore", "clip": CLIP},
            multiple=net.cfg.multiple, output="logits", classes=(0, 1, 2, 3), onnx=f"{name}.onnx",
            sha256=sha256_of(onnx_tmp), path=out / f"{name}.json", context=context, availability=availability,
            config=net.cfg.to_dict(),
            provenance={**(provenance or {}), "export": {"torch": torch.__version__, "opset": OPSET,
                                                        "parity_max_abs_diff": diff}},
            training=training or {})
        check_segmenter(manifest)
        os.replace(onnx_tmp, out / f"{name}.onnx")
    manifest.write()
    return manifest.path

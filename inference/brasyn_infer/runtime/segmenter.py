"""A tumor segmenter ready to run: its manifest (checked, sha256-verified) and one ONNX Runtime session.

:meth:`Segmenter.segment` takes the four modalities of a case ``(X, Y, Z)`` each (scanner units, as nibabel loads
them) and returns the ``(X, Y, Z)`` uint8 class map (0 background, 1 NCR, 2 ED, 3 ET), whatever the graph's
channel order, normalization, output channels and kind (``slice2d`` or ``volume3d``) that its manifest declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.errors import CaseError
from brasyn_infer.runtime.segmenter_manifest import SegmenterManifest, load_segmenter_manifest
from brasyn_infer.runtime.sessions import open_session
from brasyn_infer.segmentation.infer import segment_volume, softmax
from brasyn_infer.segmentation.preprocess import brain_box, crop, uncrop, zscore

#: the TensorRT profile of a segmenter graph (dynamic batch and plane)
SEG_SHAPES = "x:{b}x12x240x240"


class Segmenter:
    """Built in two steps like the generator: the constructor loads the weights once; :meth:`segment` runs a case."""

    def __init__(self, weights: str | Path | None = None, device: Device = Device.AUTO, threads: int | None = None,
                 batch_size: int = 16) -> None:
        self.manifest: SegmenterManifest = load_segmenter_manifest(weights)
        self.session = open_session(self.manifest.onnx_path, device, batch_size, threads, False, shapes=SEG_SHAPES)
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = batch_size

    def describe(self) -> dict[str, object]:
        m = self.manifest
        return {"name": m.name, "onnx": m.onnx, "sha256": m.sha256, "kind": m.kind}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Our-order channels ``(B, C, ...)`` -> class probabilities ``(B, 4, ...)`` (0 bg, 1 NCR, 2 ED, 3 ET)."""
        m = self.manifest
        blocks = x.shape[1] // len(MODALITIES)
        order = [b * len(MODALITIES) + i for b in range(blocks) for i in m.order]
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x[:, order], dtype=np.float32)})[0]
        probs = softmax(out) if m.output == "logits" else np.asarray(out, dtype=np.float32)
        merged = np.zeros((probs.shape[0], 4, *probs.shape[2:]), dtype=np.float32)
        for channel, cls in enumerate(m.classes):
            merged[:, cls] += probs[:, channel]
        return merged

    def segment(self, volumes: Mapping[Modality, np.ndarray]) -> np.ndarray:
        """``(X, Y, Z)`` uint8 classes of a complete case (all four modalities)."""
        absent = [mod.value for mod in MODALITIES if mod not in volumes]
        if absent:
            raise CaseError(f"segmentation needs all four modalities; {', '.join(absent)} missing",
                            None, "complete the case first (brasyn-infer segment --complete)")
        x4 = np.stack([np.asarray(volumes[mod], dtype=np.float32) for mod in MODALITIES])
        m = self.manifest
        normalized = m.normalization.get("scheme") == "zscore"
        if normalized:
            x4 = zscore(x4, float(m.normalization.get("clip", 5.0)))
        if m.kind == "slice2d":
            return segment_volume(x4, self._forward, m.context, m.multiple, self.batch_size, normalized=True,
                                  logits=False)
        brain = (x4 != 0).any(axis=0)
        box = brain_box(x4, m.multiple)
        probs = self._forward(crop(x4, box)[None])[0]
        classes = uncrop(probs.argmax(axis=0).astype(np.uint8), box, brain.shape)  # type: ignore[arg-type]
        classes[~brain] = 0
        return classes

"""A tumor segmenter ready to run: its manifest (checked, sha256-verified) and one ONNX Runtime session.

:meth:`Segmenter.segment` takes the four modalities of a case ``(X, Y, Z)`` each (scanner units, as nibabel loads
them) and returns the ``(X, Y, Z)`` uint8 class map (0 background, 1 NCR, 2 ED, 3 ET), whatever the graph's
channel order, normalization, output channels and kind (``slice2d`` or ``volume3d``) that its manifest declares.
A missing-sequence segmenter (``availability`` in its manifest) takes any non-empty subset of the modalities.

The manifest is checked against the graph when the session opens: an input channel count or an output channel
count that the manifest's ``context``, ``availability`` or ``classes`` do not imply is refused in one line naming
the field, before any case runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Device, Modality
from brasyn_infer.errors import CaseError, WeightsError
from brasyn_infer.runtime.segmenter_manifest import DEFAULT_DIRECT, SegmenterManifest, load_segmenter_manifest
from brasyn_infer.runtime.sessions import open_session
from brasyn_infer.segmentation.infer import segment_volume, softmax
from brasyn_infer.segmentation.preprocess import brain_box, crop, uncrop, zscore

#: the TensorRT profile of a segmenter graph (dynamic batch and plane; ``{c}``: its input channels)
SEG_SHAPES = "x:{{b}}x{c}x240x240"


def check_graph(m: SegmenterManifest, session) -> None:
    """WeightsError naming the manifest's field when the graph's input or output channels (where the graph fixes
    them) disagree with what the manifest implies."""
    declared = session.get_inputs()[0].shape
    channels = declared[1] if len(declared) > 1 else None
    if isinstance(channels, int) and channels != m.in_channels:
        raise WeightsError(f"the graph takes {channels} input channels, the manifest implies {m.in_channels} "
                           f"(context {m.context}, availability {str(m.availability).lower()}, kind {m.kind})", m.path,
                           "set context / availability to the graph's, or re-export the segmenter")
    out = session.get_outputs()[0].shape
    classes = out[1] if len(out) > 1 else None
    if isinstance(classes, int) and classes != len(m.classes):
        raise WeightsError(f"the graph outputs {classes} channels, the manifest's classes list {len(m.classes)}",
                           m.path, "give one class per output channel in classes")


def missing_sequence_segmenter(spec: str | Path | None, device: Device = Device.AUTO) -> Segmenter | None:
    """The missing-sequence segmenter ``spec`` names (a NAME or manifest; ``none``: None), or without ``spec`` the
    embedded one where it is installed (None where it is not). WeightsError when ``spec`` names one that cannot
    load or that has no ``availability``."""
    if spec is not None and str(spec).lower() == "none":
        return None
    try:
        found = Segmenter(spec or DEFAULT_DIRECT, device)
    except WeightsError:
        if spec is not None:
            raise
        return None
    if not found.direct:
        raise WeightsError("not a missing-sequence segmenter (its manifest has no availability)",
                           found.manifest.path, "name one trained with --any-pattern, or none")
    return found


class Segmenter:
    """Built in two steps like the generator: the constructor loads the weights once; :meth:`segment` runs a case."""

    def __init__(self, weights: str | Path | None = None, device: Device = Device.AUTO, threads: int | None = None,
                 batch_size: int = 16) -> None:
        self.manifest: SegmenterManifest = load_segmenter_manifest(weights)
        self.session = open_session(self.manifest.onnx_path, device, batch_size, threads, False,
                                    shapes=SEG_SHAPES.format(c=self.manifest.in_channels))
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = batch_size
        check_graph(self.manifest, self.session)

    def describe(self) -> dict[str, object]:
        m = self.manifest
        return {"name": m.name, "onnx": m.onnx, "sha256": m.sha256, "kind": m.kind}

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """Our-order channels ``(B, C, ...)`` -> class probabilities ``(B, 4, ...)`` (0 bg, 1 NCR, 2 ED, 3 ET); a
        missing-sequence segmenter's availability planes come last, already in the manifest's channel order."""
        m = self.manifest
        planes = len(MODALITIES) if m.availability else 0
        blocks = (x.shape[1] - planes) // len(MODALITIES)
        order = [b * len(MODALITIES) + i for b in range(blocks) for i in m.order]
        order += list(range(x.shape[1] - planes, x.shape[1]))
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x[:, order], dtype=np.float32)})[0]
        probs = softmax(out) if m.output == "logits" else np.asarray(out, dtype=np.float32)
        merged = np.zeros((probs.shape[0], 4, *probs.shape[2:]), dtype=np.float32)
        for channel, cls in enumerate(m.classes):
            merged[:, cls] += probs[:, channel]
        return merged

    @property
    def direct(self) -> bool:
        """Whether it segments a case that lacks modalities (a missing-sequence segmenter)."""
        return self.manifest.availability

    def segment(self, volumes: Mapping[Modality, np.ndarray]) -> np.ndarray:
        """``(X, Y, Z)`` uint8 classes of a case: all four modalities, or (a missing-sequence segmenter) any of them."""
        absent = [mod for mod in MODALITIES if mod not in volumes]
        if absent and not self.direct:
            raise CaseError(f"segmentation needs all four modalities; {', '.join(m.value for m in absent)} missing",
                            None, "complete the case first (brasyn-infer segment --route complete), or segment it "
                            "with a missing-sequence segmenter (--route direct)")
        if len(absent) == len(MODALITIES):
            raise CaseError("no modality to segment", None, "give at least one of t1c, t1n, t2f, t2w")
        shape = np.asarray(next(iter(volumes.values()))).shape
        x4 = np.stack([np.asarray(volumes[mod], dtype=np.float32) if mod in volumes else np.zeros(shape, np.float32)
                       for mod in MODALITIES])
        m = self.manifest
        normalized = m.normalization.get("scheme") == "zscore"
        if normalized:
            x4 = zscore(x4, float(m.normalization.get("clip", 5.0)))
        if m.kind == "slice2d":
            available = [mod in volumes for mod in m.channels] if m.availability else None
            return segment_volume(x4, self._forward, m.context, m.multiple, self.batch_size, normalized=True,
                                  logits=False, available=available)
        brain = (x4 != 0).any(axis=0)
        box = brain_box(x4, m.multiple)
        probs = self._forward(crop(x4, box)[None])[0]
        classes = uncrop(probs.argmax(axis=0).astype(np.uint8), box, brain.shape)  # type: ignore[arg-type]
        classes[~brain] = 0
        return classes

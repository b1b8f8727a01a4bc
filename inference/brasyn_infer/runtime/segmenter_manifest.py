"""A tumor segmenter's manifest (``weights/<name>.json`` with ``"architecture": "segmenter"``), checked and
sha256-verified on load (docs/model-contract.md, "Segmenters").

- ``kind``: ``slice2d`` (axial 2.5D slices: ``x`` ``(B, C (2 context + 1), H, W)``, neighbour-major channels) or
  ``volume3d`` (the brain's box whole: ``x`` ``(1, C, X, Y, Z)``).
- ``channels``: the modality of each input channel (one block per neighbour slice for ``slice2d``), e.g.
  ``["t1c", "t1n", "t2f", "t2w"]`` (ours) or ``["t1n", "t1c", "t2w", "t2f"]`` (nnU-Net's usual BraTS order).
- ``normalization``: ``{"scheme": "zscore", "clip": 5}`` (each modality over its nonzero voxels) or
  ``{"scheme": "none"}`` (scanner units).
- ``multiple``: the box's sides are rounded up to this (the network's downsampling).
- ``availability``: ``true`` for a missing-sequence segmenter (``slice2d``): it takes any subset of the modalities,
  the missing ones' channels 0, and four more input channels, constant planes in ``channels``' order, 1 where the
  modality is present and 0 where it is missing. ``false`` (the default): all four modalities are needed.
- ``routes`` (a missing-sequence segmenter only): per pattern of missing sequences (``t1c``, ``t1c+t2f``; ``none``
  for a complete case), the route ``segment`` takes by default, ``direct`` (this segmenter) or ``complete``
  (synthesis, then the full segmenter; ``full`` for ``none``), with the held-out scores it was chosen on.
- ``output``: ``"logits"`` or ``"probabilities"`` ``(B, K, ...)``, and ``classes``: the class (0 background, 1 NCR,
  2 ED, 3 ET) of each of the K output channels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.runtime.manifest import MANIFEST_VERSION, check_sha256, weights_dirs

ARCHITECTURE = "segmenter"
KINDS = ("slice2d", "volume3d")
SCHEMES = ("zscore", "none")
OUTPUTS = ("logits", "probabilities")
DEFAULT_SEGMENTER = "segmenter"
#: the embedded missing-sequence segmenter
DEFAULT_DIRECT = "segmenter-any"
ROUTE_DIRECT, ROUTE_COMPLETE, ROUTE_FULL = "direct", "complete", "full"


class Route(str, Enum):
    """How ``segment`` takes a case that lacks sequences (``--route``)."""

    AUTO = "auto"  #: per pattern, the route the missing-sequence segmenter's manifest records
    DIRECT = ROUTE_DIRECT  #: the missing-sequence segmenter on what is there
    COMPLETE = ROUTE_COMPLETE  #: synthesis, then the full segmenter


#: the ``routes`` key of a complete case
NOTHING_MISSING = "none"


def routes_key(absent) -> str:
    """The ``routes`` key of a case lacking ``absent`` (MODALITIES order): ``t1c+t2f``, or ``none``."""
    present = set(absent)
    return "+".join(m.value for m in MODALITIES if m in present) or NOTHING_MISSING


@dataclass(frozen=True)
class SegmenterManifest:
    name: str
    kind: str
    channels: tuple[Modality, ...]
    normalization: dict[str, Any]
    multiple: int
    output: str
    classes: tuple[int, ...]
    onnx: str
    sha256: str
    path: Path
    context: int = 0
    availability: bool = False
    routes: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.path.parent / self.onnx

    @property
    def in_channels(self) -> int | None:
        """The graph's input channels this manifest implies (``slice2d``: 4 (2 context + 1), + 4 with
        ``availability``; ``volume3d``: 4)."""
        if self.kind == "volume3d":
            return len(MODALITIES)
        return len(MODALITIES) * (2 * self.context + 1) + (len(MODALITIES) if self.availability else 0)

    @property
    def order(self) -> list[int]:
        """The MODALITIES index of each of the four channels of one slice block (``channels``' order)."""
        return [m.index for m in self.channels]

    def to_json(self) -> dict[str, Any]:
        return {"format_version": MANIFEST_VERSION, "name": self.name, "architecture": ARCHITECTURE,
                "kind": self.kind, "context": self.context, "availability": self.availability,
                **({"routes": self.routes} if self.routes else {}), "channels": [m.value for m in self.channels],
                "normalization": self.normalization, "multiple": self.multiple, "output": self.output,
                "classes": list(self.classes), "onnx": self.onnx, "sha256": self.sha256, "config": self.config,
                "provenance": self.provenance, "training": self.training}

    def write(self) -> None:
        write_json_atomic(self.path, self.to_json())


def check_segmenter(m: SegmenterManifest) -> None:
    """WeightsError naming the manifest and the fix when a field is out of its range."""
    problems = []
    if m.kind not in KINDS:
        problems.append(f"kind {m.kind!r} is not one of {', '.join(KINDS)}")
    if sorted(c.index for c in m.channels) != list(range(len(MODALITIES))):
        problems.append("channels must name t1c, t1n, t2f and t2w once each")
    if m.normalization.get("scheme") not in SCHEMES:
        problems.append(f"normalization scheme must be one of {', '.join(SCHEMES)}")
    if m.output not in OUTPUTS:
        problems.append(f"output must be one of {', '.join(OUTPUTS)}")
    if not m.classes or any(c not in (0, 1, 2, 3) for c in m.classes):
        problems.append("classes: one class (0 background, 1 NCR, 2 ED, 3 ET) per output channel")
    if m.availability and m.kind != "slice2d":
        problems.append("availability needs kind slice2d")
    if m.routes and not m.availability:
        problems.append("routes belong to a missing-sequence segmenter (availability true)")
    for key, entry in m.routes.items():
        allowed = (ROUTE_FULL, ROUTE_DIRECT) if key == NOTHING_MISSING else (ROUTE_DIRECT, ROUTE_COMPLETE)
        if not isinstance(entry, dict) or entry.get("route") not in allowed:
            problems.append(f"routes[{key!r}].route must be one of {', '.join(allowed)}")
        elif key != NOTHING_MISSING and not _is_pattern(key):
            problems.append(f"routes key {key!r} is not a pattern of missing sequences (e.g. t1c+t2f, or none)")
    if m.multiple < 1 or m.context < 0 or (m.kind == "volume3d" and m.context):
        problems.append("multiple must be >= 1 and context >= 0 (0 for volume3d)")
    if problems:
        raise WeightsError("; ".join(problems), m.path, "fix the segmenter's manifest (docs/model-contract.md)")


def _is_pattern(key: str) -> bool:
    parts = key.split("+")
    names = [m.value for m in MODALITIES]
    return (0 < len(parts) < len(MODALITIES) and all(p in names for p in parts)
            and parts == sorted(parts, key=names.index) and len(set(parts)) == len(parts))


def resolve_segmenter_path(spec: str | Path | None) -> Path:
    """A ``.json`` path, or a NAME looked up in the weights folders (``None``: the embedded segmenter)."""
    spec = spec or DEFAULT_SEGMENTER
    candidate = Path(spec)
    paths = [candidate] if candidate.suffix == ".json" else [f / f"{spec}.json" for f in weights_dirs()]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise WeightsError(f"no segmenter {str(spec)!r} (looked for {', '.join(str(p) for p in paths)})", candidate,
                           "name a segmenter manifest (brasyn-infer import --kind segmenter), or restore weights/")
    return path


def load_segmenter_manifest(spec: str | Path | None = None, verify: bool = True) -> SegmenterManifest:
    """The manifest of ``spec`` (:func:`resolve_segmenter_path`), checked, its ONNX file's sha256 verified."""
    path = resolve_segmenter_path(spec)
    try:
        data = json.loads(path.read_text())
        if data.get("architecture") != ARCHITECTURE:
            raise WeightsError(f"not a segmenter manifest (architecture {data.get('architecture')!r})", path,
                               f"name a manifest with \"architecture\": \"{ARCHITECTURE}\"")
        manifest = SegmenterManifest(
            name=data["name"], kind=data["kind"], channels=tuple(Modality(c) for c in data["channels"]),
            normalization=dict(data["normalization"]), multiple=int(data["multiple"]), output=data["output"],
            classes=tuple(int(c) for c in data["classes"]), onnx=data["onnx"], sha256=data["sha256"], path=path,
            context=int(data.get("context", 0)), availability=bool(data.get("availability", False)),
            routes=dict(data.get("routes", {})), config=data.get("config", {}),
            provenance=data.get("provenance", {}), training=data.get("training", {}))
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"cannot read segmenter manifest ({error!r})", path,
                           "restore the file, or write it as docs/model-contract.md says") from error
    check_segmenter(manifest)
    if not manifest.onnx_path.is_file():
        raise WeightsError("the segmenter's ONNX file is missing", manifest.onnx_path, "restore it beside the manifest")
    if verify:
        check_sha256(manifest.onnx_path, manifest.sha256)
    return manifest

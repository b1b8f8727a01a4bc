"""A 3D Refiner's manifest (``weights/<name>.json`` with ``"architecture": "refiner3d"``): its window, overlap,
blending and ONNX file (sha256 verified on load). A generator's manifest names it in its ``refiner`` block."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brasyn_infer.errors import WeightsError
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.runtime.manifest import MANIFEST_VERSION, check_sha256, weights_dirs
from brasyn_infer.synthesis.windows import BlendMode

ARCHITECTURE = "refiner3d"


@dataclass(frozen=True)
class RefinerManifest:
    """A refiner's manifest; ``window`` is ``(X, Y, Z)`` voxels, each divisible by ``2 ** levels``."""

    name: str
    config: dict[str, Any]
    window: tuple[int, int, int]
    overlap: float
    blend: BlendMode
    onnx: str
    sha256: str
    path: Path
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx_path(self) -> Path:
        return self.path.parent / self.onnx

    def to_json(self) -> dict[str, Any]:
        return {"format_version": MANIFEST_VERSION, "name": self.name, "architecture": ARCHITECTURE,
                "config": self.config, "window": list(self.window), "overlap": self.overlap,
                "blend": self.blend.value, "onnx": self.onnx, "sha256": self.sha256,
                "provenance": self.provenance, "training": self.training}

    def write(self) -> None:
        """Write ``path`` atomically."""
        write_json_atomic(self.path, self.to_json())


def load_refiner_manifest(spec: str | Path, beside: Path | None = None) -> RefinerManifest:
    """A ``.json`` path, or a NAME looked up beside ``beside`` (the generator's folder), then in the weights folders."""
    candidate = Path(spec)
    folders = ([beside] if beside else []) + weights_dirs()
    paths = [candidate] if candidate.suffix == ".json" else [f / f"{spec}.json" for f in folders]
    path = next((p for p in paths if p.is_file()), None)
    if path is None:
        raise WeightsError(f"no refiner weights {str(spec)!r} (looked for {', '.join(str(p) for p in paths)})",
                           candidate, "restore the refiner's files, or run with --no-refine")
    try:
        data = json.loads(path.read_text())
        if data.get("architecture") != ARCHITECTURE:
            raise WeightsError(f"not a refiner manifest (architecture {data.get('architecture')!r})", path,
                               f"name a manifest with \"architecture\": \"{ARCHITECTURE}\"")
        manifest = RefinerManifest(
            name=data["name"], config=data["config"], window=tuple(int(n) for n in data["window"]),  # type: ignore[arg-type]
            overlap=float(data["overlap"]), blend=BlendMode(data["blend"]), onnx=data["onnx"], sha256=data["sha256"],
            path=path, provenance=data.get("provenance", {}), training=data.get("training", {}))
    except WeightsError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsError(f"cannot read refiner manifest ({error!r})", path, "restore the file from the repository") from error
    if len(manifest.window) != 3 or not 0 <= manifest.overlap < 1:
        raise WeightsError("refiner window must be 3 sizes and overlap in [0, 1)", path, "fix the manifest")
    if not manifest.onnx_path.is_file():
        raise WeightsError("the refiner's ONNX file is missing", manifest.onnx_path, "restore it beside the manifest")
    check_sha256(manifest.onnx_path, manifest.sha256)
    return manifest

"""The optional 3D Refiner stage (paper 001, spec section 6): sliding windows over the brain.

The refiner sees four channels, each z-scored over its own nonzero voxels (background 0): the
generator's synthesized volume in the missing modality's channel and the three real inputs in
theirs. It predicts the refined synthesized volume in the same z units (a residual on its input,
inside the graph); :func:`refine_volume` maps it back with the synthesized volume's mean and std.
Windows cover the brain's bounding box only (plus a margin): the background is zero anyway.

Its weights have their own manifest (``weights/<name>.json``, ``"architecture": "refiner3d"``)
with the window, overlap and blending it was validated with; a generator's manifest names it in
``"refiner": {"weights": NAME, "enabled": BOOL}``, ``enabled`` being the default of ``--refine``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from brasyn_infer.constants import Device, Modality
from brasyn_infer.errors import WeightsError
from brasyn_infer.runtime.manifest import MANIFEST_VERSION, sha256_of, weights_dirs, write_json_atomic
from brasyn_infer.synthesis.windows import BlendMode, brain_box, count_windows, sliding_window

log = logging.getLogger(__name__)

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
    actual = sha256_of(manifest.onnx_path)
    if actual != manifest.sha256:
        raise WeightsError(f"sha256 mismatch (manifest {manifest.sha256[:12]}..., file {actual[:12]}...)",
                           manifest.onnx_path, "the file is corrupt or was replaced: restore it, or re-export")
    return manifest


def zscore_nonzero(volume: np.ndarray, region: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """``(X, Y, Z)`` -> z-scores with the mean and std (>= 1e-6) of the voxels > 0, and those two.

    The z-scores are written where ``region`` is True (default: the voxels > 0) and 0 elsewhere; the
    synthesized volume passes its brain mask, so a brain voxel the generator made 0 keeps its value.
    """
    foreground = volume > 0
    values = volume[foreground].astype(np.float64)
    mean = float(values.mean()) if values.size else 0.0
    std = max(float(values.std()) if values.size else 1.0, 1e-6)
    region = foreground if region is None else region
    z = np.zeros(volume.shape, dtype=np.float32)
    z[region] = (volume[region] - mean) / std
    return z, mean, std


def refiner_input(inputs: Mapping[Modality, np.ndarray], synthesized: np.ndarray, background: np.ndarray,
                  missing: Modality) -> tuple[np.ndarray, float, float]:
    """The ``(4, X, Y, Z)`` float32 refiner input and the synthesized volume's (mean, std).

    ``background`` ``(X, Y, Z)`` bool is the pipeline's background mask (the synthesized volume is 0 there).
    """
    x4 = np.zeros((4, *synthesized.shape), dtype=np.float32)
    for mod, volume in inputs.items():
        if mod is not missing:
            x4[mod.index] = zscore_nonzero(volume)[0]
    x4[missing.index], mean, std = zscore_nonzero(synthesized, ~background)
    return x4, mean, std


RefinerModel = Callable[[np.ndarray, np.ndarray], np.ndarray]


def refine_volume(
    model: RefinerModel,
    inputs: Mapping[Modality, np.ndarray],
    synthesized: np.ndarray,
    background: np.ndarray,
    missing: Modality,
    window: tuple[int, int, int],
    overlap: float,
    blend: BlendMode,
    on_window: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Refine ``synthesized`` ``(X, Y, Z)`` (scanner units) -> ``(X, Y, Z)`` float32, >= 0, ``background`` 0.

    ``model`` maps ``(B, 4, *window)`` and ``missing`` ``(B,)`` to ``(B, 1, *window)`` z units.
    """
    x4, mean, std = refiner_input(inputs, synthesized, background, missing)
    box = brain_box(~background)
    crop = x4[(slice(None), *box)]

    def predict(batch: np.ndarray) -> np.ndarray:
        return model(batch, np.full(len(batch), missing.index, dtype=np.float32))

    z = sliding_window(crop, predict, window, overlap, blend, batch_size=1, pad_value=0.0, on_batch=on_window)[0]
    refined = np.array(synthesized, dtype=np.float32, copy=True)
    refined[box] = z * np.float32(std) + np.float32(mean)
    np.maximum(refined, 0, out=refined)
    refined[background] = 0
    return refined


def window_count(background: np.ndarray, window: tuple[int, int, int], overlap: float) -> int:
    """How many windows :func:`refine_volume` runs on a volume (the progress total)."""
    return count_windows(brain_box(~background), window, overlap)


class Refiner:
    """A refiner's manifest and ONNX session, ready to refine volumes."""

    def __init__(self, spec: str | Path, beside: Path | None = None, device: Device = Device.AUTO,
                 threads: int | None = None) -> None:
        from brasyn_infer.runtime.sessions import RefinerSession

        self.manifest = load_refiner_manifest(spec, beside)
        self.session = RefinerSession(self.manifest.onnx_path, self.manifest.window, device, threads)

    def __call__(self, inputs: Mapping[Modality, np.ndarray], synthesized: np.ndarray, background: np.ndarray,
                 missing: Modality, on_window: Callable[[int], None] | None = None) -> np.ndarray:
        m = self.manifest
        return refine_volume(self.session, inputs, synthesized, background, missing, m.window, m.overlap, m.blend,
                             on_window)

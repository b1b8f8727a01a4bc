"""The weights' manifest (``weights/<name>.json``): what the model is and how to feed it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brasyn_infer.constants import DEFAULT_WEIGHTS, DEFAULT_WEIGHTS_ENV, MODALITIES, WEIGHTS_ENV, View
from brasyn_infer.errors import WeightsError
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.synthesis.enhance import Enhancement
from brasyn_infer.synthesis.stand_in import check_copy_blend

MANIFEST_VERSION = 1
#: The two kinds of generator graph (docs/model-contract.md).
SLICE2D, WINDOW3D = "slice2d", "window3d"
KINDS = (SLICE2D, WINDOW3D)
#: the optional second output of a generator graph: the log of its error's Laplace scale, normalized units
LOG_SCALE = "log_scale"
#: window3d placements: windows over the brain's bounding box, or over a fixed crop around the volume's center.
PLACEMENTS = ("brain", "center")
#: The weights bundled with the repository (and copied into the Docker image).
#: (inference/brasyn_infer/runtime/manifest.py -> the repository root; the image sets $BRASYN_WEIGHTS_DIR instead)
BUNDLED_WEIGHTS_DIR = Path(__file__).resolve().parents[3] / "weights"


PATTERNS_ONE = "one"
PATTERNS_ANY = "any"
PATTERNS = (PATTERNS_ONE, PATTERNS_ANY)


@dataclass(frozen=True)
class Manifest:
    """A generator's manifest. ``path`` is the JSON file; ``onnx_path`` the graph beside it."""

    name: str
    architecture: str
    config: dict[str, Any]
    normalization: dict[str, Any]
    default_view: View
    onnx: str
    sha256: str
    path: Path
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    views: tuple[View, ...] = ()  #: views generated and averaged by default; () means (default_view,)
    refiner: dict[str, Any] = field(default_factory=dict)  #: {"weights": NAME, "enabled": bool} or {}
    #: the ONNX contract (docs/model-contract.md): ``slice2d`` (2D slices, e.g. HFGAN) or ``window3d``
    kind: str = SLICE2D
    #: window3d only: {"window": [X, Y, Z], "overlap", "blend", "placement": "brain"|"center", "crop": [X, Y, Z]}
    windows: dict[str, Any] = field(default_factory=dict)
    #: the graph's inputs (``x`` and any of ``mask``, ``missing``, ``view``); () for HFGAN exports: all four
    inputs: tuple[str, ...] = ()
    #: the linear prior blend and the uncertainty model (``brasyn_infer.synthesis.trust``); {} when not fitted
    trust: dict[str, Any] = field(default_factory=dict)
    #: the graph's outputs, ``("y", "log_scale")`` when it gives its own uncertainty; () for ``("y",)``
    outputs: tuple[str, ...] = ()
    #: how the ``log_scale`` output becomes the uncertainty map (``synthesis.uncertainty``); {} for the plain scale
    uncertainty: dict[str, Any] = field(default_factory=dict)
    #: per missing modality, the tone curve the output is taken through (``synthesis.tone``); {} for none
    tone: dict[str, Any] = field(default_factory=dict)
    #: the optional enhancement stage of a synthesized t1c (``synthesis.enhance``); {} for none
    enhance: dict[str, Any] = field(default_factory=dict)
    #: which cases the generator completes: ``one`` (exactly one modality missing, the BraSyn contract) or ``any``
    #: (one to three missing: the graph's ``mask`` marks every absent channel; docs/model-contract.md)
    patterns: str = PATTERNS_ONE
    #: weights NAME (beside this manifest or in the weights folders) or manifest path that completes the patterns
    #: this one does not (``patterns: any``); None: those cases are refused
    companion: str | None = None
    #: modalities that, when they are the one missing, the companion synthesizes instead of these weights (where it
    #: draws them better on held-out cases, e.g. ``("t1c",)`` for a companion trained to draw the tumor); () for none
    companion_targets: tuple[str, ...] = ()
    #: ``patterns: any`` only: per pattern of missing modalities and synthesized one, the weight of the blend toward
    #: its stand-in (``synthesis.stand_in``), e.g. ``{"t1c+t2w": {"t1c": 0.4}}``; {} for none
    copy_blend: dict[str, Any] = field(default_factory=dict)

    @property
    def supported(self) -> str:
        """In words, for errors: which missing patterns these weights complete."""
        own = "exactly one modality missing" if self.patterns == PATTERNS_ONE else "one to three modalities missing"
        return own + (f" (other patterns: {self.companion})" if self.companion else "")

    def companion_completes(self, absent: Sequence[str]) -> bool:
        """Does the companion complete a case lacking ``absent`` (Modality members or their values)? Every pattern of
        several missing for weights of one missing, and a single missing modality named in ``companion_targets``."""
        if not self.companion:
            return False
        return (len(absent) > 1 and self.patterns != PATTERNS_ANY) or (
            len(absent) == 1 and absent[0] in self.companion_targets)

    @property
    def has_log_scale(self) -> bool:
        """Does the graph give its own uncertainty (a second output ``log_scale``)?"""
        return LOG_SCALE in self.outputs

    @property
    def onnx_path(self) -> Path:
        return self.path.parent / self.onnx

    @property
    def default_views(self) -> tuple[View, ...]:
        return self.views or (self.default_view,)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": MANIFEST_VERSION,
            "name": self.name,
            "architecture": self.architecture,
            "config": self.config,
            "normalization": self.normalization,
            "default_view": self.default_view.value,
            "onnx": self.onnx,
            "sha256": self.sha256,
            "provenance": self.provenance,
            "training": self.training,
            **({"views": [v.value for v in self.views]} if self.views else {}),
            **({"refiner": self.refiner} if self.refiner else {}),
            **({"kind": self.kind} if self.kind != SLICE2D else {}),
            **({"windows": self.windows} if self.windows else {}),
            **({"inputs": list(self.inputs)} if self.inputs else {}),
            **({"trust": self.trust} if self.trust else {}),
            **({"outputs": list(self.outputs)} if self.outputs else {}),
            **({"uncertainty": self.uncertainty} if self.uncertainty else {}),
            **({"tone": self.tone} if self.tone else {}),
            **({"enhance": self.enhance} if self.enhance else {}),
            **({"patterns": self.patterns} if self.patterns != PATTERNS_ONE else {}),
            **({"companion": self.companion} if self.companion else {}),
            **({"companion_targets": list(self.companion_targets)} if self.companion_targets else {}),
            **({"copy_blend": self.copy_blend} if self.copy_blend else {}),
        }

    @property
    def window(self) -> tuple[int, int, int]:
        """window3d: the model's window ``(X, Y, Z)`` in voxels."""
        return tuple(int(n) for n in self.windows["window"])  # type: ignore[return-value]

    @property
    def window_plan(self) -> dict[str, Any]:
        """window3d: how windows are placed and blended, with the defaults filled in
        (``overlap`` 0.5, ``blend`` gaussian, ``placement`` brain, ``crop`` None)."""
        crop = self.windows.get("crop")
        return {"overlap": float(self.windows.get("overlap", 0.5)), "blend": self.windows.get("blend", "gaussian"),
                "placement": self.windows.get("placement", "brain"), "crop": tuple(crop) if crop else None}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def weights_dirs() -> list[Path]:
    """Folders searched for a weights NAME: ``$BRASYN_WEIGHTS_DIR`` first, then the bundled folder."""
    dirs = []
    if os.environ.get(WEIGHTS_ENV):
        dirs.append(Path(os.environ[WEIGHTS_ENV]))
    dirs.append(BUNDLED_WEIGHTS_DIR)
    return dirs


def resolve_manifest_path(spec: str | Path | None) -> Path:
    """NAME (searched in :func:`weights_dirs`), a ``.json`` path, or a folder holding ``default.json``."""
    spec = str(spec) if spec else os.environ.get(DEFAULT_WEIGHTS_ENV) or DEFAULT_WEIGHTS
    candidate = Path(spec)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    if candidate.is_dir():
        manifests = sorted(candidate.glob("*.json"))
        preferred = candidate / f"{DEFAULT_WEIGHTS}.json"
        if preferred.is_file():
            return preferred
        if len(manifests) == 1:
            return manifests[0]
        raise WeightsError(
            f"folder holds {len(manifests)} manifests", candidate, "name one .json file with --weights"
        )
    for folder in weights_dirs():
        path = folder / f"{spec}.json"
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in weights_dirs())
    raise WeightsError(
        f"no weights named {spec!r} (searched {searched})",
        candidate,
        "pass --weights NAME of a weights/<NAME>.json, or a path to a manifest",
    )


def companion_path(manifest: Manifest) -> str | Path | None:
    """Where the companion a manifest names lives: ``<NAME>.json`` beside the manifest, else the NAME or path as
    given (resolved by :func:`resolve_manifest_path`); None when it names none."""
    if not manifest.companion:
        return None
    beside = manifest.path.parent / f"{manifest.companion}.json"
    return beside if beside.is_file() else manifest.companion


def companion_sha256(manifest: Manifest) -> str | None:
    """The sha256 of the companion's graph, as its manifest records it (None: no companion, or it cannot be read;
    the run that needs it says why)."""
    if not manifest.companion:
        return None
    try:
        return load_manifest(companion_path(manifest)).sha256
    except WeightsError:
        return None


def load_manifest(spec: str | Path | None = None) -> Manifest:
    """Read and check a manifest; the ONNX file's presence is checked, its hash by :func:`verify`."""
    path = resolve_manifest_path(spec)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"cannot read manifest ({error})", path, "restore the file from the repository") from error
    if data.get("architecture") == "refiner3d":
        raise WeightsError("this is a refiner's manifest, not a generator's", path,
                           "pass it with --refiner, and a generator with --weights")
    if data.get("architecture") == "segmenter":
        raise WeightsError("this is a segmenter's manifest, not a generator's", path,
                           "pass it with --segmenter (brasyn-infer segment, evaluate --segment)")
    missing = [k for k in ("name", "architecture", "config", "normalization", "default_view", "onnx", "sha256") if k not in data]
    if missing:
        raise WeightsError(f"manifest lacks {', '.join(missing)}", path, "re-export the weights with brasyn-infer export")
    if data.get("format_version", MANIFEST_VERSION) > MANIFEST_VERSION:
        raise WeightsError("manifest is newer than this program", path, "upgrade brasyn-infer")
    try:
        view = View(data["default_view"])
    except ValueError as error:
        raise WeightsError(f"unknown default_view {data['default_view']!r}", path, "use axial, sagittal or coronal") from error
    try:
        views = tuple(View(v) for v in data.get("views", []))
    except ValueError as error:
        raise WeightsError(f"unknown view in views {data['views']!r}", path, "use axial, sagittal or coronal") from error
    kind = data.get("kind", SLICE2D)
    if kind not in KINDS:
        raise WeightsError(f"unknown kind {kind!r}", path, f"use one of {', '.join(KINDS)}")
    windows = data.get("windows", {})
    if kind == WINDOW3D:
        window = windows.get("window")
        if not (isinstance(window, list) and len(window) == 3 and all(isinstance(n, int) and n > 0 for n in window)):
            raise WeightsError("a window3d manifest needs windows.window: [X, Y, Z] voxels", path,
                               "re-import the model with brasyn-infer import --window X Y Z")
        if windows.get("placement", "brain") not in PLACEMENTS:
            raise WeightsError(f"unknown placement {windows.get('placement')!r}", path, f"use {' or '.join(PLACEMENTS)}")
    refiner = data.get("refiner", {})
    if refiner and not isinstance(refiner.get("weights"), str):
        raise WeightsError("the refiner block lacks its weights name", path, 'write "refiner": {"weights": NAME, "enabled": false}')
    manifest = Manifest(
        views=views,
        refiner=refiner,
        name=data["name"],
        architecture=data["architecture"],
        config=data["config"],
        normalization=data["normalization"],
        default_view=view,
        onnx=data["onnx"],
        sha256=data["sha256"],
        path=path,
        provenance=data.get("provenance", {}),
        training=data.get("training", {}),
        kind=kind,
        windows=windows,
        inputs=tuple(data.get("inputs", ())),
        trust=data.get("trust", {}),
        outputs=tuple(data.get("outputs", ())),
        uncertainty=data.get("uncertainty", {}),
        tone=data.get("tone", {}),
        enhance=data.get("enhance", {}),
        patterns=data.get("patterns", PATTERNS_ONE),
        companion=data.get("companion"),
        companion_targets=tuple(data.get("companion_targets", ())),
        copy_blend=data.get("copy_blend", {}),
    )
    Enhancement.from_manifest(manifest.enhance, path)  # refuses a malformed block when the weights load
    if manifest.patterns not in PATTERNS:
        raise WeightsError(f"unknown patterns {manifest.patterns!r}", path, f"use one of {', '.join(PATTERNS)}")
    if manifest.companion_targets:
        unknown = sorted(set(manifest.companion_targets) - {m.value for m in MODALITIES})
        if unknown or not manifest.companion:
            raise WeightsError(f"companion_targets {list(manifest.companion_targets)}: "
                               + (f"unknown modality {', '.join(unknown)}" if unknown else "no companion named"),
                               path, "list modalities (t1n, t1c, t2w, t2f) and name the companion, or remove the list")
    if manifest.copy_blend:
        problem = check_copy_blend(manifest.copy_blend)
        if problem:
            raise WeightsError(problem, path, "fix the block, or refit it with training/fit_copy_blend.py")
        if manifest.patterns != PATTERNS_ANY:
            raise WeightsError("copy_blend applies to weights for any pattern (\"patterns\": \"any\") only", path,
                               "remove the block, or set \"patterns\": \"any\"")
    if not manifest.onnx_path.is_file():
        raise WeightsError("the manifest's ONNX file is missing", manifest.onnx_path, "restore it beside the manifest")
    return manifest


def check_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose sha256 differs from the one its manifest records."""
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(f"sha256 mismatch (manifest {expected[:12]}..., file {actual[:12]}...)", path,
                           "the file is corrupt or was replaced: restore it, or re-export the weights")


def verify(manifest: Manifest) -> None:
    """Refuse an ONNX file whose sha256 differs from the manifest's."""
    check_sha256(manifest.onnx_path, manifest.sha256)


def write_manifest(manifest: Manifest) -> None:
    """Write ``manifest.path`` atomically."""
    write_json_atomic(manifest.path, manifest.to_json())

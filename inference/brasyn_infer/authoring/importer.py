"""``brasyn-infer import``: a participant's ONNX generator, checked against the contract, run once, given a manifest.

The graph is checked (:mod:`brasyn_infer.authoring.contract`), copied beside its manifest, and run once through the
real pipeline (:class:`~brasyn_infer.pipeline.synthesizer.Synthesizer`) on a small synthetic case on the CPU; only when
that run gives a finite volume of the right shape do the files stay.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from brasyn_infer.authoring.contract import ContractError, check_graph, read_graph
from brasyn_infer.constants import MODALITIES, Device, Modality, View
from brasyn_infer.io.atomic import atomic_path
from brasyn_infer.runtime.manifest import SLICE2D, WINDOW3D, Manifest, sha256_of, write_manifest

#: the synthetic smoke-test case: an ellipsoid "brain" on this grid (X, Y, Z)
SMOKE_SHAPE = (48, 56, 40)


def synthetic_case(shape: tuple[int, int, int] = SMOKE_SHAPE) -> dict[Modality, np.ndarray]:
    """Four smooth, positive ellipsoid volumes, background 0 (no real data needed)."""
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    inside = (grid**2).sum(0) < 0.7
    out = {}
    for i, mod in enumerate(MODALITIES):
        texture = 0.6 + 0.3 * np.sin((3 + i) * grid[0]) * np.cos((2 + i) * grid[1])
        out[mod] = np.where(inside, texture * (800 + 200 * i), 0).astype(np.float32)
    return out


def import_model(
    onnx_path: Path,
    kind: str,
    out_dir: Path,
    name: str,
    normalization: Mapping[str, Any],
    window: tuple[int, int, int] | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    placement: str = "brain",
    crop: tuple[int, int, int] | None = None,
    default_view: View = View.AXIAL,
    views: tuple[View, ...] = (),
    provenance: Mapping[str, Any] | None = None,
    force: bool = False,
) -> tuple[Manifest, float]:
    """Check, copy, describe and smoke-run ``onnx_path``; returns the manifest and the smoke run's seconds."""
    from brasyn_infer.pipeline.synthesizer import Synthesizer
    from brasyn_infer.synthesis.normalize import Normalizer

    if not onnx_path.is_file():
        raise ContractError("no such file", onnx_path, "pass the .onnx file your export wrote")
    Normalizer.from_manifest(normalization)  # a bad normalization block fails before anything is written
    inputs, outputs = read_graph(onnx_path)
    spec = check_graph(inputs, outputs, kind, window, onnx_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    target_onnx, target_json = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    if not force and (target_json.exists() or (target_onnx.exists() and target_onnx.resolve() != onnx_path.resolve())):
        raise ContractError(f"weights named {name!r} are already there ({target_json.name} or {target_onnx.name})",
                            out_dir, "choose another --name or --out, or pass --force to overwrite them")
    windows: dict[str, Any] = {}
    if kind == WINDOW3D:
        windows = {"window": list(spec.window), "overlap": overlap, "blend": blend, "placement": placement}
        if crop:
            windows["crop"] = list(crop)
    config: dict[str, Any] = {"imported_from": onnx_path.name}
    if spec.fixed_batch == 1:
        config["max_batch"] = 1
    # The graph may already be where it goes (``import weights/mine.onnx --out weights --name mine``): then it is
    # the user's own file, never copied over and never removed. Only what this command creates is cleaned up.
    in_place = target_onnx.exists() and target_onnx.resolve() == onnx_path.resolve()
    if not in_place:
        with atomic_path(target_onnx) as tmp:
            shutil.copyfile(onnx_path, tmp)
    manifest = Manifest(
        name=name, architecture="imported", config=config, normalization=dict(normalization),
        default_view=default_view, onnx=target_onnx.name, sha256=sha256_of(target_onnx), path=target_json,
        provenance={"imported_by": "brasyn-infer import", **(provenance or {})},
        views=views if kind == SLICE2D else (), kind=kind, windows=windows, inputs=spec.inputs,
        outputs=spec.outputs if len(spec.outputs) > 1 else (),
    )
    write_manifest(manifest)
    started = time.perf_counter()
    try:
        synth = Synthesizer(target_json, device=Device.CPU, uncertainty=manifest.has_log_scale)
        volumes = synthetic_case()
        stages = synth.synthesize_stages({m: v for m, v in volumes.items() if m is not Modality.T2F}, Modality.T2F)
        for stage in ("generator", "uncertainty"):  # the map too, when the graph makes one
            y = stages.get(stage)
            if stage == "generator" or y is not None:
                if y is None or y.shape != SMOKE_SHAPE or not np.isfinite(y).all():
                    raise ContractError(f"the model's {'map' if stage == 'uncertainty' else 'volume'} has shape "
                                        f"{None if y is None else y.shape} or non-finite values on a synthetic case",
                                        onnx_path, "check the exported graph's outputs")
    except Exception as error:
        target_json.unlink(missing_ok=True)  # refused above when it existed: this command wrote it
        if not in_place:
            target_onnx.unlink(missing_ok=True)
        if isinstance(error, ContractError):
            raise
        raise ContractError(f"running it through the pipeline on a synthetic case failed "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:300] if str(error) else ''})",
                            onnx_path, "check that the graph runs on the shapes of the contract") from None
    return manifest, time.perf_counter() - started

"""``brasyn-infer import --kind segmenter``: a third-party ONNX tumor segmenter (e.g. an nnU-Net exported to ONNX),
checked, copied beside a manifest that says its channel order, normalization and label map, and run once on a
synthetic case through the product's own segmentation path (:class:`~brasyn_infer.runtime.segmenter.Segmenter`);
only when that run gives a class map of the right shape do the files stay.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from brasyn_infer.authoring.contract import ContractError, read_graph
from brasyn_infer.authoring.importer import SMOKE_SHAPE, synthetic_case
from brasyn_infer.constants import Device, Modality
from brasyn_infer.io.atomic import atomic_path
from brasyn_infer.runtime.manifest import sha256_of
from brasyn_infer.runtime.segmenter_manifest import SegmenterManifest, check_segmenter


def import_segmenter(onnx_path: Path, out_dir: Path, name: str, kind: str, channels: Sequence[Modality],
                     normalization: Mapping[str, Any], classes: Sequence[int], output: str = "logits",
                     context: int = 0, multiple: int = 16,
                     provenance: Mapping[str, Any] | None = None,
                     force: bool = False) -> tuple[SegmenterManifest, float]:
    """Check, copy, describe and smoke-run a segmenter graph; returns its manifest and the smoke run's seconds."""
    from brasyn_infer.runtime.segmenter import Segmenter

    if not onnx_path.is_file():
        raise ContractError("no such file", onnx_path, "pass the .onnx file your export wrote")
    inputs, outputs = read_graph(onnx_path)
    rank = 4 if kind == "slice2d" else 5
    if len(inputs) != 1 or len(inputs[0].shape) != rank:
        raise ContractError(f"a {kind} segmenter takes one input of rank {rank}; this graph takes "
                            f"{[(i.name, i.shape) for i in inputs]}", onnx_path,
                            "export the network with one input x (B, C, H, W) or (B, C, X, Y, Z)")
    expected = len(channels) * (2 * context + 1)
    if inputs[0].shape[1] not in (None, expected):
        raise ContractError(f"the input has {inputs[0].shape[1]} channels; --channels and --context give {expected}",
                            onnx_path, "name the graph's channels in order with --channels (and --context for 2.5D)")
    if not outputs or len(outputs[0].shape) != rank or outputs[0].shape[1] not in (None, len(classes)):
        raise ContractError(f"the first output is {outputs[0].shape if outputs else None}; expected (B, "
                            f"{len(classes)}, ...) for {len(classes)} --classes", onnx_path,
                            "give --classes one class per output channel (0 background, 1 NCR, 2 ED, 3 ET)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target_onnx, target_json = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    if not force and (target_json.exists() or (target_onnx.exists() and target_onnx.resolve() != onnx_path.resolve())):
        raise ContractError(f"weights named {name!r} are already there ({target_json.name} or {target_onnx.name})",
                            out_dir, "choose another --name or --out, or pass --force to overwrite them")
    manifest = SegmenterManifest(
        name=name, kind=kind, channels=tuple(channels), normalization=dict(normalization), multiple=multiple,
        output=output, classes=tuple(classes), onnx=target_onnx.name, sha256="", path=target_json, context=context,
        config={"imported_from": onnx_path.name}, provenance={"imported_by": "brasyn-infer import", **(provenance or {})})
    check_segmenter(manifest)
    in_place = target_onnx.exists()
    if not in_place:
        with atomic_path(target_onnx) as tmp:
            shutil.copyfile(onnx_path, tmp)
    manifest = SegmenterManifest(**{**manifest.__dict__, "sha256": sha256_of(target_onnx)})
    manifest.write()
    started = time.perf_counter()
    try:
        classes_map = Segmenter(target_json, Device.CPU).segment(synthetic_case())
        if classes_map.shape != SMOKE_SHAPE or classes_map.max() > 3:
            raise ContractError(f"the segmenter's map has shape {classes_map.shape} on a synthetic case of "
                                f"{SMOKE_SHAPE}", onnx_path, "check the graph's output and --classes")
    except Exception as error:
        target_json.unlink(missing_ok=True)
        if not in_place:
            target_onnx.unlink(missing_ok=True)
        if isinstance(error, ContractError):
            raise
        raise ContractError(f"running it on a synthetic case failed ({type(error).__name__}: "
                            f"{str(error).splitlines()[0][:300] if str(error) else ''})", onnx_path,
                            "check --kind, --multiple and that the graph takes dynamic spatial sizes") from None
    return manifest, time.perf_counter() - started


def parse_channels(text: str) -> list[Modality]:
    """``t1n,t1c,t2w,t2f`` -> modalities; each of the four once."""
    try:
        mods = [Modality(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError as error:
        raise ContractError(f"--channels {text!r}: {error}", None, "name t1c, t1n, t2f, t2w, comma-separated") from None
    if sorted(m.index for m in mods) != [0, 1, 2, 3]:
        raise ContractError(f"--channels {text!r} must name t1c, t1n, t2f and t2w once each", None,
                            "e.g. --channels t1n,t1c,t2w,t2f (nnU-Net's BraTS order)")
    return mods


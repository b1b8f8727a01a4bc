"""What produced a dry run's scores (``REPORT_DIR/run.json``): a rerun or a shard with anything else is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from brasyn_infer.errors import UsageError
from brasyn_infer.io.atomic import write_json_atomic
from brasyn_infer.pipeline.synthesizer import Synthesizer
from brasyn_infer.runtime.manifest import Manifest, companion_path, load_manifest

RUN_FORMAT = "brasyn-infer.dry-run/3"


def run_identity(synth: Synthesizer, options: Any, data_cases: list[str] | None = None,
                 segmenter: dict | None = None) -> dict:
    """Everything that changes a score or what the folder holds: the weights (the graph, and the manifest's blocks
    that act on its output), the companion where it completes a dropped pattern (several missing, or a modality of
    ``companion_targets``: its graph and blocks),
    views, TTA, the prior blend, the tone, the refiner, the enhancement stage, the map, the linear baseline's
    fitting cases, DATA's cases (the leave-one-case-out fits depend on them), the number of shards, the segmenter,
    the organizers' SSIM variant and where the volumes are kept. (Batch size, device and threads change nothing
    but float rounding.)"""
    refiner = synth.refiner.manifest if synth.refiner else None
    manifest = synth.manifest
    companion = None
    if any(manifest.companion_completes(p) for p in getattr(options, "drops", ())):
        other = load_manifest(companion_path(manifest))
        companion = {"name": other.name, "sha256": other.sha256, "manifest": _blocks(other)}
    shard = getattr(options, "shard", None)
    save = getattr(options, "save_volumes", None)
    return {"format": RUN_FORMAT,
            "weights": {"name": manifest.name, "sha256": manifest.sha256, "manifest": _blocks(manifest)},
            "companion": companion,
            "normalization": synth.manifest.normalization.get("scheme"),
            "views": [v.value for v in synth.views], "tta": synth.tta, "prior": synth.prior,
            **({"tone": bool(synth.tone.curves)} if manifest.tone else {}),
            "refiner": {"name": refiner.name, "sha256": refiner.sha256} if refiner else None,
            **({"enhance": synth.enhancer.describe()} if synth.enhancer else {}),
            "uncertainty": bool(synth.uncertainty),
            "fit_on": sorted(options.fit_on) if options.fit_on is not None else None,
            "data_cases": sorted(data_cases) if data_cases is not None else None,
            "shards": shard.count if shard is not None else None,
            "segmenter": segmenter,
            "ssim_border": getattr(options, "ssim_border", "full"),
            "save_volumes": str(Path(save).resolve()) if save is not None else None}


def _blocks(manifest: Manifest) -> str:
    """A fingerprint of the manifest's blocks that act on the graph's output or choose what runs: normalization,
    trust, uncertainty, outputs, tone, the patterns it completes, its companion (and the single missing modalities it
    hands to it) and its blend toward the stand-in."""
    blocks = json.dumps({"normalization": manifest.normalization, "trust": manifest.trust,
                         "uncertainty": manifest.uncertainty, "outputs": list(manifest.outputs),
                         **({"tone": manifest.tone} if manifest.tone else {}),
                         "patterns": manifest.patterns, "companion": manifest.companion,
                         **({"companion_targets": list(manifest.companion_targets)}
                            if manifest.companion_targets else {}),
                         "copy_blend": manifest.copy_blend}, sort_keys=True)
    return hashlib.sha256(blocks.encode()).hexdigest()[:16]


def claim_report_dir(report_dir: Path, identity: dict) -> None:
    """Record ``identity`` in ``REPORT_DIR/run.json``, or refuse a folder that holds another run's scores."""
    path = report_dir / "run.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        if old != identity:
            changed = sorted(k for k in set(old) | set(identity) if old.get(k) != identity.get(k))
            detail = "; ".join(f"{k}: {_show(old.get(k))} there, {_show(identity.get(k))} now" for k in changed)
            raise UsageError(f"holds the scores of another run ({detail})", report_dir,
                             "pass another REPORT_DIR, or the same weights, options, DATA and shard count to resume")
        return
    if (report_dir / "cases.csv").is_file() or any(report_dir.glob("cases.shard-*.csv")):
        raise UsageError("holds scores without a run.json (from an older brasyn-infer): their run is unknown",
                         report_dir, "pass another REPORT_DIR")
    write_json_atomic(path, identity)


def _show(value) -> str:
    if isinstance(value, dict) and "sha256" in value:
        return f"{value.get('name')} ({str(value['sha256'])[:12]})"
    if isinstance(value, list) and len(value) > 6:
        return f"{len(value)} items"
    return json.dumps(value)

"""Export a checkpoint written by ``training.train`` (a generator) or ``training.train_segmenter`` (a segmenter,
told by its metadata) to ONNX with its manifest.

    python -m training.export_checkpoint runs/train/final/default.safetensors --out weights --name default \\
        --refiner default-refiner --uncertainty-from runs/train/val/val.json [--blend t1c=0.6]
    python -m training.export_checkpoint runs/seg/final/segmenter.safetensors --out weights --name segmenter

A segmenter's manifest keeps the checkpoint's context, availability planes and training record; the generator's
options below do not apply to it.

The checkpoint carries the config, normalization, views and training record; the export checks ONNX Runtime
against torch before writing anything (``brasyn_infer.authoring.models.export``). ``--uncertainty-from`` copies the
``uncertainty`` block that ``training.validate`` fitted on the validation model's held-out cases; ``--blend
MODALITY=ALPHA`` (repeatable) blends that modality's output with the linear prior in the graph, ``prior + ALPHA *
(generated - prior)``, with the alpha ``training.studies.posthoc_study`` chose on the same cases.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brasyn_infer.constants import Modality, View

from .train import add_refiner_options, export_checkpoint, refiner_block


def is_segmenter(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` was written by ``training.train_segmenter`` (its metadata's architecture)."""
    from safetensors import safe_open

    with safe_open(str(checkpoint), "pt") as f:
        return (f.metadata() or {}).get("architecture") == "unet2d-seg"


def export_segmenter_checkpoint(checkpoint: Path, out: Path, name: str) -> Path:
    """``out/<name>.onnx`` + ``.json`` of a segmenter checkpoint (float16 ones too), parity checked."""
    from brasyn_infer.authoring.models.segmenter_export import export_segmenter

    from .train_segmenter import load_checkpoint

    net, info = load_checkpoint(checkpoint)
    path = export_segmenter(net.float(), out, name, context=int(info["context"]), training=info["training"],
                            availability=bool(info.get("availability", False)),
                            provenance={"trained_by": "training/train_segmenter.py (this repository)",
                                        "checkpoint": checkpoint.name})
    print(f"exported {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="<name>.safetensors written by training.train or train_segmenter")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.onnx and <name>.json")
    p.add_argument("--name", required=True)
    p.add_argument("--uncertainty-from", type=Path, default=None, metavar="MANIFEST",
                   help="copy this manifest's uncertainty block (fitted by training.validate)")
    p.add_argument("--blend", action="append", default=[], metavar="MODALITY=ALPHA",
                   help="blend this modality's output with the linear prior (0 to 1; 1: the generator alone)")
    p.add_argument("--views", nargs="+", default=None, choices=[v.value for v in View],
                   help="the views the manifest runs by default (default: those the model was trained on); e.g. "
                   "one view for a model whose cases cost one synthesis per missing modality")
    add_refiner_options(p)
    args = p.parse_args(argv)
    if is_segmenter(args.checkpoint):
        export_segmenter_checkpoint(args.checkpoint, args.out, args.name)
        return
    blend = {}
    for item in args.blend:
        modality, _, alpha = item.partition("=")
        try:
            blend[Modality(modality).value] = float(alpha)
        except ValueError:
            raise SystemExit(f"--blend {item}: give MODALITY=ALPHA, e.g. t1c=0.6") from None
    block = None
    if args.uncertainty_from is not None:
        block = json.loads(args.uncertainty_from.read_text()).get("uncertainty")
        if not block:
            raise SystemExit(f"{args.uncertainty_from} has no uncertainty block: run python -m training.validate first")
    export_checkpoint(args.checkpoint, args.out, args.name, refiner_block(args.refiner, args.refine_by_default), block,
                      blend, views=args.views)


if __name__ == "__main__":
    main()

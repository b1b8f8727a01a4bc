"""Export a generator checkpoint from ``training.train --no-export`` to ONNX with its manifest.

    python -m training.export_checkpoint runs/gpu/fold.safetensors --out runs/gpu --name fold

For models trained on a machine without the product's ONNX toolchain (a GPU box): the checkpoint
carries the config, normalization, views and training record; the export checks ONNX Runtime
against torch before writing anything (``brasyn_infer.authoring.models.export``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .train import add_refiner_options, export_checkpoint, refiner_block


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="<name>.safetensors written by python -m training.train")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.onnx and <name>.json")
    p.add_argument("--name", required=True)
    add_refiner_options(p)
    args = p.parse_args(argv)
    export_checkpoint(args.checkpoint, args.out, args.name, refiner_block(args.refiner, args.refine_by_default))


if __name__ == "__main__":
    main()

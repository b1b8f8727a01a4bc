"""Out-of-fold generator outputs: each case synthesized by the generator that did not see it.

    python -m training.oof --cases ../shared/data/cases --folds runs/loco --out runs/oof

For each case folder ``<case>`` in CASES, the generator ``FOLDS/fold-<case>/fold.json`` (from
``python -m training.loco``) synthesizes each modality with that modality dropped; the result is
written to ``OUT/<case>/<case>-<mod>.nii.gz`` through the product's own pipeline code. These are
the refiner's training inputs (``python -m training.train_refiner``): outputs on unseen cases, as
the refiner will meet at test time. Existing outputs are kept (resumable).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from brasyn_infer.constants import MODALITIES, Device
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import output_image, read_inputs, write_atomic
from brasyn_infer.pipeline.synthesizer import Synthesizer


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, default=Path("../shared/data/cases"))
    p.add_argument("--folds", type=Path, default=Path("runs/loco"))
    p.add_argument("--out", type=Path, default=Path("runs/oof"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--only", nargs="*", default=None, help="these case IDs only (default: every case)")
    args = p.parse_args(argv)
    for folder in sorted(d for d in args.cases.iterdir() if d.is_dir() and (not args.only or d.name in args.only)):
        case = complete_case(folder)
        synth = Synthesizer(args.folds / f"fold-{case.case_id}" / "fold.json", device=Device.CPU, threads=args.threads,
                            refine=False)
        loaded = read_inputs(case.modalities)
        for missing in MODALITIES:
            target = args.out / case.case_id / f"{case.case_id}-{missing.value}.nii.gz"
            if target.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            inputs = {m: v.data for m, v in loaded.items() if m is not missing}
            volume = synth.synthesize(inputs, missing)
            write_atomic(output_image(volume, loaded[missing].image), target)
            print(f"{target} ({synth.view_label}, {time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()

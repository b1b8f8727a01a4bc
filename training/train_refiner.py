"""Train the 3D Refiner on generator outputs and export it to ONNX with its manifest.

    python -m training.train_refiner --cases ../shared/data/cases ../shared/data/brats2018 \\
        --synthesized runs/train/validation/volumes --out weights --name default-refiner

Input pairs come from ``--synthesized``: ``DIR/<case>/<case>-<mod>.nii.gz``, the generator's output for each case
with ``<mod>`` dropped, best from a generator that never saw the case (``brasyn-infer evaluate --save-volumes DIR``
keeps them), so that the refiner learns from outputs on unseen cases, as at test time. Cases without such outputs
are skipped.
Each step draws random cubic crops inside the brain's bounding box: the refiner input
(:func:`brasyn_infer.synthesis.refine.refiner_input`, the product's own z-scoring) and the real modality z-scored
over its own nonzero voxels; the loss is L1 over brain voxels. The final 1x1x1 conv starts at
zero, so the refiner starts as the identity.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brasyn_infer.authoring.models.export import export_refiner
from brasyn_infer.authoring.models.refiner import Refiner, RefinerConfig
from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.synthesis.refine import refiner_input, zscore_nonzero
from brasyn_infer.synthesis.windows import brain_box

from .data import find_case_folders, saved_path


@dataclass
class Pair:
    case_id: str
    missing: Modality
    x4: np.ndarray  # (4, X, Y, Z) refiner input, cropped to the brain box
    target: np.ndarray  # (X, Y, Z) real modality, z-scored over its own nonzero voxels
    brain: np.ndarray  # (X, Y, Z) bool


def load_pairs(case_dir: Path, synthesized_dir: Path) -> list[Pair]:
    """One training pair per modality of a complete case that has a synthesized volume (none: [])."""
    case = complete_case(case_dir)
    paths = {m: saved_path(synthesized_dir, case.case_id, m) for m in MODALITIES}
    if not any(p.is_file() for p in paths.values()):
        return []
    volumes = {m: v.data for m, v in read_inputs(case.modalities).items()}
    pairs = []
    for missing, path in paths.items():
        if not path.is_file():
            continue
        synthesized = load_volume(path).data
        inputs = {m: v for m, v in volumes.items() if m is not missing}
        background = np.stack([v <= 0 for v in inputs.values()]).sum(0) >= 2  # as normalize.background_mask
        x4, _, _ = refiner_input(inputs, synthesized, background, missing)
        box = brain_box(~background)
        # The target is the real volume z-scored over its own nonzero voxels, like the input: the
        # refiner learns structure, not the absolute scale (unknowable for a missing modality, and
        # left to the pipeline's estimate: its output is mapped back with the synthesized mean/std).
        target = zscore_nonzero(volumes[missing], ~background)[0]
        pairs.append(Pair(case.case_id, missing, np.ascontiguousarray(x4[(slice(None), *box)]),
                          np.ascontiguousarray(target[box]), ~background[box]))
    return pairs


class CropSampler:
    """Random ``crop``-cubed windows of random pairs, with a random left-right flip."""

    def __init__(self, pairs: list[Pair], crop: int, seed: int) -> None:
        self.pairs = pairs
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, augment: bool = True) -> dict[str, np.ndarray]:
        xs, ts, bs, ms = [], [], [], []
        for _ in range(size):
            pair = self.pairs[int(self.rng.integers(len(self.pairs)))]
            shape = pair.target.shape
            pad = [(0, max(0, self.crop - n)) for n in shape]
            x4 = np.pad(pair.x4, [(0, 0), *pad])
            target, brain = np.pad(pair.target, pad), np.pad(pair.brain, pad)
            start = [int(self.rng.integers(0, n - self.crop + 1)) for n in target.shape]
            region = tuple(slice(s, s + self.crop) for s in start)
            x, t, b = x4[(slice(None), *region)], target[region], brain[region]
            if augment and self.rng.random() < 0.5:  # left-right is X, the first axis
                x, t, b = x[:, ::-1], t[::-1], b[::-1]
            xs.append(x)
            ts.append(t[None])
            bs.append(b[None])
            ms.append(pair.missing.index)
        return {"x": np.ascontiguousarray(np.stack(xs), dtype=np.float32),
                "target": np.ascontiguousarray(np.stack(ts), dtype=np.float32),
                "brain": np.ascontiguousarray(np.stack(bs), dtype=np.float32),
                "missing": np.asarray(ms, dtype=np.float32)}


def masked_l1(pred: torch.Tensor, target: torch.Tensor, brain: torch.Tensor) -> torch.Tensor:
    return ((pred - target).abs() * brain).sum() / brain.sum().clamp_min(1)


@torch.no_grad()
def held_out_l1(net: Refiner, sampler: CropSampler, batches: int = 6) -> dict[str, float]:
    """L1 of the refiner and of the identity (its input) on the same crops."""
    net.eval()
    refined = identity = 0.0
    for _ in range(batches):
        b = {k: torch.from_numpy(v) for k, v in sampler.batch(2, augment=False).items()}
        synthesized = b["x"][torch.arange(len(b["missing"])), b["missing"].long()].unsqueeze(1)
        refined += float(masked_l1(net(b["x"], b["missing"]), b["target"], b["brain"])) / batches
        identity += float(masked_l1(synthesized, b["target"], b["brain"])) / batches
    net.train()
    return {"refined_l1": round(refined, 5), "identity_l1": round(identity, 5)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", default=[Path("../shared/data/cases")],
                   help="folders of complete case folders")
    p.add_argument("--synthesized", type=Path, required=True, help="DIR/<case>/<case>-<mod>.nii.gz generator outputs")
    p.add_argument("--holdout", nargs="*", default=[])
    p.add_argument("--width", type=int, default=8, help="C: encoder / attention channels (64 in the paper)")
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--crop", type=int, default=32, help="training crop side (voxels, divisible by 2**levels)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--window", type=int, default=64, help="inference window side recorded in the manifest")
    p.add_argument("--overlap", type=float, default=0.5)
    p.add_argument("--blend", default="gaussian", choices=["constant", "hann", "gaussian"])
    p.add_argument("--out", type=Path, default=Path("weights"))
    p.add_argument("--name", default="default-refiner")
    return p.parse_args(argv)


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    folders = find_case_folders(args.cases)
    train_pairs = [pair for f in folders if f.name not in args.holdout for pair in load_pairs(f, args.synthesized)]
    hold_pairs = [pair for f in folders if f.name in args.holdout for pair in load_pairs(f, args.synthesized)]
    sampler = CropSampler(train_pairs, args.crop, args.seed)
    hold = CropSampler(hold_pairs, args.crop, args.seed + 1) if hold_pairs else None
    cfg = RefinerConfig(width=args.width, levels=args.levels)
    net = Refiner(cfg).train()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    history: list[dict] = []
    start = time.perf_counter()
    running: float | None = None
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * max(0.02, 0.5 * (1 + math.cos(math.pi * (step - 1) / args.steps)))
        b = {k: torch.from_numpy(v) for k, v in sampler.batch(args.batch).items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            pred = net(b["x"], b["missing"])
        loss = masked_l1(pred.float(), b["target"], b["brain"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        running = float(loss.detach()) if running is None else 0.95 * running + 0.05 * float(loss.detach())
        if step % 25 == 0 or step == args.steps:
            entry = {"step": step, "seconds": round(time.perf_counter() - start, 1), "l1": round(running, 5)}
            if hold is not None and (step % 100 == 0 or step == args.steps):
                entry["holdout"] = held_out_l1(net, hold)
            history.append(entry)
            print(json.dumps(entry), flush=True)
    record = {
        "command": "python -m training.train_refiner " + " ".join(sys.argv[1:]),
        "data": {"train": sorted({p.case_id for p in train_pairs}), "holdout": sorted({p.case_id for p in hold_pairs}),
                 "synthesized": str(args.synthesized)},
        "width": args.width, "levels": args.levels, "crop": args.crop, "batch": args.batch, "lr": args.lr,
        "steps": args.steps, "bf16": args.bf16, "seed": args.seed,
        "train_seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "history": history,
    }
    net.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(args.out / f"{args.name}.safetensors"), metadata={"config": json.dumps(cfg.to_dict())})
    window = (args.window,) * 3
    manifest = export_refiner(net, args.out, args.name, window, args.overlap, args.blend,
                              provenance={"trained_by": "training/train_refiner.py (this repository)",
                                          "checkpoint": f"{args.name}.safetensors"}, training=record)
    print(f"exported {manifest.onnx_path} ({manifest.onnx_path.stat().st_size / 1e6:.2f} MB), manifest {manifest.path}")
    return record


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()

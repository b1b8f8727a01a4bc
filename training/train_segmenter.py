"""Train the embedded tumor segmenter: a 2.5D U-Net (``brasyn_infer.authoring.models.unet``) on axial slices.

    python -m training.train_segmenter --cases ../shared/data/brats2018 ../shared/data/brats2021 \\
        ../shared/data/cases --exclude TCGA-DU-7294 --holdout ID ... --run-dir runs/seg/val --name val [--resume]

The recipe follows GANET-SEG's segmentation module (paper 003): 3x3 convolutions, instance norm, ReLU, skip
connections; a cross-entropy + Dice loss (the Dice on the BraTS regions WT, TC and ET from the softmax); crops
inside the brain's bounding box; slices without tumor drawn less often (``--tumor``: the share of crops from slices
that hold tumor). Inputs are the product's own preprocessing (``brasyn_infer.segmentation.preprocess``): each
modality z-scored over its nonzero voxels, the slice with ``--context`` neighbours on each side. Augmentation: flips
in the plane, each modality's intensity scaled and shifted.

``--any-pattern`` trains the missing-sequence segmenter (``weights/segmenter-any``): each crop keeps one of the 15
availability patterns, drawn uniformly (the modality dropout of RFNet and M3AE, ``missing-segmentation.md``), or,
with ``--favor PATTERN ... --favor-share P``, one of the favored patterns for a share ``P`` of the crops; the
missing modalities' channels are 0 and four constant planes say which are present
(:func:`~brasyn_infer.segmentation.preprocess.with_availability`). Its held-out cases are scored for every pattern.

Only cases with an expert segmentation are used; a case whose labels are an algorithm's is left out by name
(``--exclude``). Each batch is seeded by the step, so ``--resume`` (from ``RUN_DIR/state.pt``) draws the batches an
uninterrupted run would. At the end the held-out cases (``--holdout``) are segmented whole with the inference code
the product runs and scored (Dice, HD95 of WT, TC, ET), and ``<out>/<name>.onnx`` + ``.json`` are exported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig
from brasyn_infer.constants import MODALITIES
from brasyn_infer.io.cases import complete_case
from brasyn_infer.io.nifti import load_volume, read_inputs
from brasyn_infer.segmentation.infer import segment_volume
from brasyn_infer.segmentation.labels import CLASS_REGIONS, classes_from_labels, convention_for_files
from brasyn_infer.segmentation.preprocess import axial_stack, brain_box, crop, with_availability, zscore

from .data import find_case_folders
from .losses import distillation_loss, segmentation_loss
from .runstate import load_state, restore, save_state, warmup_cosine

RECIPE_KEYS = ("cases", "holdout", "exclude", "widths", "context", "crop", "batch", "lr", "steps", "warmup", "tumor",
               "dice_weight", "seed", "init", "any_pattern", "teacher", "distill_weight", "temperature", "favor",
               "favor_share")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=Path, nargs="+", required=True, help="folders of complete case folders")
    p.add_argument("--holdout", nargs="*", default=[], help="case IDs kept out of training, scored at the end")
    p.add_argument("--exclude", nargs="*", default=[], help="case IDs not used at all (e.g. algorithmic labels)")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128, 192])
    p.add_argument("--context", type=int, default=1, help="neighbouring slices on each side (2.5D input)")
    p.add_argument("--crop", type=int, default=128, help="crop side in voxels (a multiple of 2^(levels-1))")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--tumor", type=float, default=0.8, help="share of crops from slices that hold tumor")
    p.add_argument("--dice-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--any-pattern", action="store_true",
                   help="the missing-sequence segmenter: each crop keeps one of the 15 availability patterns")
    p.add_argument("--favor", nargs="+", default=[], metavar="PATTERN",
                   help="with --any-pattern: patterns drawn more often, named by the sequences present "
                   "(e.g. t1n+t2f+t2w, BraSyn's case without t1c)")
    p.add_argument("--favor-share", type=float, default=0.0,
                   help="share of the crops that keep one of the --favor patterns (the rest: any of the 15)")
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="start from a checkpoint this script wrote (same widths and context)")
    p.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="with --any-pattern: a full-input segmenter (a checkpoint this script wrote without "
                   "--any-pattern) that reads each crop with all four sequences; the student learns its softmax "
                   "(distillation) beside the expert labels")
    p.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation term")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the distillation term")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/seg"))
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", type=Path, default=Path("weights"))
    p.add_argument("--name", default="segmenter")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--no-score", action="store_true",
                   help="skip the quick scoring of the held-out cases (scored elsewhere with the official metrics)")
    return p.parse_args(argv)


@dataclass
class SegCase:
    case_id: str
    x4: np.ndarray  #: (4, x, y, Z) float16, z-scored, the brain's box
    classes: np.ndarray  #: (x, y, Z) uint8, 0 bg, 1 NCR, 2 ED, 3 ET


def load_case(folder: Path, multiple: int) -> tuple[SegCase, np.ndarray, np.ndarray]:
    """A complete case with its expert labels: the boxed training arrays, and the raw ``(4, X, Y, Z)`` volume and
    ``(X, Y, Z)`` classes (for scoring held-out cases whole)."""
    files = complete_case(folder)
    if files.seg is None:
        raise SystemExit(f"{folder}: no segmentation (exclude it with --exclude {files.case_id})")
    volumes = read_inputs(files.modalities)
    raw = np.stack([volumes[m].data.astype(np.float32) for m in MODALITIES])
    classes = classes_from_labels(load_volume(files.seg).data, convention_for_files(files.convention))
    z = zscore(raw)
    box = brain_box(z, multiple)
    boxed = SegCase(files.case_id, crop(z, box).astype(np.float16), crop(classes, box))
    return boxed, raw, classes


class CropSampler:
    """Random ``crop x crop`` 2.5D crops of axial slices: from a slice with tumor with probability ``tumor``."""

    def __init__(self, cases: list[SegCase], crop_side: int, context: int, tumor: float, seed: int,
                 any_pattern: bool = False, favor: tuple[int, ...] = (), favor_share: float = 0.0) -> None:
        self.cases, self.side, self.context, self.tumor, self.seed = cases, crop_side, context, tumor, seed
        self.any_pattern, self.favor, self.favor_share = any_pattern, favor, favor_share
        self.brain, self.lesion = [], []
        for ci, c in enumerate(cases):
            occupied = (c.x4 != 0).any(axis=(0, 1, 2))
            has_tumor = (c.classes > 0).any(axis=(0, 1))
            self.brain += [(ci, int(z)) for z in np.flatnonzero(occupied & ~has_tumor)]
            self.lesion += [(ci, int(z)) for z in np.flatnonzero(has_tumor)]

    def batch(self, step: int, size: int, full: bool = False) -> tuple[np.ndarray, ...]:
        """``x`` ``(B, 4 (2k+1), S, S)`` float32 (``+ 4`` availability planes with ``any_pattern``) and ``y``
        ``(B, S, S)`` int64 (the same for the same seed and step); with ``full``, a third array: the same crops
        with all four sequences and no availability planes (a distillation teacher's input)."""
        rng = np.random.default_rng([self.seed, step])
        xs, ys, fulls = [], [], []
        s = self.side
        for _ in range(size):
            pool = self.lesion if (self.lesion and rng.random() < self.tumor) else self.brain
            pool = pool or self.lesion  # every slice holds tumor: no other pool to draw from
            ci, z = pool[rng.integers(len(pool))]
            case = self.cases[ci]
            x = axial_stack(case.x4, np.array([z]), self.context)[0]
            y = case.classes[..., z]
            X, Y = y.shape
            pad = ((0, max(0, s - X)), (0, max(0, s - Y)))
            x = np.pad(x, ((0, 0), *pad))
            y = np.pad(y, pad)
            X, Y = y.shape
            if pool is self.lesion and rng.random() < 0.7:  # centre near a tumor voxel
                rows, cols = np.nonzero(y > 0)
                k = rng.integers(len(rows))
                r0 = int(np.clip(rows[k] - s // 2 + rng.integers(-s // 4, s // 4 + 1), 0, X - s))
                c0 = int(np.clip(cols[k] - s // 2 + rng.integers(-s // 4, s // 4 + 1), 0, Y - s))
            else:
                r0, c0 = int(rng.integers(X - s + 1)), int(rng.integers(Y - s + 1))
            x, y = x[:, r0:r0 + s, c0:c0 + s], y[r0:r0 + s, c0:c0 + s]
            if rng.random() < 0.5:
                x, y = x[:, ::-1], y[::-1]
            if rng.random() < 0.5:
                x, y = x[:, :, ::-1], y[:, ::-1]
            gain = rng.uniform(0.9, 1.1, size=len(MODALITIES)).astype(np.float32)
            shift = rng.uniform(-0.1, 0.1, size=len(MODALITIES)).astype(np.float32)
            reps = x.shape[0] // len(MODALITIES)
            inside = x != 0
            x = np.where(inside, x * np.tile(gain, reps)[:, None, None] + np.tile(shift, reps)[:, None, None], 0)
            if full:
                fulls.append(np.ascontiguousarray(x, dtype=np.float32))
            if self.any_pattern:
                x = with_availability(x[None], pattern_flags(self.pattern(rng)))[0]
            xs.append(np.ascontiguousarray(x, dtype=np.float32))
            ys.append(np.ascontiguousarray(y, dtype=np.int64))
        return (np.stack(xs), np.stack(ys), np.stack(fulls)) if full else (np.stack(xs), np.stack(ys))

    def pattern(self, rng: np.random.Generator) -> int:
        """The pattern code (1..15) of one crop: a favored one for ``favor_share`` of the crops, else any of the
        15 uniformly (without favored patterns the draw is the uniform one, the same numbers for the same seed)."""
        if self.favor and rng.random() < self.favor_share:
            return self.favor[int(rng.integers(len(self.favor)))]
        return int(rng.integers(1, 16))


def pattern_flags(code: int) -> tuple[bool, ...]:
    """The availability flags (MODALITIES order) of pattern ``code`` 1..15: bit i set = modality i present."""
    return tuple(bool(code >> i & 1) for i in range(len(MODALITIES)))


def pattern_name(flags: tuple[bool, ...]) -> str:
    """``t1c+t2w`` for the modalities present (``all`` when all four are)."""
    present = [m.value for m, f in zip(MODALITIES, flags, strict=True) if f]
    return "all" if len(present) == len(MODALITIES) else "+".join(present)


def pattern_code(name: str) -> int:
    """The code of a pattern named by the sequences present, ``t1n+t2f+t2w`` (or ``all``); the inverse of
    :func:`pattern_name` with :func:`pattern_flags`. ``SystemExit`` names the valid sequences otherwise."""
    values = [m.value for m in MODALITIES]
    present = values if name == "all" else name.split("+")
    if not present or any(p not in values for p in present) or len(set(present)) != len(present):
        raise SystemExit(f"--favor {name!r}: name a pattern by the sequences present, '+'-joined from "
                         f"{', '.join(values)} (e.g. t1n+t2f+t2w)")
    return sum(1 << values.index(p) for p in present)


def learning_rate(args: argparse.Namespace, step: int) -> float:
    """Linear warm-up, then cosine to 1% of ``--lr`` at ``--steps``."""
    return warmup_cosine(args.lr, args.warmup, args.steps, step, 0.01)


def recipe(args: argparse.Namespace) -> dict:
    """The arguments that shape the training (a resumed run must repeat them); the pattern favoring only when
    used, so that the run folders of earlier recipes resume."""
    unused = ("favor", "favor_share") if not args.favor else ()
    return {k: (sorted(map(str, v)) if isinstance(v, list) and k in ("cases", "holdout", "exclude") else
                list(v) if isinstance(v, list) else str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items() if k in RECIPE_KEYS and k not in unused}


def torch_forward(net: UNet2D, batch: int = 16):
    """A numpy ``forward`` for :func:`segment_volume` around the torch model (eval, no grad)."""
    @torch.no_grad()
    def forward(x: np.ndarray) -> np.ndarray:
        return net.eval()(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return forward


def score_case(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice and HD95 (mm, 1 mm voxels) of WT, TC, ET (training's own quick check; ``evaluate --segment`` scores
    with the official package). An empty prediction of an empty region has Dice 1, HD95 0."""
    from scipy import ndimage

    out: dict[str, float] = {}
    for region, members in CLASS_REGIONS.items():
        p, t = np.isin(pred, members), np.isin(truth, members)
        if not p.any() and not t.any():
            out[f"dice_{region}"], out[f"hd95_{region}"] = 1.0, 0.0
            continue
        out[f"dice_{region}"] = float(2 * (p & t).sum() / (p.sum() + t.sum()))
        if not p.any() or not t.any():
            out[f"hd95_{region}"] = 373.13
            continue
        def surface(m: np.ndarray) -> np.ndarray:
            return m & ~ndimage.binary_erosion(m)
        dt_t = ndimage.distance_transform_edt(~surface(t))
        dt_p = ndimage.distance_transform_edt(~surface(p))
        d = np.concatenate([dt_t[surface(p)], dt_p[surface(t)]])
        out[f"hd95_{region}"] = float(np.percentile(d, 95))
    return out


def save_checkpoint(net: UNet2D, path: Path, info: dict) -> Path:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata={"config": json.dumps(net.cfg.to_dict()), "export": json.dumps(info),
                                          "architecture": "unet2d-seg"})
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path) -> tuple[UNet2D, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("architecture") != "unet2d-seg":
        raise SystemExit(f"{path}: not a segmenter checkpoint written by training.train_segmenter")
    net = UNet2D(UNetConfig.from_dict(json.loads(meta["config"])))
    net.load_state_dict(load_file(str(path)))
    return net.eval(), json.loads(meta["export"])


def load_frozen(path: Path) -> tuple[UNet2D, dict]:
    """:func:`load_checkpoint` as a fixed reader inside another model's loss (a distillation teacher, a generator's
    segmentation judge): float32, eval mode, no parameter needing a gradient."""
    net, info = load_checkpoint(path)
    net = net.float().eval()
    net.requires_grad_(False)
    return net, info


def load_teacher(path: Path, context: int) -> UNet2D:
    """A frozen full-input segmenter for distillation: a checkpoint of this script without availability planes
    and with the student's context; exits naming the file otherwise."""
    teacher, info = load_frozen(path)
    if info.get("availability"):
        raise SystemExit(f"--teacher {path}: a missing-sequence segmenter; the teacher reads all four sequences "
                         "(a checkpoint trained without --any-pattern)")
    if int(info["context"]) != context:
        raise SystemExit(f"--teacher {path}: context {info['context']}, the student's is {context}")
    return teacher


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    extra = len(MODALITIES) if args.any_pattern else 0
    cfg = UNetConfig(in_channels=len(MODALITIES) * (2 * args.context + 1) + extra, widths=tuple(args.widths))
    if args.crop % cfg.multiple:
        raise SystemExit(f"--crop {args.crop} must be a multiple of {cfg.multiple}")
    if args.teacher is not None and not args.any_pattern:
        raise SystemExit("--teacher distils a full-input segmenter into a missing-sequence one: add --any-pattern")
    if args.favor and not args.any_pattern:
        raise SystemExit("--favor draws some availability patterns more often: add --any-pattern")
    if not 0.0 <= args.favor_share <= 1.0:
        raise SystemExit(f"--favor-share {args.favor_share}: a share between 0 and 1")
    if args.favor and args.favor_share == 0.0:
        raise SystemExit("--favor without --favor-share draws the favored patterns no more often: give a share")
    favor = tuple(pattern_code(name) for name in args.favor)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    state_path = args.run_dir / "state.pt"
    state = load_state(state_path, args.resume, recipe(args))
    folders = [p for p in find_case_folders(args.cases) if p.name not in args.exclude]
    unknown = set(args.holdout) - {p.name for p in folders}
    if unknown:
        raise SystemExit(f"--holdout names cases not among the cases: {', '.join(sorted(unknown))}")
    folders = [p for p in folders if any(f.name.lower().split(".")[0].endswith("seg") for f in p.iterdir())]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        loaded = list(pool.map(lambda p: (p.name, load_case(p, cfg.multiple)), folders))
    train_cases = [c for name, (c, _, _) in loaded if name not in args.holdout]
    hold = [(c.case_id, raw, classes) for name, (c, raw, classes) in loaded if name in args.holdout]
    del loaded
    sampler = CropSampler(train_cases, args.crop, args.context, args.tumor, args.seed, args.any_pattern, favor,
                          args.favor_share)
    print(f"loaded {len(train_cases)} training cases ({len(sampler.lesion)} slices with tumor, {len(sampler.brain)} "
          f"without) and {len(hold)} held out in {time.perf_counter() - t0:.0f} s", flush=True)

    net = UNet2D(cfg).train()
    print(f"U-Net {sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters", flush=True)
    teacher = load_teacher(args.teacher, args.context) if args.teacher is not None else None
    if args.init is not None and state is None:
        start, _ = load_checkpoint(args.init)
        net.load_state_dict(start.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    step, history, spent = restore(state, net, opt)
    start_time = time.perf_counter() - spent
    running: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=1) as prefetch:
        distil = teacher is not None
        pending = prefetch.submit(sampler.batch, step, args.batch, distil)
        while step < args.steps:
            for group in opt.param_groups:
                group["lr"] = learning_rate(args, step)
            x, y, *full = pending.result()
            pending = prefetch.submit(sampler.batch, step + 1, args.batch, distil)
            logits = net(torch.from_numpy(x))
            target = torch.from_numpy(y)
            loss, ce, dice = segmentation_loss(logits, target, args.dice_weight)
            parts = {"ce": ce, "dice_loss": dice}
            if distil:
                with torch.no_grad():
                    taught = teacher(torch.from_numpy(full[0]))
                kd = distillation_loss(logits, taught, args.temperature)
                loss = loss + args.distill_weight * kd
                parts["distill"] = kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            for k, v in {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}.items():
                running[k] = running.get(k, v) * 0.95 + v * 0.05
            if step % 50 == 0 or step == args.steps:
                entry = {"step": step, "seconds": round(time.perf_counter() - start_time, 1),
                         "lr": round(learning_rate(args, step - 1), 7), **{k: round(v, 5) for k, v in running.items()}}
                history.append(entry)
                print(json.dumps(entry), flush=True)
            if step % args.save_every == 0 or step == args.steps:
                save_state(state_path, net, opt, step, recipe(args), history, time.perf_counter() - start_time)
    train_seconds = time.perf_counter() - start_time

    scores = {}
    forward = torch_forward(net)
    patterns = [pattern_flags(code) for code in range(15, 0, -1)] if args.any_pattern else [None]
    for case_id, raw, classes in ([] if args.no_score else hold):
        for flags in patterns:
            t = time.perf_counter()
            x4 = raw if flags is None else raw * np.asarray(flags, dtype=np.float32)[:, None, None, None]
            pred = segment_volume(x4, forward, args.context, cfg.multiple, available=flags)
            key = case_id if flags is None else f"{case_id}|{pattern_name(flags)}"
            scores[key] = {k: round(v, 4) for k, v in score_case(pred, classes).items()}
            print(json.dumps({"holdout": key, "seconds": round(time.perf_counter() - t, 1), **scores[key]}),
                  flush=True)
    for flags in patterns:
        rows = [s for k, s in scores.items() if flags is None or k.endswith(f"|{pattern_name(flags)}")]
        if rows:
            mean = {k: round(float(np.mean([s[k] for s in rows])), 4) for k in rows[0]}
            print(json.dumps({"holdout_mean": mean, **({} if flags is None else {"pattern": pattern_name(flags)})}),
                  flush=True)
    record = {
        "command": "python -m training.train_segmenter " + " ".join(sys.argv[1:]),
        "data": {"train": [c.case_id for c in train_cases], "holdout": [h[0] for h in hold],
                 "excluded": sorted(args.exclude)},
        "recipe": recipe(args), "steps": step, "train_seconds": round(train_seconds, 1),
        "machine": f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} torch threads, "
                   f"torch {torch.__version__}",
        "holdout_scores": scores, "final": history[-1] if history else {}, "history": history,
    }
    info = {"context": args.context, "availability": args.any_pattern, "training": record}
    ckpt = save_checkpoint(net, args.run_dir / f"{args.name}.safetensors", info)
    (args.run_dir / "record.json").write_text(json.dumps(record, indent=1))
    print(f"checkpoint {ckpt}", flush=True)
    if not args.no_export:
        from brasyn_infer.authoring.models.segmenter_export import export_segmenter

        manifest = export_segmenter(net, args.out, args.name, context=args.context, training=record,
                                    availability=args.any_pattern,
                                    provenance={"trained_by": "training/train_segmenter.py (this repository)",
                                                "checkpoint": ckpt.name})
        print(f"exported {manifest}", flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()

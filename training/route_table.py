"""Choose ``segment``'s route per availability pattern from held-out scores, and write it into the missing-sequence
segmenter's manifest (``routes``) with the scores it was chosen on.

    python -m training.route_table --prepare --default weights/default.json \\
        --companion runs/any/val/val-any-1v.json --out runs/routes/weights
    brasyn-infer evaluate DATA runs/routes/report --only ... --drop every --segment --segmenter SEG_VAL.json \\
        --direct-segmenter SEG_ANY_VAL.json --weights runs/routes/weights/default.json --baseline none
    python -m training.route_table --report runs/routes/report --cases ../shared/data/... --only ID ... \\
        --segmenter SEG_VAL.json --direct SEG_ANY_VAL.json --write weights/segmenter-any.json --table routes.md

``--prepare`` writes the generator of the ``complete`` route for the evaluation: the default's manifest and graph
with its companion replaced by the companion's validation model (held out from the same cases); the default's own
validation model is not kept, so its one-missing rows are optimistic (it saw five of the six segmenter cases).
``--companion-targets t1c`` hands a single missing t1c to the companion as well (with ``--prepare``; alone, it is
written into the ``--default`` manifest in place, as ``make ship-any-tumor`` does for the shipped default).

Then, from ``evaluate``'s rows: per pattern of missing sequences, the mean over cases of the global Dice of WT, TC
and ET of the ``direct`` route (the missing-sequence segmenter on what the pattern leaves) and of the ``complete``
route (``model``: synthesis, then the full segmenter). The route with the higher mean of the three is chosen
(``direct`` on a tie: it is cheaper). For a complete case (``none``), the full segmenter on the real sequences
(``real``) against the missing-sequence segmenter on them, scored here with the same official metrics. Each
pattern's entry keeps both routes' scores, n, and M3AE's published figure for the same pattern (BraTS 2020 test
split; the spec's ``missing-segmentation.md``), so the choice can be checked.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np

from brasyn_infer.constants import MODALITIES, Modality
from brasyn_infer.evaluation.report import read_rows
from brasyn_infer.io.atomic import write_json_atomic, write_text_atomic
from brasyn_infer.runtime.segmenter_manifest import NOTHING_MISSING, ROUTE_COMPLETE, ROUTE_DIRECT, ROUTE_FULL

from .data import find_case_folders

REGIONS = ("wt", "tc", "et")
#: M3AE (AAAI 2023), per-pattern global Dice on BraTS 2020's test split (its supplement, Table S3), by the sequences
#: PRESENT: WT, TC, ET (fractions)
M3AE = {
    ("t2w",): (0.861, 0.718, 0.471), ("t1c",): (0.789, 0.836, 0.736), ("t1n",): (0.790, 0.694, 0.404),
    ("t2f",): (0.880, 0.687, 0.402), ("t1c", "t2w"): (0.871, 0.856, 0.760), ("t1c", "t1n"): (0.801, 0.838, 0.753),
    ("t1n", "t2f"): (0.896, 0.728, 0.437), ("t1n", "t2w"): (0.873, 0.729, 0.487), ("t2f", "t2w"): (0.901, 0.743, 0.471),
    ("t1c", "t2f"): (0.895, 0.855, 0.759), ("t1c", "t1n", "t2f"): (0.896, 0.856, 0.763),
    ("t1n", "t2f", "t2w"): (0.902, 0.744, 0.482), ("t1c", "t2f", "t2w"): (0.905, 0.858, 0.774),
    ("t1c", "t1n", "t2w"): (0.874, 0.858, 0.780), ("t1c", "t1n", "t2f", "t2w"): (0.904, 0.862, 0.775),
}
M3AE_MEAN = (0.869, 0.791, 0.617)


def present_of(missing: str) -> tuple[str, ...]:
    """The sequences left by a pattern of missing ones (``t1c+t2f`` -> ``("t1n", "t2w")``; ``none`` -> all four)."""
    gone = set() if missing == NOTHING_MISSING else set(missing.split("+"))
    return tuple(m.value for m in MODALITIES if m.value not in gone)


def prepare(default: Path, companion: Path, out: Path, companion_targets: list[str] | None = None) -> Path:
    """``out/<default's name>.json``: the default's manifest and graph with ``companion`` as its companion (and
    ``companion_targets``, the single missing modalities it synthesizes instead, where given)."""
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(default.read_text())
    target = out / default.name
    graph = out / data["onnx"]
    if not graph.exists():
        shutil.copy(default.parent / data["onnx"], graph)
    data["companion"] = str(companion.resolve())
    if companion_targets is not None:
        set_companion_targets(data, companion_targets)
    write_json_atomic(target, data)
    return target


def set_companion_targets(data: dict, targets: list[str]) -> dict:
    """A generator manifest's ``companion_targets`` set to ``targets`` (modality values, MODALITIES order; none:
    the block removed): the single missing modalities its companion synthesizes instead, chosen on held-out scores
    (``make validate-tumor``). Exits when the manifest names no companion or a target is not a modality."""
    if not data.get("companion"):
        raise SystemExit(f"{data.get('name')}: the manifest names no companion to hand a single missing modality to")
    known = {m.value for m in MODALITIES}
    if set(targets) - known:
        raise SystemExit(f"--companion-targets: not modalities: {', '.join(sorted(set(targets) - known))}")
    data.pop("companion_targets", None)
    if targets:
        data["companion_targets"] = [m.value for m in MODALITIES if m.value in targets]
    return data


def report_rows(report: Path) -> list[dict]:
    """The rows of an evaluate report: ``cases.csv``, or every shard's ``cases.shard-I-of-N.csv``."""
    whole = report / "cases.csv"
    if whole.is_file():
        return read_rows(whole)
    shards = sorted(report.glob("cases.shard-*.csv"))
    if not shards:
        raise SystemExit(f"{report}: no cases.csv (run evaluate into it first)")
    return [row for path in shards for row in read_rows(path)]


def pattern_means(rows: list[dict], method: str) -> dict[str, dict]:
    """Per pattern, ``method``'s mean Dice of WT, TC, ET over cases (one value per case and pattern) and n."""
    per: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if r["method"] != method or not math.isfinite(r.get("dice_wt", math.nan)):
            continue
        per.setdefault(r["pattern"] or r["modality"], {})[r["case"]] = {k: r[f"dice_{k}"] for k in REGIONS}
    out = {}
    for pattern, cases in per.items():
        means = {k: float(np.nanmean([c[k] for c in cases.values()])) for k in REGIONS}
        out[pattern] = {**{k: round(v, 4) for k, v in means.items()},
                        "mean": round(float(np.mean(list(means.values()))), 4), "n": len(cases)}
    return out


def full_case_scores(cases: list[Path], direct: Path) -> dict:
    """The missing-sequence segmenter on complete held-out cases (all four real sequences), official metrics."""
    return pattern_means(direct_rows(cases, direct, [()]), "direct")[NOTHING_MISSING]


def direct_rows(cases: list[Path], direct: Path, patterns: list[tuple] | None = None) -> list[dict]:
    """The ``direct`` rows of ``evaluate --drop every --segment``, computed here without the synthesis: for each case
    and each pattern of missing sequences (default: the 14 of ``--drop every``; ``()``: none missing), the
    missing-sequence segmenter ``direct`` on the sequences the pattern leaves, official metrics against the expert
    labels (one row per case and pattern)."""
    from brasyn_infer.evaluation.patterns import group, label
    from brasyn_infer.evaluation.protocol import expert_classes
    from brasyn_infer.evaluation.seg_metrics import brats_scores
    from brasyn_infer.io.cases import complete_case
    from brasyn_infer.io.nifti import read_inputs, voxel_spacing
    from brasyn_infer.runtime.segmenter import Segmenter

    segmenter = Segmenter(direct)
    rows = []
    for folder in cases:
        files = complete_case(folder)
        loaded = read_inputs(files.modalities)
        reference = expert_classes(files, None)
        spacing = voxel_spacing(loaded[Modality.T1C].image)
        for pattern in group("every") if patterns is None else patterns:
            name = label(pattern) if pattern else NOTHING_MISSING
            inputs = {m: v.data for m, v in loaded.items() if m not in pattern}
            s = brats_scores(segmenter.segment(inputs), reference, spacing)
            rows.append({"case": files.case_id, "pattern": name, "modality": pattern[0].value if pattern else "",
                         "method": "direct", **{f"dice_{k}": s[f"dice_{k}"] for k in REGIONS}})
            print(f"{files.case_id} {name} direct WT {s['dice_wt']:.3f} TC {s['dice_tc']:.3f} "
                  f"ET {s['dice_et']:.3f}", flush=True)
    return rows


def choose(rows: list[dict], none_direct: dict | None, kept: dict | None = None) -> dict[str, dict]:
    """The ``routes`` block: per pattern, the chosen route and both routes' scores. ``kept``: an earlier routes
    block whose ``complete`` (and, for complete cases, ``full``) scores stand in where ``rows`` has none (a new
    missing-sequence segmenter re-scored by :func:`direct_rows` against the same synthesis)."""
    direct, complete, real = pattern_means(rows, "direct"), pattern_means(rows, "model"), pattern_means(rows, "real")
    kept = kept or {}
    for pattern, entry in kept.items():
        if pattern != NOTHING_MISSING and entry["scores"].get(ROUTE_COMPLETE) and pattern not in complete:
            complete[pattern] = entry["scores"][ROUTE_COMPLETE]
    routes: dict[str, dict] = {}
    for pattern in sorted(set(direct) | set(complete), key=lambda p: (p.count("+"), p)):
        d, c = direct.get(pattern), complete.get(pattern)
        route = ROUTE_DIRECT if c is None or (d is not None and d["mean"] >= c["mean"]) else ROUTE_COMPLETE
        routes[pattern] = {"route": route, "scores": {ROUTE_DIRECT: d, ROUTE_COMPLETE: c},
                           "m3ae": dict(zip(REGIONS, M3AE[present_of(pattern)], strict=True))}
    if real:
        full = pattern_means([{**r, "pattern": NOTHING_MISSING} for r in rows if r["method"] == "real"], "real")
        f = full[NOTHING_MISSING]
    else:
        f = kept.get(NOTHING_MISSING, {}).get("scores", {}).get(ROUTE_FULL)
    if none_direct is not None and f:
        routes[NOTHING_MISSING] = {"route": ROUTE_DIRECT if none_direct["mean"] > f["mean"] else ROUTE_FULL,
                                   "scores": {ROUTE_FULL: f, ROUTE_DIRECT: none_direct},
                                   "m3ae": dict(zip(REGIONS, M3AE[present_of(NOTHING_MISSING)], strict=True))}
    return routes


def table(routes: dict[str, dict]) -> str:
    """The per-pattern markdown table: both routes, the choice, M3AE, the chosen route's gap to M3AE."""
    lines = ["| present | missing | n | direct WT / TC / ET | complete WT / TC / ET | chosen | chosen - M3AE WT / TC / ET "
             "| M3AE WT / TC / ET |", "|---|---|---|---|---|---|---|---|"]
    chosen_all = []
    for pattern, entry in sorted(routes.items(), key=lambda kv: (-len(present_of(kv[0])), kv[0])):
        s = entry["scores"]
        other = ROUTE_COMPLETE if ROUTE_COMPLETE in s else ROUTE_FULL
        pick = s[entry["route"]]
        chosen_all.append([pick[k] for k in REGIONS])
        m = entry["m3ae"]

        def cells(x: dict | None) -> str:
            return " / ".join(f"{x[k]:.3f}" for k in REGIONS) if x else "–"

        gap = " / ".join(f"{pick[k] - m[k]:+.3f}" for k in REGIONS)
        n = max(v["n"] for v in s.values() if v)
        lines.append(f"| {'+'.join(present_of(pattern))} | {pattern} | {n} | {cells(s[ROUTE_DIRECT])} | "
                     f"{cells(s[other])}{' (full)' if other == ROUTE_FULL else ''} | {entry['route']} | {gap} | "
                     f"{cells(m)} |")
    mean = np.mean(chosen_all, axis=0)
    lines.append(f"| **mean of the {len(chosen_all)} patterns** | | | | | | "
                 + " / ".join(f"{a - b:+.3f}" for a, b in zip(mean, M3AE_MEAN, strict=True))
                 + f" | {' / '.join(f'{v:.3f}' for v in M3AE_MEAN)} |")
    lines.append("")
    lines.append(f"Chosen route, mean of the patterns: WT {mean[0]:.3f}, TC {mean[1]:.3f}, ET {mean[2]:.3f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prepare", action="store_true", help="write the complete route's generator manifest and stop")
    p.add_argument("--default", type=Path, help="--prepare: the one-missing generator's manifest")
    p.add_argument("--companion", type=Path, help="--prepare: the companion's validation manifest")
    p.add_argument("--out", type=Path, help="--prepare: where to write them")
    p.add_argument("--companion-targets", nargs="*", default=None, metavar="MODALITY",
                   help="the single missing modalities the companion synthesizes instead of the default (with "
                   "--prepare; or alone, written into the --default manifest in place: the shipped default)")
    p.add_argument("--report", type=Path, nargs="+", help="the evaluate report folders (their rows pooled)")
    p.add_argument("--cases", type=Path, nargs="*", default=[], help="folders of complete case folders")
    p.add_argument("--only", nargs="*", default=[], help="the held-out case IDs (for the complete-case row)")
    p.add_argument("--direct", type=Path, help="the missing-sequence segmenter the report's direct rows used")
    p.add_argument("--write", type=Path, nargs="*", default=[], help="manifests to write the routes into")
    p.add_argument("--routes-from", type=Path, help="copy this manifest's routes into --write (the shipped model "
                   "takes the routes its validation model's held-out scores chose)")
    p.add_argument("--table", type=Path, help="write the markdown table here")
    p.add_argument("--complete-from", type=Path, metavar="MANIFEST",
                   help="keep the complete (and full) route's scores of this manifest's routes block; without "
                   "--report, --direct's route is scored here on --only's cases for every pattern (no synthesis)")
    args = p.parse_args(argv)
    if args.prepare:
        if not (args.default and args.companion and args.out):
            p.error("--prepare needs --default, --companion and --out")
        print(f"wrote {prepare(args.default, args.companion, args.out, args.companion_targets)}")
        return
    if args.companion_targets is not None:
        if not args.default:
            p.error("--companion-targets without --prepare writes into --default: name it")
        write_json_atomic(args.default, set_companion_targets(json.loads(args.default.read_text()),
                                                              args.companion_targets))
        print(f"companion_targets {args.companion_targets} written into {args.default}")
        return
    if args.routes_from:
        routes = json.loads(args.routes_from.read_text()).get("routes")
        if not routes:
            raise SystemExit(f"{args.routes_from}: no routes block (make validate-routes first)")
    else:
        if not ((args.report or args.complete_from) and args.direct):
            p.error("--direct and --report (or --complete-from) are needed (or --routes-from)")
        kept = None
        if args.complete_from:
            kept = json.loads(args.complete_from.read_text()).get("routes")
            if not kept:
                raise SystemExit(f"{args.complete_from}: no routes block to keep the complete route's scores from")
        folders = [f for f in find_case_folders(args.cases) if f.name in set(args.only)]
        if args.report:
            rows = [row for report in args.report for row in report_rows(report)]
            none_direct = full_case_scores(folders, args.direct) if folders else None
        elif folders:
            from brasyn_infer.evaluation.patterns import group

            rows = direct_rows(folders, args.direct, [*group("every"), ()])
            none_direct = pattern_means(rows, "direct").get(NOTHING_MISSING)
            rows = [r for r in rows if r["pattern"] != NOTHING_MISSING]
        else:
            p.error("--complete-from without --report scores the direct route here: name --cases and --only")
        routes = choose(rows, none_direct, kept)
        text = table(routes)
        print(text)
        if args.table:
            write_text_atomic(args.table, text + "\n")
    for manifest in args.write:
        data = json.loads(manifest.read_text())
        if not data.get("availability"):
            raise SystemExit(f"{manifest}: not a missing-sequence segmenter (no availability)")
        data["routes"] = routes
        write_json_atomic(manifest, data)
        print(f"routes written into {manifest}")


if __name__ == "__main__":
    main()

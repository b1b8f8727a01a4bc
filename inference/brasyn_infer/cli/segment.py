"""``brasyn-infer segment INPUT OUTPUT``: parse, call :func:`~brasyn_infer.pipeline.segment.segment_job`, print one
line per case and one ``error:`` line per failed case."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import (
    DeviceOpt,
    QuietOpt,
    ShardOpt,
    WeightsOpt,
    app,
    case_fail_line,
    fail_line,
    log,
    one_line_errors,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device
from brasyn_infer.runtime.segmenter_manifest import Route
from brasyn_infer.segmentation.labels import LabelConvention

LabelsOpt = Annotated[Optional[LabelConvention], typer.Option(
    "--labels", help="Label numbering of the output: 2018 (1 NCR, 2 ED, 4 ET), 2023 (1, 2, 3 ET) or 2024 (1, 2, 3 ET; "
    "4, the resection cavity, is never predicted). Default: from the inputs' file names (BraTS 2018-2021 names: "
    "2018; BraSyn names: 2023).")]


@app.command()
def segment(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders.")],
    output: Annotated[Path, typer.Argument(help="Output folder: OUTPUT/<ID>-seg.nii.gz per case (<ID>_seg.nii.gz for BraTS 2018-2021 names).")],
    segmenter: Annotated[Optional[str], typer.Option("--segmenter", help="Segmenter of complete cases: NAME in weights/ or a manifest .json (brasyn-infer import --kind segmenter); default: the embedded one.")] = None,
    route: Annotated[Route, typer.Option("--route", help="A case that lacks sequences: direct (the missing-sequence segmenter on what is there), complete (synthesize them with --weights, then segment) or auto (per pattern, the route that scored best on held-out cases, as the missing-sequence segmenter's manifest records).")] = Route.AUTO,
    complete: Annotated[bool, typer.Option("--complete", help="Same as --route complete.")] = False,
    direct_segmenter: Annotated[Optional[str], typer.Option("--direct-segmenter", help="The missing-sequence segmenter: NAME in weights/ or a manifest .json; default: the embedded segmenter-any.")] = None,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = Device.AUTO,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cases whose segmentation already loads completely.")] = False,
    shard: ShardOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Segment the tumor of every case in INPUT (labels 1 NCR, 2 edema, 3 or 4 enhancing) into OUTPUT. A case that
    lacks sequences is segmented by the route --route names (auto: the one that scored best for its pattern)."""
    setup_logging(quiet)
    from brasyn_infer.pipeline.segment import SegmentHooks, SegmentOptions, segment_job

    if complete and route not in (Route.AUTO, Route.COMPLETE):
        fail_line(f"--complete with --route {route.value} -- fix: use one of them")
        raise typer.Exit(2)
    options = SegmentOptions(segmenter=segmenter, direct_segmenter=direct_segmenter,
                             route=Route.COMPLETE if complete else route, weights=weights, labels=labels,
                             device=device, resume=resume, shard=shard_or_exit(shard))

    def done(result) -> None:
        if result.ok:
            extra = " (made by this route and models already: skipped)" if result.skipped else (
                f" (after synthesizing {', '.join(m.value for m in result.completed)})" if result.completed else "")
            log.info("%s: wrote %s by route %s (%.1f s)%s", result.case_id, result.output.name, result.route,
                     result.seconds, extra)

    hooks = SegmentHooks(on_case_done=done, on_rule=lambda rule: typer.echo(rule, err=True),
                         on_cases=lambda n: log.info("%d case(s) to segment", n))
    with one_line_errors():
        report = segment_job(input, output, options, hooks)
    for result in report.failed:
        case_fail_line(result.case_id, result.error)
    typer.echo(f"{len(report.results) - len(report.failed)} of {len(report.results)} cases segmented into {output}, "
               f"{len(report.failed)} failed", err=True)
    raise typer.Exit(1 if report.failed else 0)

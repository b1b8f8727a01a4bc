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
    fail_line,
    log,
    one_line_errors,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device
from brasyn_infer.segmentation.labels import LabelConvention

LabelsOpt = Annotated[Optional[LabelConvention], typer.Option(
    "--labels", help="Label numbering of the output: 2018 (1 NCR, 2 ED, 4 ET), 2023 (1, 2, 3 ET) or 2024 (as 2023; "
    "4, the resection cavity, is never predicted). Default: from the inputs' file names (BraTS 2018-2021 names: "
    "2018; BraSyn names: 2023).")]


@app.command()
def segment(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders.")],
    output: Annotated[Path, typer.Argument(help="Output folder: OUTPUT/<ID>-seg.nii.gz per case (<ID>_seg.nii.gz for BraTS 2018-2021 names).")],
    segmenter: Annotated[Optional[str], typer.Option("--segmenter", help="Segmenter NAME in weights/ or a manifest .json (brasyn-infer import --kind segmenter); default: the embedded one.")] = None,
    complete: Annotated[bool, typer.Option("--complete", help="Synthesize the modalities a case lacks first (with --weights), then segment the completed case. Without it a case that lacks one is refused.")] = False,
    weights: WeightsOpt = None,
    labels: LabelsOpt = None,
    device: DeviceOpt = Device.AUTO,
    resume: Annotated[bool, typer.Option("--resume", help="Skip cases whose segmentation already loads completely.")] = False,
    shard: ShardOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Segment the tumor of every case in INPUT (labels 1 NCR, 2 edema, 3 or 4 enhancing) into OUTPUT."""
    setup_logging(quiet)
    from brasyn_infer.pipeline.segment import SegmentHooks, SegmentOptions, segment_job

    options = SegmentOptions(segmenter=segmenter, complete=complete, weights=weights, labels=labels, device=device,
                             resume=resume, shard=shard_or_exit(shard))

    def done(result) -> None:
        if result.ok:
            extra = " (already complete: skipped)" if result.skipped else (
                f" (after synthesizing {', '.join(m.value for m in result.completed)})" if result.completed else "")
            log.info("%s: wrote %s (%.1f s)%s", result.case_id, result.output.name, result.seconds, extra)

    hooks = SegmentHooks(on_case_done=done, on_rule=lambda rule: typer.echo(rule, err=True),
                         on_cases=lambda n: log.info("%d case(s) to segment", n))
    with one_line_errors():
        report = segment_job(input, output, options, hooks)
    for result in report.failed:
        fail_line(f"{result.case_id}: {result.error}")
    typer.echo(f"{len(report.results) - len(report.failed)} of {len(report.results)} cases segmented into {output}, "
               f"{len(report.failed)} failed", err=True)
    raise typer.Exit(1 if report.failed else 0)

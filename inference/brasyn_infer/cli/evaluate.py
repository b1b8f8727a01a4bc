"""``brasyn-infer evaluate``: dry runs on complete cases, scored against the real modality and the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import (
    BatchOpt,
    DeviceOpt,
    EnhanceOpt,
    GuideOpt,
    PriorOpt,
    QuietOpt,
    RefineOpt,
    RefinerOpt,
    ShardOpt,
    ToneOpt,
    TtaOpt,
    ViewOpt,
    WeightsOpt,
    app,
    fail_line,
    one_line_errors,
    setup_logging,
    shard_or_exit,
)
from brasyn_infer.constants import Device
from brasyn_infer.segmentation.labels import LabelConvention


@app.command()
def evaluate(
    data: Annotated[Path, typer.Argument(help="A folder of complete (4-modality) case folders, or one such case (either naming convention).")],
    report_dir: Annotated[Path, typer.Argument(help="Where cases.csv, summary.json, report.md, run.json, linear-stats/ and QC PNGs go; a rerun into it resumes (same weights and options) or is refused.")],
    drop: Annotated[str, typer.Option("--drop", help="What to drop, a comma list of patterns (t1c, or t1c+t2f for two at once) and groups: all (each modality in turn, one missing: the BraSyn setting), pairs (the six two-missing patterns), singles (the four that leave one input), every (all 14). Each synthesized modality is a row, with its pattern.")] = "all",
    baseline: Annotated[str, typer.Option("--baseline", help="Baselines to report beside the model: linear (a per-voxel linear fit for the pattern, fitted on other cases), mean, copy (the most correlated available sequence copied in place: t1c <-> t1n, t2w <-> t2f, then the other pair), a comma list, or none.")] = "linear,mean,copy",
    weights: WeightsOpt = None,
    view: ViewOpt = None,
    batch_size: BatchOpt = None,
    device: DeviceOpt = Device.AUTO,
    only: Annotated[Optional[str], typer.Option("--only", help="Score only these case IDs (comma list); the linear baseline still fits on the other cases of DATA.")] = None,
    fit_on: Annotated[Optional[str], typer.Option("--fit-on", help="Fit the linear baseline on these case IDs only (comma list), e.g. the cases the model was trained on; 'training': those the weights' manifest records. Default: every other case of DATA (leave-one-case-out).")] = None,
    refine: RefineOpt = None,
    refiner: RefinerOpt = None,
    segment: Annotated[bool, typer.Option("--segment", help="Also score downstream segmentation: each completed case (model, copy, linear) and the real one segmented and scored against the expert segmentation (global and lesion-wise Dice and HD95 of WT, TC, ET, by the official brats-evaluation package).")] = False,
    segmenter: Annotated[Optional[str], typer.Option("--segmenter", help="With --segment: a segmenter NAME or manifest (brasyn-infer import --kind segmenter), or 'brats' (the BraTS 2023 winner through the brats package: Docker and an NVIDIA GPU). Default: the embedded one.")] = None,
    direct_segmenter: Annotated[Optional[str], typer.Option("--direct-segmenter", help="With --segment: the missing-sequence segmenter of the `direct` rows (each pattern segmented from the sequences left, no synthesis): NAME or manifest, or none. Default: the embedded segmenter-any where installed.")] = None,
    labels: Annotated[Optional[LabelConvention], typer.Option("--labels", help="Label convention of the -seg files: 2018 (1 NCR, 2 ED, 4 ET), 2023 (1, 2, 3 ET) or 2024 (post-treatment: 1, 2, 3 ET, 4 the resection cavity, not tumor). Default: from the file names (BraTS 2018-2021 names: 2018; BraSyn names: 2023). A label the convention does not define is an error naming the one that fits.")] = None,
    ssim_border: Annotated[str, typer.Option("--ssim-border", help="The organizers' SSIM columns as torchmetrics 1.4.2+ computes them (full: the map averaged over the whole volume) or 1.4.1 and earlier (cropped: without a 5-voxel border). The organizers pin no version.")] = "full",
    save_volumes: Annotated[Optional[Path], typer.Option("--save-volumes", help="Also write each generator output as DIR/<case>/<case>-<mod>.nii.gz, and its uncertainty map (when scored) as <case>-<mod>-uncertainty.nii.gz beside it (e.g. held-out outputs: the refiner's training inputs, the tone correction's fit).")] = None,
    shard: ShardOpt = None,
    uncertainty: Annotated[Optional[bool], typer.Option("--uncertainty/--no-uncertainty", help="Score the uncertainty map (Spearman and top-10% error ratio against the real errors; a QC column). Default: when the weights make a map.")] = None,
    tta: TtaOpt = None,
    prior: PriorOpt = True,
    tone: ToneOpt = True,
    enhance: EnhanceOpt = None,
    guide: GuideOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Dry run: drop each modality from complete cases, synthesize it as `run` does, score it against the real one
    and the baselines.

    With a refiner running, both the generator's output (`model`) and the refined one (`model+refiner`) are scored;
    with the enhancement stage (--enhance), a synthesized t1c is scored before it (`model`) and after (`model+enhance`)."""
    setup_logging(quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brasyn_infer.errors import UsageError
    from brasyn_infer.evaluation.baselines import BASELINES
    from brasyn_infer.evaluation.dry_run import DryRunOptions, Hooks, dry_run
    from brasyn_infer.evaluation.organizers import BORDERS
    from brasyn_infer.evaluation.patterns import parse_drop
    from brasyn_infer.evaluation.report import markdown_table, summarize
    from brasyn_infer.io.cases import list_case_folders
    from brasyn_infer.pipeline.run import check_output_dir
    from brasyn_infer.pipeline.synthesizer import Synthesizer

    chosen = shard_or_exit(shard)
    with one_line_errors():
        names = [] if baseline.strip().lower() == "none" else [b.strip().lower() for b in baseline.split(",") if b.strip()]
        unknown = [b for b in names if b not in BASELINES]
        if unknown:
            raise UsageError(f"unknown baseline {', '.join(unknown)}", fix="use linear, mean, copy, or none")
        if ssim_border not in BORDERS:
            raise UsageError(f"--ssim-border {ssim_border!r}", fix=f"use {' or '.join(BORDERS)}")
        options = DryRunOptions(drops=parse_drop(drop), baselines=names, only=_ids(only), fit_on=_ids(fit_on),
                                segment=segment, save_volumes=save_volumes, shard=chosen, segmenter=segmenter,
                                direct_segmenter=direct_segmenter, labels=labels, ssim_border=ssim_border,
                                device=device)
        check_output_dir(report_dir, data)
        synth = Synthesizer(weights, view, batch_size, device, refine=refine, refiner=refiner, tta=tta, prior=prior,
                            uncertainty=uncertainty, tone=tone, enhance=enhance, guide=guide)
        if chosen is not None:
            typer.echo(chosen.rule(len(list_case_folders(data))), err=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet) as progress:
        task = progress.add_task("dry run", total=None)
        phase = {"name": ""}

        def on_phase(name: str, total: int) -> None:
            phase["name"] = name
            progress.reset(task, total=total, description=name)

        hooks = Hooks(on_phase=on_phase,
                      on_step=lambda what: progress.update(task, advance=1, description=f"{phase['name']}: {what}"),
                      on_warning=lambda w: progress.console.print(f"warning: {w}", markup=False, highlight=False,
                                                                  soft_wrap=True))
        with one_line_errors():
            rows, errors = dry_run(data, report_dir, synth, options, hooks)
    for error in errors:
        fail_line(str(error))
    if rows:
        typer.echo(markdown_table(summarize(rows), ["ssim_brain", "ssim_tumor_organizers", "ssim_non_tumor_organizers",
                                                    "psnr", "mae", *(["dice_wt", "dice_tc", "dice_et"] if segment else [])]))
    if chosen is not None:
        typer.echo(f"shard {chosen.label}: {len(rows)} rows in {report_dir}; when every shard is done, "
                   f"`brasyn-infer summary merge {report_dir}` writes summary.json and report.md", err=True)
    else:
        typer.echo(f"report: {report_dir / 'report.md'} ({len(rows)} rows, {len(errors)} cases skipped)", err=True)
    raise typer.Exit(1 if errors or not rows else 0)


def _ids(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None

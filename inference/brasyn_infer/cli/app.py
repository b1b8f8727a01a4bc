"""The typer application, the options several commands share, and the helpers every command uses.

Commands live one per module beside this one; heavy imports stay inside them so that ``--help`` is instant.
Exit codes: 0 success, 1 a failure (each printed as one ``error:`` line), 2 a usage error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from brasyn_infer.constants import Device, View

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="BraSyn missing-modality synthesis: `brasyn-infer INPUT OUTPUT` writes each case's missing "
    "modality as OUTPUT/<ID>-<mod>.nii.gz.",
    pretty_exceptions_enable=False,
)
summary_app = typer.Typer(help="Run summaries of shards: merge them.", no_args_is_help=True)
app.add_typer(summary_app, name="summary")
log = logging.getLogger("brasyn_infer")


def setup_logging(quiet: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False, markup=False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)


def fail_line(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def case_fail_line(case_id: str, error: BaseException) -> None:
    """A failed case's one line, ``error: <ID>: ...``; when the error's path is the case's own folder (its name is
    the ID), the folder is not named a second time."""
    path = getattr(error, "path", None)
    if path is not None and path.name == case_id and getattr(error, "message", None):
        fix = getattr(error, "fix", None)
        fail_line(f"{case_id}: {error.message}" + (f" -- fix: {fix}" if fix else ""))
    else:
        fail_line(f"{case_id}: {error}")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A usage error (:class:`~brasyn_infer.errors.UsageError`) becomes one line and exit 2, any other
    :class:`~brasyn_infer.errors.BrasynError` one line and exit 1."""
    from brasyn_infer.errors import BrasynError, UsageError

    try:
        yield
    except UsageError as error:
        fail_line(str(error))
        raise typer.Exit(2) from None
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None


def shard_or_exit(option: str | None):
    """The shard to run (None: all cases); a bad value is a usage error: one line, exit 2."""
    import os

    from brasyn_infer.orchestration.shards import ShardError, resolve_shard

    try:
        return resolve_shard(option, os.environ)
    except ShardError as error:
        fail_line(str(error))
        raise typer.Exit(2) from None


WeightsOpt = Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights NAME in weights/ (or $BRASYN_WEIGHTS_DIR), or a path to a manifest .json.")]
ViewOpt = Annotated[Optional[list[View]], typer.Option("--view", help="Slicing view; repeat to generate several views and average them (e.g. --view sagittal --view axial). Default: the manifest's views.", case_sensitive=False)]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", "-b", min=1, help="Slices per model call; default 8 on CPU, 32 on GPU.")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="auto: TensorRT, CUDA, then CPU as available; cuda: CUDA without TensorRT; cpu.", case_sensitive=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; warnings and errors only.")]
RefineOpt = Annotated[Optional[bool], typer.Option("--refine/--no-refine", help="Run the 3D Refiner after the generator; default: the manifest's choice.")]
RefinerOpt = Annotated[Optional[str], typer.Option("--refiner", help="Refiner weights NAME or manifest .json instead of the one the manifest names (implies --refine).")]
EnhanceOpt = Annotated[Optional[bool], typer.Option("--enhance/--no-enhance", help="When t1c is synthesized: give it real t1c's enhancement contrast where the missing-sequence segmenter (the guide) finds enhancing tumor in the other sequences, and where the block says, its necrosis contrast (the manifest's enhance block; the default has one, off). A segmenter then finds the enhancing tumor in the synthesized t1c far better, but SSIM in the tumor falls: see weights/default.md. Default: the manifest's choice.")]
GuideOpt = Annotated[Optional[str], typer.Option("--guide", help="The enhancement stage's missing-sequence segmenter, NAME or manifest .json, instead of the one the manifest names (implies --enhance).")]
Fp16Opt = Annotated[bool, typer.Option("--fp16", help="Let TensorRT build fp16 engines (GPU only; CUDA and CPU stay fp32).")]
TtaOpt = Annotated[Optional[bool], typer.Option("--tta/--no-tta", help="Flip test-time augmentation: each slice also runs flipped and the two are averaged (twice the model's work). Default: the manifest's choice.")]
ToneOpt = Annotated[bool, typer.Option("--tone/--no-tone", help="Where the weights' manifest has a tone curve for the missing modality (a `tone` block, fitted on held-out outputs; the default has none), take the output's brain intensities through it, level for level (every voxel keeps its rank); --no-tone: the intensities as the network made them. Weights without that block are unaffected.")]
PriorOpt = Annotated[bool, typer.Option("--prior/--no-prior", help="Where the weights' manifest has a fitted blend with a linear prior (trust.blend), apply it (the default blends t1c with the prior in its graph), and with several missing the blend toward the stand-in (copy_blend: the companion moves some sequences toward the available one that stands in for them); --no-prior: the generator's output alone. Weights without those blocks are unaffected.")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="Process shard I of N (I from 0): the case folders sorted by name, every one whose position is I mod N. Default: from SLURM_ARRAY_TASK_ID (Slurm arrays) or JOB_COMPLETION_INDEX + BRASYN_SHARDS (Kubernetes Indexed Jobs), else all cases.")]

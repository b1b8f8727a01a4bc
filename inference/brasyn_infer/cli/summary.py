"""``brasyn-infer summary merge``: the shards' run summaries, or an ``evaluate --shard`` report folder, put together."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from brasyn_infer.cli.app import fail_line, summary_app


@summary_app.command("merge")
def summary_merge(
    paths: Annotated[list[Path], typer.Argument(help="The shards' `run --summary` JSON files; or one `evaluate --shard` REPORT_DIR.", exists=True)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the merged run summary here (JSON).")] = None,
) -> None:
    """Merge shards: every case once, with the cases no shard reported and those that failed.

    Exit 0 when every case of INPUT was written (or was already complete), 1 otherwise. Given an
    `evaluate --shard` REPORT_DIR, writes its summary.json and report.md from all shards' rows."""
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.evaluation.dry_run import merge_shard_reports
    from brasyn_infer.evaluation.report import markdown_table
    from brasyn_infer.orchestration.summary import merge_summaries
    from brasyn_infer.runtime.manifest import write_json_atomic

    try:
        if len(paths) == 1 and paths[0].is_dir():
            summary, problems = merge_shard_reports(paths[0])
            typer.echo(markdown_table(summary, ["ssim", "ssim_brain", "ssim_tumor", "psnr", "mae"]))
            for problem in problems:
                fail_line(problem)
            typer.echo(f"report: {paths[0] / 'report.md'}", err=True)
            raise typer.Exit(1 if problems else 0)
        merged = merge_summaries(paths)
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    counts = merged.summary["counts"]
    shards = merged.summary["shards"]
    if out is not None:
        write_json_atomic(out, merged.summary)
    for problem in merged.problems:
        fail_line(problem)
    for record in merged.failed:
        fail_line(f"failed: {record['error']}")
    for name in merged.missing:
        fail_line(f"missing: {name} (no shard reported it)")
    typer.echo(f"{len(merged.summary['all_cases'])} cases in {shards['count']} shards "
               f"({len(shards['reported'])} reported{', missing shards ' + ','.join(map(str, shards['missing'])) if shards['missing'] else ''}): "
               f"{counts['written']} written, {counts['skipped']} already complete, {counts['failed']} failed, "
               f"{counts['missing']} missing" + (f"; merged summary: {out}" if out else ""))
    raise typer.Exit(0 if merged.ok else 1)

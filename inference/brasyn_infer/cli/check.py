"""``brasyn-infer check INPUT``: the input checks alone, one line per warning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brasyn_infer.cli.app import app, fail_line


@app.command()
def check(
    input: Annotated[Path, typer.Argument(help="A case folder, or a folder of case folders (three or four modalities).")],
) -> None:
    """Check the inputs before spending compute: BraTS grid and spacing, skull stripping, raw intensities,
    co-registration. One line per warning; exit 0 when clean, 1 otherwise."""
    from brasyn_infer.errors import BrasynError
    from brasyn_infer.io.checks import check_folders

    try:
        findings = list(check_folders(input))
    except BrasynError as error:
        fail_line(str(error))
        raise typer.Exit(1) from None
    flagged = 0
    for _folder, warnings, error in findings:
        if error is not None:
            fail_line(str(error))
        for warning in warnings:
            typer.echo(f"warning: {warning}")
        flagged += bool(error or warnings)
    typer.echo(f"{len(findings)} cases checked: {len(findings) - flagged} clean, {flagged} with warnings or errors", err=True)
    raise typer.Exit(1 if flagged else 0)

"""Run summaries for orchestrators (``run --summary FILE``) and merging the shards' summaries.

A summary is one JSON object: what ran (versions, the weights' sha256), the shard and the full list of
INPUT's case folders (so that a merge can tell which cases no shard reported), and one record per case
of this shard: ``status`` (``written``, ``skipped``: already complete under ``--resume``, ``failed``),
``seconds``, ``output`` or ``error`` (the one line the CLI printed).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brasyn_infer.errors import BrasynError
from brasyn_infer.orchestration.shards import Shard

FORMAT = "brasyn-infer.run-summary/1"
WRITTEN, SKIPPED, FAILED = "written", "skipped", "failed"


def versions() -> dict[str, str]:
    """The versions a result depends on."""
    import nibabel
    import numpy

    from brasyn_infer import __version__

    found = {"brasyn-infer": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
             "nibabel": nibabel.__version__}
    try:
        from brasyn_infer.runtime.sessions import onnxruntime

        found["onnxruntime"] = onnxruntime().__version__
    except BrasynError:
        found["onnxruntime"] = "absent"
    return found


def case_record(case_id: str, folder: str, status: str, seconds: float, output: Path | None,
                error: str | None) -> dict[str, Any]:
    return {"case": case_id, "folder": folder, "status": status, "seconds": round(seconds, 3),
            "output": str(output) if output is not None else None, "error": error}


def run_summary(*, input_dir: Path, output_dir: Path, shard: Shard | None, all_folders: Sequence[str],
                records: Sequence[dict[str, Any]], weights: dict[str, Any] | None, started: float,
                error: str | None = None) -> dict[str, Any]:
    """The summary of one process's run (``started``: a ``time.time()``)."""
    failed = sum(r["status"] == FAILED for r in records)
    return {
        "format": FORMAT,
        "input": str(input_dir), "output": str(output_dir),
        "shard": {"index": shard.index, "count": shard.count, "source": shard.source} if shard else None,
        "all_cases": sorted(all_folders),
        "weights": weights,
        "versions": versions(),
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": _iso(started), "finished": _iso(time.time()),
        "error": error,
        "counts": {s: sum(r["status"] == s for r in records) for s in (WRITTEN, SKIPPED, FAILED)},
        "exit_code": 1 if (error or failed) else 0,
        "cases": list(records),
    }


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def check_summary_path(summary: Path, output_dir: Path) -> None:
    """The summary never goes inside OUTPUT: OUTPUT holds only the predictions."""
    out, target = output_dir.resolve(), summary.resolve()
    if out == target or out in target.parents:
        raise BrasynError("the summary file is inside the output folder", summary,
                          "write it elsewhere (OUTPUT must hold only <ID>-<mod>.nii.gz files)")


@dataclass
class Merged:
    """Shards' summaries put together."""

    summary: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.failed or self.problems)


def merge_summaries(paths: Iterable[Path]) -> Merged:
    """One summary from the shards': every case of INPUT once, with what is missing and what failed."""
    loaded = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise BrasynError(f"cannot read a run summary ({error})", path, "pass files written by --summary") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BrasynError("not a brasyn-infer run summary", path, "pass files written by run --summary")
        loaded.append((Path(path), data))
    if not loaded:
        raise BrasynError("no summaries to merge", fix="pass the shards' --summary files")
    problems: list[str] = []
    everything = sorted(set().union(*(d["all_cases"] for _, d in loaded)))
    for path, data in loaded:
        if sorted(data["all_cases"]) != everything:
            problems.append(f"{path}: saw a different set of case folders in INPUT ({len(data['all_cases'])} "
                            f"vs {len(everything)}): were the shards run on the same INPUT?")
        if data.get("error"):
            problems.append(f"{path}: {data['error']}")
    hashes = {(d.get("weights") or {}).get("sha256") for _, d in loaded} - {None}
    if len(hashes) > 1:
        problems.append(f"the shards ran different weights (sha256 {', '.join(sorted(h[:12] for h in hashes))})")
    counts = {(d["shard"] or {}).get("count", 1) for _, d in loaded}
    if len(counts) > 1:
        problems.append(f"the shards disagree on the number of shards ({sorted(counts)})")
    by_folder: dict[str, dict[str, Any]] = {}
    for path, data in loaded:
        for record in data["cases"]:
            if record["folder"] in by_folder:
                problems.append(f"{record['folder']} was reported twice ({path})")
            by_folder[record["folder"]] = record
    count = max(counts)
    seen = sorted({(d["shard"] or {}).get("index", 0) for _, d in loaded})
    missing_shards = [i for i in range(count) if i not in seen]
    missing = [name for name in everything if name not in by_folder]
    cases = [by_folder[name] for name in everything if name in by_folder]
    failed = [r for r in cases if r["status"] == FAILED]
    first = loaded[0][1]
    summary = {
        "format": FORMAT,
        "merged_from": [str(p) for p, _ in loaded],
        "input": first["input"], "output": first["output"],
        "shards": {"count": count, "reported": seen, "missing": missing_shards},
        "all_cases": everything,
        "weights": first.get("weights"),
        "versions": first.get("versions"),
        "counts": {s: sum(r["status"] == s for r in cases) for s in (WRITTEN, SKIPPED, FAILED)} | {"missing": len(missing)},
        "missing": missing,
        "problems": problems,
        "exit_code": 0 if not (missing or failed or problems) else 1,
        "cases": cases,
    }
    return Merged(summary, missing, failed, problems)

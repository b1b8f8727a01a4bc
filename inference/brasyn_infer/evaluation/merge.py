"""``brasyn-infer summary merge REPORT_DIR``: one report from the rows of every shard of one dry run."""

from __future__ import annotations

import json
from pathlib import Path

from brasyn_infer.errors import BrasynError
from brasyn_infer.evaluation.report import read_rows, write_reports


def merge_shard_reports(report_dir: Path) -> tuple[dict, list[str]]:
    """``summary.json`` and ``report.md`` of every shard's rows in ``report_dir`` (of the shard count run.json
    records); returns the summary and the problems (shards that did not report, cases without rows, case errors)."""
    identity = {}
    try:
        identity = json.loads((report_dir / "run.json").read_text())
    except (OSError, ValueError):
        pass
    count = identity.get("shards")
    sidecars = sorted(report_dir.glob(f"shard-*-of-{count}.json" if count else "shard-*-of-*.json"))
    if not sidecars:
        raise BrasynError("no shard reports (shard-I-of-N.json) in this folder", report_dir,
                          "pass the REPORT_DIR that `evaluate --shard` wrote into")
    shards = [json.loads(p.read_text()) for p in sidecars]
    counts = {s["shard"]["count"] for s in shards}
    if len(counts) > 1:
        raise BrasynError(f"holds shards of different counts ({', '.join(map(str, sorted(counts)))})", report_dir,
                          "merge one run's shards: evaluate each shard count into its own REPORT_DIR")
    count = counts.pop()
    seen = {s["shard"]["index"] for s in shards}
    problems = [f"shard {i}/{count} did not report (no shard-{i}-of-{count}.json)" for i in range(count) if i not in seen]
    problems += [f"shard {s['shard']['index']}/{s['shard']['count']}: {e}" for s in shards for e in s["errors"]]
    rows = [row for s in shards for row in read_rows(report_dir / s["csv"])]
    scored = {r["case"] for r in rows}
    problems += [f"{case}: no scores (did its shard finish?)" for s in shards for case in s["cases"] if case not in scored]
    summary = write_reports(rows, report_dir, shards[0]["label"], identity.get("ssim_border", "full"))
    return summary, problems


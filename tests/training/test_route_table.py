"""training/route_table.py: the route per pattern is the one with the higher held-out mean Dice (direct on a tie),
each case counted once per pattern, both routes' scores and M3AE's figure kept beside the choice."""

from __future__ import annotations

import json

import pytest

from training.route_table import M3AE, choose, main, present_of, table


def row(case, pattern, modality, method, wt, tc, et):
    return {"case": case, "pattern": pattern, "modality": modality, "method": method,
            "dice_wt": wt, "dice_tc": tc, "dice_et": et}


ROWS = [
    # t1c missing: direct wins on ET
    row("A", "t1c", "t1c", "model", 0.8, 0.4, 0.1), row("A", "t1c", "t1c", "direct", 0.8, 0.6, 0.5),
    row("B", "t1c", "t1c", "model", 0.8, 0.4, 0.2), row("B", "t1c", "t1c", "direct", 0.8, 0.7, 0.4),
    # t2w missing: complete wins
    row("A", "t2w", "t2w", "model", 0.9, 0.8, 0.8), row("A", "t2w", "t2w", "direct", 0.7, 0.7, 0.7),
    # two missing: the model row repeats per synthesized sequence; counted once per case
    row("A", "t1c+t2f", "t1c", "model", 0.5, 0.5, 0.5), row("A", "t1c+t2f", "t2f", "model", 0.5, 0.5, 0.5),
    row("A", "t1c+t2f", "t1c", "direct", 0.5, 0.5, 0.5), row("A", "t1c+t2f", "t2f", "direct", 0.5, 0.5, 0.5),
    row("A", "t1c", "t1c", "real", 0.9, 0.9, 0.9), row("B", "t1c", "t1c", "real", 0.9, 0.8, 0.7),
]


def test_each_pattern_takes_the_better_route_and_a_tie_goes_direct():
    routes = choose(ROWS, {"wt": 0.85, "tc": 0.8, "et": 0.8, "mean": 0.8167, "n": 2})
    assert routes["t1c"]["route"] == "direct" and routes["t2w"]["route"] == "complete"
    assert routes["t1c+t2f"]["route"] == "direct"  # equal means: the cheaper route
    assert routes["t1c"]["scores"]["direct"] == {"wt": 0.8, "tc": 0.65, "et": 0.45, "mean": 0.6333, "n": 2}
    assert routes["t1c+t2f"]["scores"]["complete"]["n"] == 1
    assert routes["none"]["route"] == "full"  # real 0.8667 beats the direct segmenter's 0.8167 on complete cases
    assert routes["t1c"]["m3ae"] == dict(zip(("wt", "tc", "et"), M3AE[("t1n", "t2f", "t2w")], strict=True))
    text = table(routes)
    assert "| t1n+t2f+t2w | t1c | 2 | 0.800 / 0.650 / 0.450 | 0.800 / 0.400 / 0.150 | direct |" in text


def test_present_of_a_pattern():
    assert present_of("t1c+t2f") == ("t1n", "t2w") and present_of("none") == ("t1c", "t1n", "t2f", "t2w")


def test_routes_are_written_only_into_a_missing_sequence_segmenter(tmp_path):
    source = tmp_path / "val.json"
    source.write_text(json.dumps({"availability": True, "routes": choose(ROWS, None)}))
    target = tmp_path / "final.json"
    target.write_text(json.dumps({"availability": True}))
    main(["--routes-from", str(source), "--write", str(target)])
    assert json.loads(target.read_text())["routes"]["t1c"]["route"] == "direct"
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"availability": False}))
    with pytest.raises(SystemExit, match="not a missing-sequence segmenter"):
        main(["--routes-from", str(source), "--write", str(plain)])


def test_companion_targets_are_written_in_channel_order_and_checked(tmp_path):
    """The single missing modalities the companion takes over (issue 41): written into a copy of the default for the
    validation routes, or into the shipped default in place; refused without a companion or for a non-modality."""
    from training.route_table import set_companion_targets

    data = {"name": "d", "onnx": "d.onnx", "companion": "default-any"}
    assert set_companion_targets(dict(data), ["t2w", "t1c"])["companion_targets"] == ["t1c", "t2w"]
    assert "companion_targets" not in set_companion_targets({**data, "companion_targets": ["t1c"]}, [])
    with pytest.raises(SystemExit, match="no companion"):
        set_companion_targets({"name": "d"}, ["t1c"])
    with pytest.raises(SystemExit, match="not modalities: flair"):
        set_companion_targets(dict(data), ["flair"])
    default = tmp_path / "default.json"
    default.write_text(json.dumps(data))
    (tmp_path / "d.onnx").write_bytes(b"graph")
    main(["--companion-targets", "t1c", "--default", str(default)])
    assert json.loads(default.read_text())["companion_targets"] == ["t1c"]
    main(["--prepare", "--default", str(default), "--companion", str(tmp_path / "c.json"), "--companion-targets",
          "--out", str(tmp_path / "val")])
    prepared = json.loads((tmp_path / "val" / "default.json").read_text())
    assert "companion_targets" not in prepared and prepared["companion"] == str((tmp_path / "c.json").resolve())


def test_a_new_direct_segmenter_is_scored_here_against_the_kept_complete_scores():
    """`--complete-from`: the complete route's scores of an earlier routes block stand where the rows have none; the
    route is chosen again against the new direct scores (and the full route's for complete cases)."""
    old = choose(ROWS, {"wt": 0.85, "tc": 0.8, "et": 0.8, "mean": 0.8167, "n": 2})
    new_rows = [row("A", "t1c", "t1c", "direct", 0.6, 0.3, 0.1), row("A", "t2w", "t2w", "direct", 0.95, 0.9, 0.9)]
    routes = choose(new_rows, {"wt": 0.9, "tc": 0.9, "et": 0.9, "mean": 0.9, "n": 2}, kept=old)
    assert routes["t1c"]["route"] == "complete" and routes["t2w"]["route"] == "direct"
    assert routes["t1c"]["scores"]["complete"] == old["t1c"]["scores"]["complete"]
    assert routes["t1c"]["scores"]["direct"]["n"] == 1
    assert routes["none"]["route"] == "direct" and routes["none"]["scores"]["full"] == old["none"]["scores"]["full"]


@pytest.mark.slow
def test_direct_rows_score_every_pattern_on_what_it_leaves(tmp_path):
    """Each case once per pattern (14 patterns of missing sequences), the segmenter given only the sequences that
    remain; `main` writes the routes into the manifest from those rows and the kept complete scores."""
    from tests.conftest import HAS_TORCH, make_case

    if not HAS_TORCH:
        pytest.skip("torch is not installed (install the [torch] extra)")
    import torch

    from brasyn_infer.authoring.models.segmenter_export import export_segmenter
    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig
    from training.route_table import direct_rows

    torch.manual_seed(0)
    manifest = export_segmenter(UNet2D(UNetConfig(in_channels=16, widths=(4, 8))), tmp_path / "w", "any",
                                context=1, availability=True)
    cases = tmp_path / "cases"
    make_case(cases, "C-0", missing="none", seg=True)
    rows = direct_rows([cases / "C-0"], manifest)
    assert len(rows) == 14 and len({r["pattern"] for r in rows}) == 14
    assert {r["method"] for r in rows} == {"direct"} and all(0 <= r["dice_wt"] <= 1 for r in rows)
    kept = tmp_path / "old.json"
    kept.write_text(json.dumps({"availability": True, "routes": choose(ROWS, {"wt": 0.8, "tc": 0.8, "et": 0.8,
                                                                              "mean": 0.8, "n": 2})}))
    main(["--complete-from", str(kept), "--direct", str(manifest), "--cases", str(cases), "--only", "C-0",
          "--write", str(manifest), "--table", str(tmp_path / "routes.md")])
    routes = json.loads(manifest.read_text())["routes"]
    assert routes["t2w"]["scores"]["complete"] == json.loads(kept.read_text())["routes"]["t2w"]["scores"]["complete"]
    assert len(routes) == 15 and routes["t1n+t2f+t2w"]["scores"]["complete"] is None
    assert "| t1c+t1n+t2f+t2w | none |" in (tmp_path / "routes.md").read_text()

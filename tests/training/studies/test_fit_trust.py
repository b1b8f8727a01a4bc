"""fit_trust on leave-one-case-out folds of a model without its own prior or scale: the trust block it writes
loads and runs through the product."""

import json

from tests.conftest import make_case, needs_torch


@needs_torch
def test_fit_trust_writes_a_block_the_product_runs(tmp_path):
    import torch

    from brasyn_infer.authoring.models.export import export
    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
    from brasyn_infer.constants import View
    from brasyn_infer.pipeline.synthesizer import Synthesizer
    from brasyn_infer.synthesis.trust import Trust
    from training.studies.fit_trust import main

    torch.manual_seed(0)
    normalization = {"scheme": "percentile", "percentile": 99.5,
                     "reference_scale": {m: 1000.0 for m in ("t1c", "t1n", "t2f", "t2w")}}
    for case in ("A-1", "B-2"):
        make_case(tmp_path / "cases", case, missing="none", seg=case == "A-1")
        export(HFGAN(HFGANConfig(dim=8)), tmp_path / "folds" / f"fold-{case}", "fold", normalization=normalization,
               default_view=View.AXIAL, views=(View.AXIAL, View.CORONAL))
    target = export(HFGAN(HFGANConfig(dim=8)), tmp_path / "w", "mine", normalization=normalization,
                    default_view=View.AXIAL, views=(View.AXIAL, View.CORONAL))
    main(["--cases", str(tmp_path / "cases"), "--folds", str(tmp_path / "folds"), "--out", str(tmp_path / "trust"),
          "--no-flip", "--write", str(target.path)])
    block = json.loads(target.path.read_text())["trust"]
    trust = Trust.from_manifest(block)
    assert set(trust.linear) == set(trust.blend) and trust.uncertainty and (tmp_path / "trust" / "trust.md").is_file()
    from brasyn_infer.constants import MODALITIES, Modality
    from tests.conftest import brain_volume

    volumes = {m: brain_volume(seed=i, scale=900.0 + 100 * i) for i, m in enumerate(MODALITIES) if m is not Modality.T2F}
    stages = Synthesizer(target.path, uncertainty=True).synthesize_stages(volumes, Modality.T2F)
    assert stages["generator"].shape == volumes[Modality.T1C].shape and (stages["uncertainty"] >= 0).all()

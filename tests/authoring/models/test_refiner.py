"""The 3D Refiner: shapes, residual form, modality selection, and ONNX == torch."""

import io

import numpy as np

from tests.conftest import needs_torch

pytestmark = needs_torch


def small():
    import torch

    from brasyn_infer.authoring.models.refiner import Refiner, RefinerConfig

    torch.manual_seed(0)
    return Refiner(RefinerConfig(width=8, levels=2, decoder_convs=1)).eval()


def test_shape_and_residual_form():
    import torch

    net = small()
    x = torch.randn(2, 4, 16, 16, 12)
    missing = torch.tensor([2.0, 0.0])
    with torch.no_grad():
        y = net(x, missing)
        for p in net.decoder[-1].parameters():
            p.zero_()
        identity = net(x, missing)
    assert y.shape == (2, 1, 16, 16, 12)
    torch.testing.assert_close(identity[:, 0], torch.stack([x[0, 2], x[1, 0]]))  # zero residual -> input


def test_missing_index_selects_the_synthesized_channel():
    import torch

    net = small()
    x = torch.randn(1, 4, 8, 8, 8)
    with torch.no_grad():
        outs = [net(x, torch.tensor([float(m)])) for m in range(4)]
    assert all(not torch.allclose(outs[0], o) for o in outs[1:])
    x2 = x.clone()
    x2[0, 1] += 5  # t1n changes: its own refinement depends on it, others via attention
    with torch.no_grad():
        assert not torch.allclose(net(x2, torch.tensor([1.0])), outs[1])


def test_onnx_matches_torch_with_dynamic_shapes():
    import onnxruntime as ort
    import torch

    net = small()
    buffer = io.BytesIO()
    example = (torch.randn(1, 4, 16, 16, 16), torch.tensor([3.0]))
    with torch.no_grad():
        torch.onnx.export(net, example, buffer, input_names=["x", "missing"], output_names=["y"], opset_version=17,
                          dynamo=False, dynamic_axes={"x": {0: "b", 2: "d", 3: "h", 4: "w"}, "missing": {0: "b"},
                                                      "y": {0: "b", 2: "d", 3: "h", 4: "w"}})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 4, 24, 16, 8)
    missing = torch.tensor([0.0, 2.0])
    with torch.no_grad():
        expected = net(x, missing).numpy()
    got = session.run(None, {"x": x.numpy(), "missing": missing.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4

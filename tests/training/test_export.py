"""ONNX export equals the torch model (pixel and spatial interfaces, dynamic sizes, fp16 storage)."""
import numpy as np
import pytest
import torch

from training.export_onnx import export_onnx, run_onnx
from training.nets import build


@pytest.mark.parametrize('name', ['cae1d_cr4', 'cae1d_cr8', 'hycot_cr4', 'sscnet_cr128', 'sscnet_cr051', 'cae3d_cr32',
                                  'cae3d_cr4'])
def test_onnx_equals_torch(name):
    torch.manual_seed(0)
    net = build(name).eval()
    if name.startswith('cae3d'):  # non-trivial BatchNorm statistics
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    encoder, decoder = export_onnx(net)
    with torch.no_grad():
        if net.kind == 'pixel':
            x = torch.rand(37, 202)  # another n than at export
            y, x_hat = net.encode_pixels(x), None
            x_hat = net.decode_pixels(y)
        else:
            x = torch.rand(1, 202, 24, 40)  # another H, W than at export
            y = net.compress(x)
            x_hat = net.decompress(y)
    y_onnx = run_onnx(encoder, x.numpy())
    assert y_onnx.shape == tuple(y.shape)
    np.testing.assert_allclose(y_onnx, y.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(run_onnx(decoder, y.numpy()), x_hat.numpy(), atol=1e-4, rtol=1e-4)
    assert [i.name for i in encoder.graph.input] == ['x'] and [i.name for i in decoder.graph.input] == ['y']


def test_fp16_storage_halves_the_file_and_matches_rounded_weights():
    torch.manual_seed(1)
    net = build('sscnet_cr128').eval()
    full = export_onnx(net)[1].ByteSize()
    encoder, decoder = export_onnx(net, fp16=True)
    assert decoder.ByteSize() < 0.55 * full
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.half().float())
        x = torch.rand(1, 202, 16, 16)
        y = net.compress(x)
    np.testing.assert_allclose(run_onnx(encoder, x.numpy()), y.numpy(), atol=1e-4, rtol=1e-4)

"""rdnet2's transform: exactly invertible for any lifting weights, the latent layout the codec expects, ONNX equals
torch, and per-subband scales shared by the polyphase parts."""
import numpy as np
import pytest
import torch

from training.export_onnx import run_onnx
from training.export_rdnet import export_graphs
from training.nets.rdnet2 import RDNet2, subband_layout


def _net(levels=3, channels=202, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(202, 202)))
    return RDNet2(202, channels, levels=levels, basis=q.astype(np.float32)).eval()


def test_the_layout_has_4_to_the_levels_channels_per_component():
    for levels in (2, 3, 4):
        assert sum(count for _level, _name, count in subband_layout(levels)) == 4 ** levels
    assert subband_layout(3)[:2] == [(3, 'LL', 1), (3, 'HL', 1)] and subband_layout(3)[-1] == (1, 'HH', 16)


@pytest.mark.parametrize('height, width', [(32, 32), (16, 40)])
def test_the_transform_is_exactly_invertible_even_with_other_lifting_weights(height, width):
    net = _net()
    x = torch.rand(2, 202, height, width)
    with torch.no_grad():
        for _trial in range(2):
            y = net.compress(x)
            assert y.shape == (2, 202 * 64, height // 8, width // 8)
            np.testing.assert_allclose(net.decompress(y).numpy(), x.numpy(), atol=2e-5)
            net.lifting.add_(0.05)


def test_subband_gains_make_the_synthesis_close_to_orthonormal():
    net = _net()
    z = torch.randn(1, 202 * 64, 8, 8)
    with torch.no_grad():
        ratio = float((net.decompress(z) - net.mean[None, :, None, None]).square().sum() / z.square().sum())
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_scales_are_shared_by_the_polyphase_parts_of_a_subband():
    net = _net(channels=4)
    with torch.no_grad():
        net.log_scales.copy_(torch.arange(40, dtype=torch.float32).reshape(4, 10))
    scales = torch.log(net.scales()).reshape(4, 64)
    assert scales[1, 0] == 10 and scales[1, 4:8].tolist() == [14.0] * 4 and scales[1, -16:].tolist() == [19.0] * 16


def test_onnx_equals_torch_at_another_size():
    net = _net(channels=24)
    with torch.no_grad():
        net.lifting.add_(0.05)
    encoder, decoder = export_graphs(net)
    x = torch.rand(1, 202, 24, 48)
    with torch.no_grad():
        y = net.compress(x)
        x_hat = net.decompress(y)
    np.testing.assert_allclose(run_onnx(encoder, x.numpy()), y.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(run_onnx(decoder, y.numpy()), x_hat.numpy(), atol=1e-4, rtol=1e-4)

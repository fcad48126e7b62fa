"""rdnet: invertible start, ONNX equals torch, training with resume, and the training-side rate estimate agreeing
with the bytes the codec writes."""
import csv
import os

import numpy as np
import pytest
import torch

from enmap_compress.plugin.core import latent as core_latent
from enmap_compress.plugin.core.modelmeta import ModelMetadata
from training.export_onnx import run_onnx
from training.export_rdnet import export_graphs, package_meta, rd_cost
from training.nets.rdnet import RDNet, haar_block_basis
from training.train_rdnet import train


def _orthonormal_basis(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(202, 202)))
    return q.astype(np.float32)


def _random_net(seed=0):
    torch.manual_seed(seed)
    net = RDNet(202, 24, basis=_orthonormal_basis(seed)).eval()
    with torch.no_grad():
        net.analysis_block.add_(0.05 * torch.randn_like(net.analysis_block))
        net.synthesis_block.add_(0.05 * torch.randn_like(net.synthesis_block))
        net.log_scales.normal_(-3, 1)
    return net


def test_haar_block_basis_is_orthonormal_and_starts_with_the_block_mean():
    basis = haar_block_basis(8)
    np.testing.assert_allclose((basis @ basis.T).numpy(), np.eye(64), atol=1e-6)
    np.testing.assert_allclose(basis[0].numpy(), np.full(64, 1 / 8), atol=1e-7)
    assert np.abs(basis[-1].numpy()).max() == pytest.approx(0.5)  # a finest HH filter covers 2 x 2 pixels


@pytest.mark.parametrize('height, width', [(32, 32), (16, 40)])
def test_initial_transform_is_perfectly_invertible(height, width):
    net = RDNet(202, 202, basis=_orthonormal_basis()).eval()
    x = torch.rand(2, 202, height, width)
    with torch.no_grad():
        y = net.compress(x)
        assert y.shape == (2, 202 * 64, height // 8, width // 8)
        np.testing.assert_allclose(net.decompress(y).numpy(), x.numpy(), atol=2e-5)


def test_onnx_equals_torch_at_another_size():
    net = _random_net()
    encoder, decoder = export_graphs(net)
    x = torch.rand(1, 202, 24, 48)
    with torch.no_grad():
        y, x_hat = net.compress(x), net.decompress(net.compress(x))
    np.testing.assert_allclose(run_onnx(encoder, x.numpy()), y.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(run_onnx(decoder, y.numpy()), x_hat.numpy(), atol=1e-4, rtol=1e-4)
    assert {n.op_type for n in encoder.graph.node} <= {'Conv', 'Tile', 'Constant', 'Identity'}
    assert encoder.ByteSize() < 200_000  # the shared block filters are stored once, not once per channel


def test_training_runs_logs_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    cubes = (rng.random((3, 202, 16, 16), dtype=np.float32), rng.random((1, 202, 16, 16), dtype=np.float32))
    run = str(tmp_path / 'run')
    train(run, steps=2, batch=2, threads=1, channels=16, log_every=2, log=lambda m: None, cubes=cubes)
    messages = []
    train(run, steps=4, batch=2, threads=1, channels=16, log_every=2, log=messages.append, cubes=cubes)
    assert messages[0] == 'resumed from step 2'
    state = torch.load(os.path.join(run, 'last.pt'), weights_only=True)
    assert state['step'] == 4 and state['config'] == {'channels': 16, 'tied': True}
    with open(os.path.join(run, 'log.csv'), newline='') as handle:
        assert [r['step'] for r in csv.DictReader(handle)] == ['2', '4']


@pytest.mark.parametrize('step', [0.05, 0.01])
def test_training_rate_estimate_matches_the_codecs_bytes(step):
    """The prior bits rd_cost optimises are what the codec's fixed-table coder writes (within ANS overhead)."""
    net = _random_net(1)
    x = np.clip(np.random.default_rng(2).normal(0.3, 0.1, (1, 202, 64, 64)), 0, 1).astype(np.float32)
    with torch.no_grad():  # a prior that fits the data, as after training (a mismatched one escapes a lot)
        y = net.compress(torch.from_numpy(x))
        net.log_scales.copy_(torch.log(y.abs().mean(dim=(0, 2, 3)).clamp(min=1e-6)))
    bits, _mse = rd_cost(net, x, step, 0.1, 0.0, 0.05)
    meta = ModelMetadata.from_json(package_meta(net, [step], [(0.1, 0.05)], {}))
    coder = core_latent.PriorLatentCoder(meta.quality_levels[0], meta.entropy_model)
    geometry = core_latent.LatentGeometry(24 * 64, np.ones(64, bool))  # the codec's view of the latent
    symbols, data = coder.encode(y[0].reshape(24 * 64, -1).numpy(), geometry)
    coded_bits = 8 * len(data) / x.size
    assert coded_bits == pytest.approx(bits, rel=0.02, abs=64 / x.size)
    np.testing.assert_array_equal(coder.decode(data, geometry), symbols)

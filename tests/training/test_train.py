"""A 2-step training smoke test with resume (in-memory data, so no shared data is needed)."""
import csv
import os

import numpy as np
import pytest
import torch

from training.train_model import train


@pytest.mark.parametrize('variant, shape', [('cae1d_cr4', (300, 202)), ('sscnet_cr128', (4, 202, 16, 16))])
def test_two_steps_then_resume(variant, shape, tmp_path):
    source = np.random.default_rng(0).random(shape, dtype=np.float32)
    run = str(tmp_path / 'run')
    train(variant, run, epochs=1, steps=2, batch=4, qat_from=1, source=source, threads=1, log=lambda m: None)
    state = torch.load(os.path.join(run, 'last.pt'), weights_only=True)
    assert state['epoch'] == 0 and 'channel_scale' not in state
    messages = []
    net, scale = train(variant, run, epochs=2, steps=2, batch=4, qat_from=1, source=source, threads=1,
                       log=messages.append)
    assert messages[0].startswith(f'resumed {variant} from epoch 1')
    state = torch.load(os.path.join(run, 'last.pt'), weights_only=True)
    assert state['epoch'] == 1 and state['channel_scale'].numel() == net.latent_channels
    assert set(state['optimizer']) == {'state', 'param_groups'}
    with open(os.path.join(run, 'log.csv'), newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [r['epoch'] for r in rows] == ['0', '1'] and [r['qat'] for r in rows] == ['0', '1']


def test_learning_rate_warms_up_then_decays_to_the_floor():
    from training.train_model import learning_rate

    rates = [learning_rate(1e-3, s, 100, 'cosine', warmup=10) for s in range(101)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) <= 1e-3
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[100] == pytest.approx(2e-5)
    assert learning_rate(1e-3, 50, 100) == 1e-3


def _smooth_cubes(n=4, size=16):
    rng = np.random.default_rng(3)
    spectra = rng.random((3, 202)).astype(np.float32) * 0.4 + 0.05
    yy, xx = np.mgrid[0:size, 0:size] / size
    cubes = []
    for _ in range(n):
        a = np.stack([np.sin(2 * np.pi * (rng.random() * yy + rng.random() * xx + rng.random())) + 1.2
                      for _ in range(3)])
        a /= a.sum(axis=0)
        cubes.append(np.tensordot(spectra.T, a, axes=1))
    return np.stack(cubes).astype(np.float32)


def test_sscnet_smart_init_starts_from_a_useful_map():
    from training.nets import build
    from training.smart_init import init_sscnet

    cubes = _smooth_cubes()
    x = torch.from_numpy(cubes)
    torch.manual_seed(0)
    net = build('sscnet_cr128')
    with torch.no_grad():
        before = -10 * np.log10(float(((net(x) - x) ** 2).mean()))
    after = init_sscnet(net, cubes, k=8)
    assert after > before + 5 and after > 20
    assert set(net.state_dict()) == set(build('sscnet_cr128').state_dict())


def test_cae3d_smart_init_and_frozen_batchnorm(tmp_path):
    from training.nets import build
    from training.smart_init import init_cae3d
    from training.train_model import set_mode

    net = build('cae3d_cr32')
    x = torch.from_numpy(_smooth_cubes(2))
    init_cae3d(net, [x])
    stats = {k: v.clone() for k, v in net.state_dict().items() if 'running' in k}
    set_mode(net, True, freeze_bn=True)
    assert net.training and not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d))
    loss = ((net(x) - x) ** 2).mean()
    loss.backward()
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in stats.items())
    run = str(tmp_path / 'run')
    train('cae3d_cr32', run, epochs=1, steps=1, batch=1, qat_from=1, source=_smooth_cubes(2), threads=1,
          log=lambda m: None, init='smart', freeze_bn=True, schedule='cosine', warmup=1, bf16=True)
    state = torch.load(os.path.join(run, 'last.pt'), weights_only=True)
    assert '"init": "smart"' in state['config'] and '"freeze_bn": true' in state['config']
    assert '"bf16": true' in state['config']
    assert all(v.dtype != torch.bfloat16 for v in state['model'].values())

"""A 2-step training smoke test with resume (in-memory data, so no shared data is needed)."""
import csv
import os

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from training.train_model import train  # noqa: E402


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

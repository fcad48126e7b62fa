"""Compact checkpoints (training/checkpoint.py): size budget, safe loading, and resuming the committed ones."""
import csv
import os
import shutil

import numpy as np
import pytest
import torch

from training.checkpoint import BUDGET_BYTES, load_compact, pack_weights, save_compact, unpack_weights
from training.nets import build
from training.shared_data import PROJECT_ROOT
from training.train_model import resume_compact, train

COMMITTED = os.path.join(PROJECT_ROOT, 'training', 'checkpoints')


def test_weights_are_coded_only_when_float16_does_not_fit(tmp_path):
    state = build('sscnet_cr128').state_dict()
    roomy = pack_weights(state, budget=10 ** 9)
    assert not roomy['coded'] and all(v.dtype == torch.float16 for v in roomy['half'].values())
    tight = pack_weights(state, budget=7_000_000)
    assert 'encoder.8.weight' in tight['coded'] and 'encoder.0.weight' in tight['half']  # the input layer: float16
    back = unpack_weights(tight)
    for name, value in state.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
        if name in tight['coded']:  # uniform rounding: at most half a step of the row
            rows = (back[name] - value).abs().reshape(value.shape[0], -1).amax(dim=1)
            assert bool((rows <= tight['step'][name] / 2 + 1e-7).all()), name
        else:
            assert torch.equal(back[name], value.half().float() if value.is_floating_point() else value), name
    size = save_compact(str(tmp_path / 'c.pt'), state, 'sscnet_cr128', 0, '{}', budget=7_000_000)
    assert size <= 7_000_000


def test_save_refuses_a_checkpoint_over_budget_and_loads_only_its_own_format(tmp_path):
    state = build('cae3d_cr32').state_dict()
    path = str(tmp_path / 'c.pt')
    with pytest.raises(ValueError, match='budget'):
        save_compact(path, state, 'cae3d_cr32', 0, '{}', budget=100_000)
    assert not os.listdir(tmp_path)
    save_compact(path, state, 'cae3d_cr32', 4, '{}', torch.ones(3), 'epoch\n4\n')
    loaded = load_compact(path)
    assert loaded['epoch'] == 4 and loaded['channel_scale'].tolist() == [1, 1, 1]
    torch.save({'model': state}, str(tmp_path / 'other.pt'))
    with pytest.raises(ValueError, match='not a compact'):
        load_compact(str(tmp_path / 'other.pt'))


def _cubes(n=2, size=16):
    return np.random.default_rng(5).random((n, 202, size, size), dtype=np.float32) * 0.3 + 0.05


def _rows(path):
    with open(path, newline='') as handle:
        return list(csv.DictReader(handle))


def _resume_and_train_one_epoch(checkpoint, tmp_path, freeze_bn=False):
    """Resume a run from `checkpoint` in an empty run folder and train one more epoch on in-memory cubes."""
    assert os.path.getsize(checkpoint) <= BUDGET_BYTES
    saved = load_compact(checkpoint)
    variant, epoch = saved['variant'], saved['epoch']
    net = build(variant)
    start, _ = resume_compact(net, checkpoint, variant, str(tmp_path / 'log.csv'), log=lambda m: None)
    assert start == epoch + 1 and all(torch.equal(v, saved['model'][k]) for k, v in net.state_dict().items())
    logged = _rows(tmp_path / 'log.csv')
    assert int(logged[-1]['epoch']) == epoch

    compact = str(tmp_path / 'resumed.pt')
    shutil.copyfile(checkpoint, compact)  # the run rewrites its compact checkpoint: never the committed one
    run, messages = str(tmp_path / 'run'), []
    train(variant, run, epochs=start + 1, steps=1, batch=1, lr=1e-5, source=_cubes(), threads=1,
          log=messages.append, freeze_bn=freeze_bn, compact=compact)
    assert messages[0].startswith(f'resumed {variant} from epoch {start} (compact checkpoint')
    assert torch.load(os.path.join(run, 'last.pt'), weights_only=True)['epoch'] == start
    rows = _rows(os.path.join(run, 'log.csv'))
    assert [int(r['epoch']) for r in rows] == [int(r['epoch']) for r in logged] + [start]
    assert load_compact(compact)['epoch'] == start and os.path.getsize(compact) <= BUDGET_BYTES


def test_a_run_writes_its_compact_checkpoint_every_epoch_and_resumes_from_it(tmp_path):
    compact = str(tmp_path / 'first.pt')
    train('sscnet_cr128', str(tmp_path / 'first'), epochs=2, steps=1, batch=1, qat_from=1, source=_cubes(),
          threads=1, log=lambda m: None, compact=compact)
    assert load_compact(compact)['epoch'] == 1
    _resume_and_train_one_epoch(compact, tmp_path)


@pytest.mark.parametrize('model_id', ['sscnet', 'cae3d'])
def test_a_training_run_resumes_from_the_committed_checkpoint(model_id, tmp_path):
    committed = os.path.join(COMMITTED, f'{model_id}.pt')
    if not os.path.isfile(committed):
        pytest.skip(f'no committed checkpoint {committed}')
    _resume_and_train_one_epoch(committed, tmp_path, freeze_bn=model_id == 'cae3d')

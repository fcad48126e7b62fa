"""Compact training checkpoints that can be committed (train_model.py --compact PATH).

A run's last.pt holds float32 weights and the Adam moments (about 3x the weights): too big for the repository.
The compact file keeps what a later session needs to continue the run: the weights in float16, the latent channel
scales, the epoch, the options and the run's log.csv. When float16 weights exceed the size budget (SSCNet's 6.7 M
parameters are 13 MB in float16, and float16 bits hardly compress), every weight tensor of at least 4096 values
but the first layer's (the input projection: coded, it cost SSCNet 0.15 dB, every other layer under 0.01 dB) is
instead quantised uniformly with one step per row (first axis: a conv's output or input channel), the row's RMS / Q,
and the integers are LZMA-compressed, with the largest Q (finest step, from 256 down) that fits. Per row, because
the nets keep rows of very different size (SSCNet's silent start-up channels beside its PCA path).
The Adam moments are not kept: a resumed run restarts them.
Saved with torch.save as a dict of plain tensors (the LZMA bytes as a uint8 tensor), ints and strings; loaded with
torch.load(weights_only=True), so loading runs no pickled code.
"""
import lzma
import os

import numpy as np
import torch

FORMAT = 'enmap_compress-compact-checkpoint-2'
BUDGET_BYTES = 8_000_000
_OVERHEAD = 200_000  # room for the pickle structure, the log text and the channel scales
_CODED_MIN = 4096
STEP_DIVISORS = (256, 128, 64, 32, 16)


def _code(tensor, divisor):
    """LZMA bytes of round(w / step) with one step per row (first axis): the row's RMS / divisor."""
    rows = tensor.detach().float().cpu().numpy().reshape(tensor.shape[0], -1).astype(np.float64)
    step = np.sqrt(np.mean(rows ** 2, axis=1)) / divisor
    step[step == 0] = 1.0
    q = np.round(rows / step[:, None])
    if np.abs(q).max() > 32767:
        return None
    data = lzma.compress(q.astype('<i2').tobytes(), preset=6)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8), torch.from_numpy(step)


def pack_weights(model_state, budget=BUDGET_BYTES):
    """{'half', 'coded', 'step', 'shape', 'exact'} dicts for a float32 state dict within `budget` bytes."""
    floats = {k: v for k, v in model_state.items() if v.is_floating_point()}
    exact = {k: v.clone() for k, v in model_state.items() if not v.is_floating_point()}
    packed = {'half': {k: v.half() for k, v in floats.items()}, 'coded': {}, 'step': {}, 'shape': {},
              'exact': exact}
    size = sum(v.numel() * 2 for v in floats.values()) + sum(v.numel() * v.element_size() for v in exact.values())
    if size + _OVERHEAD <= budget:
        return packed
    first = next(k for k, v in floats.items() if v.dim() >= 2)  # the input projection: rounding costs most there
    big = [k for k, v in floats.items() if v.numel() >= _CODED_MIN and k != first]
    small = size - sum(floats[k].numel() * 2 for k in big)
    for divisor in STEP_DIVISORS:
        coded = {k: _code(floats[k], divisor) for k in big}
        if any(c is None for c in coded.values()):
            continue
        if small + sum(c[0].numel() for c in coded.values()) + _OVERHEAD <= budget:
            for k, (data, step) in coded.items():
                del packed['half'][k]
                packed['coded'][k], packed['step'][k] = data, step
                packed['shape'][k] = torch.tensor(list(floats[k].shape), dtype=torch.int64)
            return packed
    raise ValueError(f'weights do not fit the {budget} byte budget even at a step of RMS/{STEP_DIVISORS[-1]}')


def unpack_weights(packed):
    """The float32 state dict back from pack_weights' dicts."""
    state = {k: v.float() for k, v in packed['half'].items()}
    for name, data in packed['coded'].items():
        q = np.frombuffer(lzma.decompress(data.numpy().tobytes()), dtype='<i2').astype(np.float64)
        step = packed['step'][name].numpy()
        shape = [int(d) for d in packed['shape'][name]]
        rows = q.reshape(len(step), -1) * step[:, None]
        state[name] = torch.from_numpy(rows.astype(np.float32)).reshape(shape)
    state.update(packed['exact'])
    return state


def save_compact(path, model_state, variant, epoch, config, channel_scale=None, log_csv='', budget=BUDGET_BYTES):
    """Write the compact checkpoint atomically (replacing an older one); raise if it exceeds `budget` bytes."""
    state = {'format': FORMAT, 'variant': variant, 'epoch': int(epoch), 'config': config, 'log_csv': log_csv,
             'weights': pack_weights(model_state, budget)}
    if channel_scale is not None:
        state['channel_scale'] = channel_scale.detach().float().cpu()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path + '.tmp')
    size = os.path.getsize(path + '.tmp')
    if size > budget:
        os.remove(path + '.tmp')
        raise ValueError(f'compact checkpoint of {variant} is {size} bytes, over the {budget} byte budget')
    os.replace(path + '.tmp', path)
    return size


def load_compact(path):
    """The checkpoint as a dict like last.pt without 'optimizer': model (float32), epoch, variant, config, ..."""
    state = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise ValueError(f'{path} is not a compact training checkpoint ({FORMAT})')
    state['model'] = unpack_weights(state.pop('weights'))
    return state

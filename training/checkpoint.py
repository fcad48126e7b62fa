"""Compact training checkpoints that can be committed (train_model.py --compact PATH).

A run's last.pt holds float32 weights and the Adam moments (about 3x the weights): too big for the repository.
The compact file keeps what a later session needs to continue the run: the weights in float16, the latent channel
scales, the epoch, the options and the run's log.csv. When float16 weights alone exceed the size budget (SSCNet's
6.7 M parameters are 13 MB in float16), the largest weight tensors are stored as int8 with one float16 scale per
row (first axis), largest first, until the file fits. The Adam moments are not kept: a resumed run restarts them.
Saved with torch.save as a dict of plain tensors, ints and strings; loaded with torch.load(weights_only=True).
"""
import os

import torch

FORMAT = 'enmap_compress-compact-checkpoint-1'
BUDGET_BYTES = 8_000_000
_OVERHEAD = 200_000  # room for the pickle structure, the log text and the channel scales


def _quantise_rows(tensor):
    rows = tensor.float().reshape(tensor.shape[0], -1)
    scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.reshape(tensor.shape), scale.half()


def pack_weights(model_state, budget=BUDGET_BYTES):
    """{'half', 'int8', 'int8_scale', 'exact'} dicts for a float32 state dict within `budget` bytes."""
    floats = {k: v for k, v in model_state.items() if v.is_floating_point()}
    exact = {k: v.clone() for k, v in model_state.items() if not v.is_floating_point()}
    size = sum(v.numel() * 2 for v in floats.values()) + sum(v.numel() * v.element_size() for v in exact.values())
    to_int8 = []
    for name in sorted(floats, key=lambda k: floats[k].numel(), reverse=True):
        if size + _OVERHEAD <= budget or floats[name].dim() < 2:
            break
        to_int8.append(name)
        size -= floats[name].numel() - 2 * floats[name].shape[0]
    packed = {'half': {}, 'int8': {}, 'int8_scale': {}, 'exact': exact}
    for name, value in floats.items():
        if name in to_int8:
            packed['int8'][name], packed['int8_scale'][name] = _quantise_rows(value)
        else:
            packed['half'][name] = value.half()
    return packed


def unpack_weights(packed):
    """The float32 state dict back from pack_weights' dicts."""
    state = {k: v.float() for k, v in packed['half'].items()}
    for name, q in packed['int8'].items():
        scale = packed['int8_scale'][name].float().view(-1, *([1] * (q.dim() - 1)))
        state[name] = q.float() * scale
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

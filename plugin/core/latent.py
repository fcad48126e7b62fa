"""How a tile's latent becomes bytes, and back.

AdaptiveLatentCoder (PCA and the seed models): uniform rounding, per-channel spatial prediction and per-tile
statistics (entropy.py). PriorLatentCoder (rdnet): dead-zone rounding and fixed tables from the model's learned
Laplace prior per latent channel (prior.py), so a tile carries no statistics at all.
"""
import numpy as np

from .errors import FormatError, ModelError
from .prediction import decode_predicted, encode_predicted
from .prior import LaplaceTable, decode_groups, encode_groups


class AdaptiveLatentCoder:
    def __init__(self, transform, steps):
        self.transform = transform
        self.steps = steps  # (channels, 1)

    def encode(self, latent, valid, core):
        symbols = np.rint(latent / self.steps).astype(np.int32)
        return symbols, encode_predicted(symbols, self.transform.latent_mask(valid, core))

    def decode(self, data, valid, core):
        return decode_predicted(data, self.transform.channels, self.transform.latent_mask(valid, core))

    def dequantise(self, symbols):
        return symbols.astype(np.float32) * self.steps


class PriorLatentCoder:
    """Rows of the latent (channels, samples) coded with fixed tables from the model's per-channel Laplace scales."""

    def __init__(self, transform, level, model):
        """level: the quality level's metadata (step, and optionally its own deadzone / skip_below)."""
        if model.get('family') != 'laplace':
            raise ModelError(f'entropy model family "{model.get("family")}" is not supported by this version')
        self.transform = transform
        self.step = float(level['step'])
        self.deadzone = float(level.get('deadzone', model.get('deadzone', 0.0)))
        self.offset = float(model.get('reconstruction_offset', 0.0))
        skip_below = float(level.get('skip_below', model.get('skip_below', 0.0)))
        scales = np.asarray(model['scales'], np.float64)
        if scales.shape != (transform.channels,):
            raise ModelError('the entropy model needs one scale per latent channel')
        betas = scales / self.step
        self.coded = np.flatnonzero(betas >= skip_below)  # the others are always 0
        self.tables = [LaplaceTable(b, self.deadzone) for b in betas[self.coded]]

    def encode(self, latent, valid, core):
        """Dead-zone quantisation of the coded channels (the others stay 0), then one learned-prior stream."""
        symbols = np.zeros(latent.shape, np.int32)
        if not latent.shape[1]:
            return symbols, b''
        scaled = latent[self.coded] * np.float32(1.0 / self.step)
        coded = np.copysign(np.floor(np.abs(scaled) + np.float32(0.5 - self.deadzone)), scaled).astype(np.int32)
        symbols[self.coded] = coded
        return symbols, encode_groups(list(coded), self.tables)

    def decode(self, data, valid, core):
        samples = int(self.transform.latent_mask(valid, core).sum())
        symbols = np.zeros((self.transform.channels, samples), np.int32)
        if not samples:
            if data:
                raise FormatError('a tile without valid pixels carries latent data')
            return symbols
        rows = decode_groups(data, self.tables, [samples] * len(self.tables))
        if rows:
            symbols[self.coded] = np.stack(rows)
        return symbols

    def dequantise(self, symbols):
        """Only the coded channels can be non-zero: the others are never touched (most of them at low quality)."""
        latent = np.zeros(symbols.shape, np.float32)
        rows = symbols[self.coded].astype(np.float32)
        if self.offset:
            rows = np.copysign(np.maximum(np.abs(rows) - np.float32(self.offset), 0.0), rows)
        latent[self.coded] = rows * np.float32(self.step)
        return latent


def make_latent_coder(meta, transform, level, steps):
    """level: the quality level's metadata; steps: (channels, 1) steps of the adaptive coder."""
    model = meta.get('entropy_model')
    if model is None:
        return AdaptiveLatentCoder(transform, steps)
    return PriorLatentCoder(transform, level, model)

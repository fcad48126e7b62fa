"""The model-package contract: what a model's ONNX metadata (key `enmap_compress`, a JSON object) holds.

Every exporter in training/ writes it through `ModelMetadata.to_json`, the runtime reads it through `from_json`,
and the rest of the plugin reads typed fields only. `from_json` checks every field a decoder relies on and names
the bad one, so a broken custom package fails with one clear message instead of somewhere deep in a tile.
Defaults live here and nowhere else. Fields this version does not know are kept (`extras`) and written back.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .bands import DN_PEAK, ENMAP_GAIN, HYSPECNET202, band_set
from .errors import InputError, ModelError

FORMAT_VERSION = 1
KINDS = ('pixel', 'spatial')
DEFAULT_TILE_SIZE = {'pixel': 256, 'spatial': 128}  # pixels per tile side when a package names none
MAX_LATENT_CHANNELS = 1 << 20  # rdnet has 12928; 10**12 reached [1.0] * channels as a MemoryError
MAX_TILE_SIZE = 256  # what the decoder accepts (validation.py): bigger tiles cost too much memory to decode
# The view every bundled model was trained on: reflectance = DN x gain + offset, clipped to [0, 1]. Packages state it
# as EnMAP DN clipped to 0..DN_PEAK times ENMAP_GAIN; the plugin gives the models exactly this view (bands.py).
STANDARD_NORMALISATION = {'clip_dn': [0, int(DN_PEAK)], 'scale': ENMAP_GAIN}
_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')
_INFORMATIVE = ('architecture', 'paper_bpppc', 'paper_compression_ratio', 'training')


@dataclass(frozen=True)
class QualityLevel:
    """One quality level: the quantiser step (in the latent's units) and optional per-level quantiser settings;
    `bpppb`/`psnr`/`sa_deg` are measured figures a package may carry for cards without a table."""

    level: int
    step: float
    deadzone: float | None = None
    skip_below: float | None = None
    bpppb: float | None = None
    psnr: float | None = None
    sa_deg: float | None = None

    def to_json(self):
        out = {'level': self.level, 'step': self.step}
        for name in ('deadzone', 'skip_below', 'bpppb', 'psnr', 'sa_deg'):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class EntropyModel:
    """A learned factorised prior: one Laplace scale per latent channel (prior.py builds the tables from it)."""

    family: str
    scales: tuple
    reconstruction_offset: float = 0.0
    deadzone: float = 0.0  # default of levels that name none
    skip_below: float = 0.0

    def to_json(self):
        out = {'family': self.family, 'scales': list(self.scales), 'reconstruction_offset': self.reconstruction_offset}
        if self.deadzone:
            out['deadzone'] = self.deadzone
        if self.skip_below:
            out['skip_below'] = self.skip_below
        return out


@dataclass(frozen=True)
class ModelMetadata:
    """What a model package declares about itself (see docs/architecture.md, "Where a new codec plugs in")."""

    id: str
    name: str
    kind: str
    band_set: str
    input_bands: int
    latent_channels: int
    quality_levels: tuple
    format_version: int = FORMAT_VERSION
    tile_size: int | None = None
    tile_overlap: int = 0
    spatial_factor: int | None = None
    latent_dims: tuple | None = None
    channel_step_scale: tuple | None = None
    entropy_model: EntropyModel | None = None
    normalisation: dict | None = None
    informative: dict = field(default_factory=dict)  # architecture, paper figures, training record
    extras: dict = field(default_factory=dict)  # fields of newer versions, kept as they were

    @property
    def effective_tile_size(self):
        return self.tile_size or DEFAULT_TILE_SIZE[self.kind]

    def level(self, quality):
        """The QualityLevel numbered `quality`; ModelError naming the levels there are."""
        for level in self.quality_levels:
            if level.level == quality:
                return level
        raise ModelError(f'model {self.id} has no quality level {quality} '
                         f'(levels: {sorted(q.level for q in self.quality_levels)})')

    @property
    def training(self):
        return self.informative.get('training') or {}

    def to_json(self):
        """The metadata as a JSON-ready dict (what `json.dumps(..., sort_keys=True)` writes into the ONNX files)."""
        out = dict(self.extras)
        out.update({'id': self.id, 'name': self.name, 'kind': self.kind, 'band_set': self.band_set,
                    'input_bands': self.input_bands, 'latent_channels': self.latent_channels,
                    'quality_levels': [q.to_json() for q in self.quality_levels],
                    'format_version': self.format_version})
        optional = {'tile_size': self.tile_size, 'spatial_factor': self.spatial_factor,
                    'latent_dims': list(self.latent_dims) if self.latent_dims is not None else None,
                    'channel_step_scale': list(self.channel_step_scale) if self.channel_step_scale is not None
                    else None,
                    'entropy_model': self.entropy_model.to_json() if self.entropy_model is not None else None,
                    'normalisation': self.normalisation}
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.tile_overlap or self.kind == 'spatial':
            out['tile_overlap'] = self.tile_overlap
        out.update(self.informative)
        return out

    def dumps(self):
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, value, where='model metadata'):
        """Validate a metadata object (dict or JSON text); ModelError naming `where` and the bad field."""
        return _Reader(value, where).metadata()


class _Reader:
    def __init__(self, value, where):
        self.where = where
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError) as exc:
                raise ModelError(f'{where}: not valid JSON ({exc})') from None
        if not isinstance(value, dict):
            raise ModelError(f'{where}: expected a JSON object, not {type(value).__name__}')
        self.data = value

    def fail(self, name, problem):
        raise ModelError(f'{self.where}: field "{name}" {problem}')

    def has(self, name):
        return self.data.get(name) is not None

    def text(self, name, pattern=None):
        value = self.data.get(name)
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
            self.fail(name, f'must be a non-empty name, not {value!r}')
        return value

    def integer(self, name, low=1, high=None, value=None, required=True):
        value = self.data.get(name) if value is None else value
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            limits = f'from {low}' + (f' to {high}' if high is not None else '')
            self.fail(name, f'must be an integer {limits}, not {value!r}')
        return value

    def number(self, name, value, positive=False, minimum=None):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (positive and value <= 0) or (minimum is not None and value < minimum):
            self.fail(name, f'must be a finite {"positive " if positive else ""}number, not {value!r}')
        return float(value)

    def numbers(self, name, values, count, positive=True):
        if not isinstance(values, list) or len(values) != count:
            self.fail(name, f'must be a list of {count} numbers (one per latent channel)')
        return tuple(self.number(f'{name}[{i}]', v, positive=positive) for i, v in enumerate(values))

    def levels(self):
        levels = self.data.get('quality_levels')
        if not isinstance(levels, list) or not levels:
            self.fail('quality_levels', 'must be a non-empty list of {"level": n, "step": s} objects')
        out = []
        for i, item in enumerate(levels):
            name = f'quality_levels[{i}]'
            if not isinstance(item, dict):
                self.fail(name, 'must be an object')
            optional = {k: self.number(f'{name}.{k}', item[k], minimum=0) for k in
                        ('deadzone', 'skip_below', 'bpppb', 'sa_deg') if item.get(k) is not None}
            if item.get('psnr') is not None:
                optional['psnr'] = self.number(f'{name}.psnr', item['psnr'])
            out.append(QualityLevel(self.integer(f'{name}.level', 1, 10, value=item.get('level')),
                                    self.number(f'{name}.step', item.get('step'), positive=True), **optional))
        numbers = [q.level for q in out]
        if len(set(numbers)) != len(numbers):
            self.fail('quality_levels', f'numbers its levels more than once ({numbers})')
        return tuple(out)

    def entropy_model(self, channels):
        model = self.data.get('entropy_model')
        if model is None:
            return None
        if not isinstance(model, dict):
            self.fail('entropy_model', 'must be an object')
        if model.get('family') != 'laplace':
            self.fail('entropy_model.family', f'"{model.get("family")}" is not supported by this version (laplace)')
        optional = {k: self.number(f'entropy_model.{k}', model[k], minimum=0)
                    for k in ('deadzone', 'skip_below') if model.get(k) is not None}
        offset = self.number('entropy_model.reconstruction_offset', model.get('reconstruction_offset', 0.0))
        return EntropyModel('laplace', self.numbers('entropy_model.scales', model.get('scales'), channels), offset,
                            **optional)

    def normalisation(self):
        value = self.data.get('normalisation')
        if value is None:
            return None
        ok = isinstance(value, dict) and isinstance(value.get('clip_dn'), list) and len(value['clip_dn']) == 2 \
            and all(isinstance(v, (int, float)) for v in [*value['clip_dn'], value.get('scale')])
        if not ok or value['clip_dn'][0] != 0 or abs(value['clip_dn'][1] * value['scale'] - 1.0) > 1e-9:
            self.fail('normalisation', f'is {value!r}; this version gives models reflectance clipped to [0, 1] '
                      f'(EnMAP DN: {STANDARD_NORMALISATION})')
        return value

    def metadata(self):
        data = self.data
        version = self.integer('format_version', 1, FORMAT_VERSION, value=data.get('format_version', 1))
        kind = data.get('kind', 'pixel')
        if kind not in KINDS:
            self.fail('kind', f'is "{kind}", which this version does not support ({", ".join(KINDS)}): '
                      'update EnMAP Compress')
        bands_id = data.get('band_set', HYSPECNET202)
        try:
            count = band_set(bands_id).count
        except InputError as exc:
            self.fail('band_set', str(exc))
        input_bands = self.integer('input_bands', count, count, value=data.get('input_bands', count))
        channels = self.integer('latent_channels', 1, MAX_LATENT_CHANNELS)
        spatial = {}
        if kind == 'spatial':
            spatial['spatial_factor'] = self.integer('spatial_factor', 1, 256)
            dims = data.get('latent_dims')
            if not isinstance(dims, list) or not dims:
                self.fail('latent_dims', 'must be a non-empty list of integers (spatial models)')
            spatial['latent_dims'] = tuple(self.integer(f'latent_dims[{i}]', value=d) for i, d in enumerate(dims))
            if math.prod(spatial['latent_dims']) != channels:
                self.fail('latent_dims', f'{list(dims)} disagree with latent_channels {channels}')
        scale = data.get('channel_step_scale')
        known = {'id', 'name', 'kind', 'band_set', 'input_bands', 'latent_channels', 'quality_levels',
                 'format_version', 'tile_size', 'tile_overlap', 'spatial_factor', 'latent_dims',
                 'channel_step_scale', 'entropy_model', 'normalisation', *_INFORMATIVE}
        training = data.get('training')
        if training is not None and not isinstance(training, dict):
            self.fail('training', 'must be an object')
        return ModelMetadata(
            id=self.text('id', _ID), name=self.text('name') if self.has('name') else self.text('id', _ID),
            kind=kind, band_set=bands_id, input_bands=input_bands, latent_channels=channels,
            quality_levels=self.levels(), format_version=version,
            tile_size=self.integer('tile_size', 8, MAX_TILE_SIZE, required=False),
            tile_overlap=self.integer('tile_overlap', 0, 64, value=data.get('tile_overlap', 0)),
            channel_step_scale=None if scale is None else self.numbers('channel_step_scale', scale, channels),
            entropy_model=self.entropy_model(channels), normalisation=self.normalisation(),
            informative={k: data[k] for k in _INFORMATIVE if k in data},
            extras={k: v for k, v in data.items() if k not in known}, **spatial)

"""The codec part of a .ehc header: which model, at which setting, coded the tiles, and how (docs/format.md).

`CodecInfo.to_json` is the `codec` object every writer stores (its keys in a fixed order: the bytes of a file
depend on it), `CodecInfo.from_json` is how every decoder reads it: each field is checked before it is used and a
bad one is a FormatError naming it (the raster part is rasterheader.py's, the checks of the whole header
validation.py's).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .bands import N_BANDS
from .bounds import MAX_BOUND_DN, ErrorBound, uniform_bound
from .errors import FormatError
from .headerfields import HeaderFields, is_int, shown
from .modelmeta import MAX_TILE_SIZE  # one limit for packages and files: decoding a larger tile costs too much

FORMAT_NAME = 'ehc'
ENTROPY_CODER = 'constriction-ans-v1'
BAND_GAINS = 'band-gains'  # `radiometry`: models saw reflectance = DN x gain + offset of each band
EXTRA_PREDICTED, EXTRA_SPECTRAL = 'predicted', 'spectral-v1'  # `extra_coder` (absent: predicted)
RESIDUAL_PLAIN, RESIDUAL_PREDICTED = 'plain', 'predicted-v1'  # `residual_coder` (absent: plain)
LATENT_PRIOR, LATENT_CONTEXT = 'model', 'context-v1'  # `latent_coder` (absent: the model's; context_coder.py)
LATENT_BASIS = 'context-v2'  # `latent_coder` of lossy rdnet files of 0.5: context-v1 + a basis per tile
LATENT_FOLDED = 'context-v3'  # new lossy rdnet files since 0.6.0: context-v2's stream, the folded synthesis
LATENT_EXACT = 'context-v4'  # error-bounded and lossless rdnet files since 0.7.0: context-v1's stream, the exact
# synthesis (synthesis.ExactSynthesis: the same reconstruction on every CPU)
LATENT_PRIOR_EXACT = 'model-exact-v1'  # pca's error-bounded and lossless files since 0.7.0: the model's stream, the
# exact spectral map (synthesis.ExactSpectralMap)
LATENT_CODERS = (LATENT_PRIOR, LATENT_CONTEXT, LATENT_BASIS, LATENT_FOLDED, LATENT_EXACT, LATENT_PRIOR_EXACT)
EXACT_CODERS = (LATENT_EXACT, LATENT_PRIOR_EXACT)  # reconstructed in exact arithmetic (error-bounded files only)
BASIS_CODERS = (LATENT_BASIS, LATENT_FOLDED)  # the streams of latent_basis.BasisContextCoder (lossy files only)
QUALITY_LEVELS = range(1, 11)
_MODEL_ID = re.compile(r'[^/\\\x00]{1,200}')
_SHA256 = re.compile(r'[0-9a-f]{64}|[0-9a-f]{16}')  # the full digest (1.x, 2.x files) or its prefix (3.x)
SHA256_PREFIX = 16  # hex digits of the decoder's sha256 a 3.x header stores: 64 bits tell model versions apart
# optional in the oldest files, never null when present (the decoder compares them with the model's values)
_NOT_NULL = {'model_kind': 'a text', 'step': 'a number', 'band_set': 'a text', 'extra_step_dn': 'a number',
             'extra_coder': 'a text', 'residual_coder': 'a text', 'latent_coder': 'a text'}


@dataclass(frozen=True)
class CodecInfo:
    """The header's `codec` object. Fields the oldest files lack are None (then unchecked against the model).

    max_error is a plain MAX_ERROR (0.1.0's layout); error_bound states any other bound (tile payload version 4).
    model_path: where a custom package was (absent for bundled models).
    """

    model_id: str
    model_sha256: str
    quality: int
    extra_bands: tuple = ()  # canonical band indices coded besides the model's band set
    tile_size: int | None = None
    model_kind: str | None = None
    step: float | None = None
    band_set: str | None = None
    extra_step_dn: float | None = None
    max_error: int | None = None
    entropy_coder: str | None = ENTROPY_CODER
    radiometry: str | None = None  # BAND_GAINS, or None: EnMAP's scale (every file before band gains)
    error_bound: ErrorBound | None = None
    extra_coder: str = EXTRA_PREDICTED
    residual_coder: str = RESIDUAL_PLAIN
    model_path: str | None = None
    latent_coder: str = LATENT_PRIOR

    @property
    def bound(self):
        """The file's bounds.ErrorBound (None: a lossy file)."""
        if self.error_bound is not None:
            return self.error_bound
        return None if self.max_error is None else uniform_bound(self.max_error)

    def made_with(self, sha256):
        """Whether the decoder of this sha256 (64 hex digits) is the one the file names (by its digest or, in 3.x
        files, the digest's first SHA256_PREFIX digits)."""
        return len(self.model_sha256) in (SHA256_PREFIX, 64) and sha256.startswith(self.model_sha256)

    def to_json(self):
        """The JSON-ready `codec` object of a 3.x header, keys in the order every version has written them: the
        sha256 shortened to its prefix; step and extra_step_dn left out (the model and quality give them; readers
        compare them with the model when a file states them)."""
        out = {'model_id': self.model_id, 'model_sha256': self.model_sha256[:SHA256_PREFIX],
               'model_kind': self.model_kind, 'quality': self.quality, 'tile_size': self.tile_size,
               'band_set': self.band_set, 'extra_bands': [int(i) for i in self.extra_bands],
               'max_error': self.max_error, 'entropy_coder': self.entropy_coder}
        optional = {'radiometry': self.radiometry,
                    'error_bound': None if self.error_bound is None else self.error_bound.codec_info(),
                    'extra_coder': None if self.extra_coder == EXTRA_PREDICTED else self.extra_coder,
                    'residual_coder': None if self.residual_coder == RESIDUAL_PLAIN else self.residual_coder,
                    'model_path': self.model_path,
                    'latent_coder': None if self.latent_coder == LATENT_PRIOR else self.latent_coder}
        out.update((key, value) for key, value in optional.items() if value is not None)
        return out

    @classmethod
    def from_json(cls, obj, path):
        """The checked CodecInfo of a header's `codec` object, or a FormatError naming `path` and the bad field."""
        fields = HeaderFields(obj, 'codec', path)
        _check_model(fields)
        fields.integer('quality', QUALITY_LEVELS[0], QUALITY_LEVELS[-1])
        step = fields.number('step', required=False)
        if step is not None and step <= 0:
            fields.fail('step', f'must be positive, not {step}')
        fields.integer('tile_size', 1, MAX_TILE_SIZE)
        fields.text('band_set', required=False)
        fields.indices('extra_bands', ascending=True)
        extra_step = fields.number('extra_step_dn', required=False)
        if extra_step is not None and extra_step < 1:
            fields.fail('extra_step_dn', f'must be at least 1, not {extra_step}')
        fields.text('entropy_coder', required=False, choices=(ENTROPY_CODER,))
        fields.text('radiometry', required=False, choices=(BAND_GAINS,))
        fields.integer('max_error', 0, MAX_BOUND_DN, required=False)
        _check_error_bound(fields)
        for key in ('extra_coder', 'residual_coder', 'latent_coder'):
            fields.text(key, required=False)  # which ones this version decodes: TileCoder says
        for key, label in _NOT_NULL.items():
            if key in obj and obj[key] is None:
                fields.fail(key, f'must be {label}, not None')
        return cls(obj['model_id'], obj['model_sha256'], obj['quality'], tuple(obj['extra_bands']), obj['tile_size'],
                   obj.get('model_kind'), obj.get('step'), obj.get('band_set'), obj.get('extra_step_dn'),
                   obj.get('max_error'), obj.get('entropy_coder'), obj.get('radiometry'), _stated_bound(obj, path),
                   obj.get('extra_coder', EXTRA_PREDICTED), obj.get('residual_coder', RESIDUAL_PLAIN),
                   obj.get('model_path'), obj.get('latent_coder', LATENT_PRIOR))


def _check_model(fields):
    fields.text('model_id', pattern=_MODEL_ID)
    if fields.obj['model_id'] in ('.', '..') or fields.obj['model_id'].endswith('.onnx'):
        fields.fail('model_id', f'is not a model id ({shown(fields.obj["model_id"])})')
    fields.text('model_sha256', pattern=_SHA256)
    fields.text('model_path', required=False)
    fields.text('model_kind', required=False, choices=('pixel', 'spatial'))


def _check_error_bound(codec):
    """codec.error_bound: its integers within MAX_BOUND_DN (ErrorBound.from_codec_info checks what they mean)."""
    if codec.obj.get('error_bound') is None:
        return
    bound = HeaderFields(codec.obj['error_bound'], 'codec.error_bound', codec.path)
    if bound.obj.get('band_max_errors') is not None:
        limits = bound.obj['band_max_errors']
        if not isinstance(limits, list) or len(limits) != N_BANDS or \
                not all(is_int(v) and 0 <= v <= MAX_BOUND_DN for v in limits):
            bound.fail('band_max_errors', f'must be a list of {N_BANDS} integers from 0 to {MAX_BOUND_DN}, not '
                                          f'{shown(limits)}')
    bound.number('relative_error', required=False)
    bound.integer('relative_floor', 0, MAX_BOUND_DN, required=False)


def _stated_bound(obj, path):
    """The ErrorBound of `error_bound` (None when the file states none: lossy, or a plain max_error)."""
    if obj.get('error_bound') is None:
        return None
    try:
        return ErrorBound.from_codec_info(obj)
    except FormatError as exc:
        raise FormatError(f'{path}: {exc}') from exc

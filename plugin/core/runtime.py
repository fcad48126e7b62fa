"""Model registry, ONNX Runtime sessions and device choice.

A model is data: a folder with `encoder.onnx`, `decoder.onnx` (metadata inside both, key `enmap_compress`,
a JSON document) and `card.md`. Bundled models live in the plugin's `models/`; a custom model package can be
given by its folder (or either ONNX file). onnxruntime is imported lazily so the plugin loads without it.
"""
import hashlib
import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field

import numpy as np

from ..paths import MODELS_DIR
from . import onnxproto
from .errors import DeviceError, FormatError, InputError, ModelError, ModelNotFoundError
from .modelmeta import ModelMetadata

LOG = logging.getLogger('enmap_compress')
METADATA_KEY = 'enmap_compress'
DEVICES = ('auto', 'cpu', 'cuda')
# Models listed first, in this order, in the MODEL enum; others follow alphabetically. Ids never change, and new
# bundled models are appended, so that the enum index of every earlier one (saved in Processing models) stays.
PREFERRED_ORDER = ('pca', 'cae1d', 'hycot', 'rdnet', 'sscnet', 'cae3d')
# The default compressor (dialog, algorithms, API) when installed: it beats PCA at equal real rate (docs/benchmarks.md).
DEFAULT_MODEL = 'rdnet'


def onnxruntime():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError(
            'onnxruntime is not installed in the Python that QGIS uses. Install it with '
            '"python -m pip install onnxruntime" (or onnxruntime-gpu for CUDA) and restart QGIS.') from exc
    return ort


def sha256_of(path, block=1 << 20):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(block), b''):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ModelPackage:
    """A model folder on disk. `meta` (modelmeta.ModelMetadata) is read lazily from the decoder's ONNX metadata."""

    folder: str
    model_id: str
    _meta: dict = field(default=None, repr=False)

    @property
    def encoder_path(self):
        return os.path.join(self.folder, 'encoder.onnx')

    @property
    def decoder_path(self):
        return os.path.join(self.folder, 'decoder.onnx')

    @property
    def card_path(self):
        return os.path.join(self.folder, 'card.md')

    def title(self):
        """One line for menus: the card's first heading, else the id."""
        try:  # (errors='replace': a card that is not UTF-8 raised UnicodeDecodeError in every listing of models)
            with open(self.card_path, encoding='utf-8', errors='replace') as handle:
                for line in handle:
                    if line.startswith('#'):
                        return line.lstrip('#').strip()
        except OSError:
            pass
        return self.model_id

    def card(self):
        try:
            with open(self.card_path, encoding='utf-8', errors='replace') as handle:
                return handle.read()
        except OSError:
            return ''

    @property
    def meta(self):
        if self._meta is None:
            meta = ModelMetadata.from_json(read_onnx_metadata(self.decoder_path), f'model {self.folder}')
            if meta.id != self.model_id:
                raise ModelError(f'model folder {self.folder} holds model "{meta.id}", not "{self.model_id}"')
            self._meta = meta
        return self._meta

    def decoder_sha256(self):
        return sha256_of(self.decoder_path)


def model_bytes(path):
    """The bytes of a package's ONNX file (what onnxruntime is given: it never opens the path itself), or ModelError
    when it is missing, malformed or keeps tensors in other files (external data: onnxruntime would read files that
    neither the decoder's sha256 nor anything else in the package vouches for, and the codec's own reading of the
    decoder's weights, synthesis.py, would not see them)."""
    if not os.path.isfile(path):
        raise ModelError(f'model file {path} is missing')
    with open(path, 'rb') as handle:
        data = handle.read()
    try:
        external = onnxproto.external_tensors(data, 'its protobuf')
    except FormatError as exc:
        raise ModelError(f'{path} is not a readable ONNX model: {exc}') from None
    if external:
        raise ModelError(f'{path} keeps tensor "{external[0]}"' + (f' and {len(external) - 1} more' if len(external) > 1
                         else '') + ' in another file (external data), which a model package may not: save the '
                         'model with its weights inside (onnx.save(model, path, save_as_external_data=False))')
    return data


def read_onnx_metadata(path):
    data = model_bytes(path)
    ort = onnxruntime()
    try:
        session = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
        text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    except Exception as exc:  # onnxruntime raises several private exception types
        raise ModelError(f'{path} is not a readable ONNX model: {exc}') from exc
    if not text:
        raise ModelError(f'{path} has no "{METADATA_KEY}" metadata: it is not an EnMAP Compress model')
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f'{path}: its "{METADATA_KEY}" metadata is not valid JSON ({exc})') from None


def _package_from_folder(folder):
    folder = os.path.abspath(folder)
    if not all(os.path.isfile(os.path.join(folder, name)) for name in ('encoder.onnx', 'decoder.onnx')):
        return None
    try:  # a file names its custom package's folder in its (UTF-8) header: a POSIX name of other bytes cannot be
        folder.encode('utf-8')  # written there (a UnicodeEncodeError when the header was made)
    except UnicodeEncodeError:
        raise ModelError(f'the folder of model package {folder!r} has a name that is not text (UTF-8): rename '
                         'it') from None
    return ModelPackage(folder, os.path.basename(folder))


def model_dirs():
    dirs = [MODELS_DIR]
    extra = os.environ.get('ENMAP_COMPRESS_MODELS', '')
    dirs += [d for d in extra.split(os.pathsep) if d]
    return dirs


def list_models():
    """All installed model packages, bundled first in PREFERRED_ORDER."""
    found = {}
    for base in model_dirs():
        if not os.path.isdir(base):
            continue
        for name in sorted(os.listdir(base)):
            try:
                package = _package_from_folder(os.path.join(base, name))
            except ModelError as exc:  # (one odd folder must not hide the others)
                LOG.warning('%s', exc)
                continue
            if package is not None and package.model_id not in found:
                found[package.model_id] = package

    def rank(model_id):
        return (PREFERRED_ORDER.index(model_id) if model_id in PREFERRED_ORDER else len(PREFERRED_ORDER), model_id)

    return [found[k] for k in sorted(found, key=rank)]


def find_model(model):
    """A model by id, or a custom package by folder or ONNX file path."""
    if os.path.sep in model or model.endswith('.onnx') or os.path.isdir(model):
        folder = os.path.dirname(model) if model.endswith('.onnx') else model
        package = _package_from_folder(folder)
        if package is None:
            raise ModelNotFoundError(f'{model} is not a model package (a folder with encoder.onnx and decoder.onnx)')
        return package
    for package in list_models():
        if package.model_id == model:
            return package
    installed = ', '.join(p.model_id for p in list_models()) or 'none'
    raise ModelNotFoundError(f'model "{model}" is not installed (installed: {installed})')


def default_model_id():
    """DEFAULT_MODEL when installed, else the first installed model (None when there is none)."""
    ids = [p.model_id for p in list_models()]
    return DEFAULT_MODEL if DEFAULT_MODEL in ids else (ids[0] if ids else None)


MAX_THREADS = 256  # a million made the thread pools grow until the kernel killed the process


def checked_threads(threads):
    """A thread count as given (None or 0: the default), or InputError for anything but a whole number from 0 to
    MAX_THREADS (2.5 or '2' reached onnxruntime as a TypeError, -1 was passed on)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 0 <= threads <= MAX_THREADS:
        raise InputError(f'threads must be a whole number from 1 to {MAX_THREADS} (0 or None: the default), not '
                         f'{threads!r}')
    return int(threads)


def default_threads():
    """Leave one core to QGIS so the interface stays responsive; never more than 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass
class DeviceChoice:
    device: str
    providers: list
    reason: str
    requested: str = 'auto'


def choose_device(requested='auto'):
    requested = (requested or 'auto').lower()
    if requested not in DEVICES:
        raise DeviceError(f'unknown device "{requested}"; expected one of {", ".join(DEVICES)}')
    available = onnxruntime().get_available_providers()
    has_cuda = 'CUDAExecutionProvider' in available
    if requested == 'cuda' and not has_cuda:
        raise DeviceError('CUDA was requested, but this onnxruntime has no CUDA provider (available: '
                          f'{", ".join(available)}). Install onnxruntime-gpu with a matching CUDA, or choose cpu.')
    if requested == 'cpu' or not has_cuda:
        reason = 'CPU requested' if requested == 'cpu' else 'CPU only: onnxruntime has no CUDA provider'
        return DeviceChoice('cpu', ['CPUExecutionProvider'], reason, requested)
    return DeviceChoice('cuda', ['CUDAExecutionProvider', 'CPUExecutionProvider'], 'CUDA provider available',
                        requested)


class OnnxRunner:
    """Runs a package's encoder or decoder in batches on the chosen device.

    Batches are small (1024 spectra) because convolutional and attention models hold activations hundreds of times
    the size of their input: 65536 spectra through the 1D-CAE took 5 GB, through HyCoT 12 GB.
    """

    def __init__(self, package, device='auto', threads=None, batch_rows=1024):
        self.package = package
        self.choice = choose_device(device)
        self.threads = checked_threads(threads) or default_threads()
        self.batch_rows = batch_rows
        self._sessions = {}
        self._lock = threading.RLock()  # tiles are coded on several threads (tiling.ordered_map): one session each

    def _session(self, which):
        with self._lock:
            return self._open_session(which)

    def _open_session(self, which):
        if which not in self._sessions:
            ort = onnxruntime()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # idle pool threads sleep instead of spinning: they would take the CPU from the other tiles' threads
            # (measured, 512 x 512 lossless, 2 threads: 20 % less CPU in compress and in decompress, same bytes)
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
            path = self.package.encoder_path if which == 'encoder' else self.package.decoder_path
            data = model_bytes(path)
            try:
                session = ort.InferenceSession(data, options, providers=self.choice.providers)
            except Exception as exc:  # onnxruntime raises private exception types
                raise ModelError(f'cannot load {path}: {exc}') from exc
            inputs = session.get_inputs()
            if len(inputs) != 1 or inputs[0].type != 'tensor(float)':
                raise ModelError(f'{path} takes {len(inputs)} inputs ({", ".join(i.type for i in inputs) or "none"}); '
                                 f'the {which} of a model package takes one tensor of floats')
            used = session.get_providers()[0]
            if self.choice.device == 'cuda' and used != 'CUDAExecutionProvider':
                if self.choice.requested == 'cuda':
                    raise DeviceError(f'CUDA was requested but does not work here: onnxruntime fell back to {used} '
                                      f'for {path} (check the CUDA and cuDNN versions onnxruntime-gpu needs)')
                LOG.warning('CUDA is listed by onnxruntime but does not work here; running on the CPU')
                self.choice = DeviceChoice('cpu', ['CPUExecutionProvider'], 'CPU: the CUDA provider failed', 'auto')
                self._sessions.clear()
                return self._session(which)
            LOG.info('%s %s runs on %s (%d threads)', self.package.model_id, which, used, self.threads)
            self._sessions[which] = session
        return self._sessions[which]

    @property
    def provider(self):
        """The provider onnxruntime runs this package on: that of a session already open (a compress's encoder),
        else the decoder's (opened for it)."""
        with self._lock:
            session = next(iter(self._sessions.values()), None)
        return (session or self._session('decoder')).get_providers()[0]

    def provider_of(self, which):
        """The provider of the 'encoder' or 'decoder' session (opened when it is not yet)."""
        return self._session(which).get_providers()[0]

    def run(self, which, array, trailing=None):
        """Feed `array` (rows first) through the graph in row batches; returns float32. trailing: the shape the
        output must have after its rows (as many as the input's). ModelError when the graph cannot run on the
        array or gives anything but finite floats of that shape: a package whose graph disagrees with its metadata
        fails here, naming its graph, not in a tile coder (or, worse, writing a file no decoder reads)."""
        session = self._session(which)
        name = session.get_inputs()[0].name
        array = np.ascontiguousarray(array, dtype=np.float32)
        if array.shape[0] <= self.batch_rows:
            return self._output(which, self._run(which, session, name, array), array.shape, trailing)
        parts = [self._output(which, self._run(which, session, name, array[i:i + self.batch_rows]),
                              array[i:i + self.batch_rows].shape, trailing)
                 for i in range(0, array.shape[0], self.batch_rows)]
        return np.concatenate(parts, axis=0)

    def _graph(self, which):
        return f'the {which} of model "{self.package.model_id}" ({self.package.folder})'

    def _run(self, which, session, name, batch):
        try:
            return session.run(None, {name: batch})[0]
        except MemoryError:
            raise
        except Exception as exc:  # onnxruntime raises private exception types
            raise ModelError(f'{self._graph(which)} cannot run on an input of shape {list(batch.shape)}: {exc}') \
                from exc

    def _output(self, which, out, shape, trailing):
        if not isinstance(out, np.ndarray) or out.dtype.kind != 'f':
            kind = out.dtype if isinstance(out, np.ndarray) else type(out).__name__
            raise ModelError(f'{self._graph(which)} gives {kind} values; a model package\'s graphs give floats')
        expected = None if trailing is None else (shape[0], *trailing)
        if out.ndim == 0 or out.shape[0] != shape[0] or (expected is not None and out.shape != expected):
            raise ModelError(f'{self._graph(which)} gives an output of shape {list(out.shape)} for an input of shape '
                             f'{list(shape)}, not {list(expected) if expected else "one row per input row"}: its '
                             'graph disagrees with its metadata (input_bands, latent_channels, latent_dims, '
                             'spatial_factor)')
        out = out.astype(np.float32, copy=False)  # (float64 beyond float32's range: infinite, refused below)
        if which == 'decoder' and out.size and not (math.isfinite(out.max()) and math.isfinite(out.min())):
            # (NaN propagates: one pass each; an encoder's NaN or inf fails TileCoder.latent_range, which reads its
            # latent's peaks anyway)
            raise ModelError(f'{self._graph(which)} gives NaN or infinite values: the model is broken')
        return out

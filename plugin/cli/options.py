"""The options the commands share, and the one place where parsed options become the core's keyword arguments.

The coding options mirror the Processing algorithms (MODEL, QUALITY, MAX_ERROR, BAND_MAX_ERRORS, RELATIVE_ERROR,
RELATIVE_FLOOR, CODE_ALL_BANDS, DEVICE); a new core option needs an `add_argument` in `add_coding_options` and a
line in `coding_kwargs`, and every command that codes (compress, evaluate, archive) has it. The core checks the
values (bounds.error_bound) and says what is wrong in one line.
"""
import argparse
import re

from ..core.runtime import DEVICES, MAX_THREADS, list_models

QUALITY_LEVELS = range(1, 11)


def _checked(convert, accept, expected):
    """An argparse type: `convert` the text, and refuse it with `expected` unless `accept(value)`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f'must be {expected}, not {text!r}')
        return value
    return parse


def _whole(text):
    """A whole number in plain ASCII digits: int() alone also takes '1_0' and other scripts' digits."""
    if not re.fullmatch(r'\s*[+-]?[0-9]+\s*', text):
        raise ValueError(text)
    return int(text)


def _decimal(text):
    """A number in plain ASCII (float() alone also takes '1_0' and other scripts' digits)."""
    if not text.isascii() or '_' in text:
        raise ValueError(text)
    return float(text)


_quality = _checked(_whole, lambda v: v in QUALITY_LEVELS, 'an integer from 1 to 10')
_dn_bound = _checked(_whole, lambda v: v >= 0, 'an integer number of DN >= 0')
_fraction = _checked(_decimal, lambda v: 0 < v <= 1, 'a fraction above 0 and at most 1 (0.01 = 1 %)')
positive_int = _checked(_whole, lambda v: v >= 1, 'a whole number >= 1')
_threads = _checked(_whole, lambda v: 1 <= v <= MAX_THREADS, f'a whole number from 1 to {MAX_THREADS}')


def _model_help():
    ids = [p.model_id for p in list_models()]
    return ('compressor model: an installed id (' + (', '.join(ids) or 'none installed') +
            '; default: rdnet when installed) or the folder of a custom model package')


def add_coding_options(parser):
    group = parser.add_argument_group('coding')
    group.add_argument('--model', metavar='ID', help=_model_help())
    group.add_argument('--quality', type=_quality, metavar='N',
                       help='quality level 1 (smallest file) to 10 (best); default 5, or chosen automatically '
                            'for the smallest file when an error bound is given')
    group.add_argument('--max-error', type=_dn_bound, metavar='E',
                       help='guarantee |original - reconstruction| <= E DN on every valid sample of every coded '
                            'band; 0 is lossless (all 224 bands bit for bit)')
    group.add_argument('--band-max-errors', metavar='LIST|CSV',
                       help='a limit in DN per EnMAP band: 224 numbers separated by commas, or a CSV file of rows '
                            '"band,bound" (band 1-224); with --max-error each band gets the smaller limit')
    group.add_argument('--relative-error', type=_fraction, metavar='R',
                       help='|error| <= R x |value| on every valid sample (0.01 = 1 %%), never below --relative-floor')
    group.add_argument('--relative-floor', type=_dn_bound, metavar='F',
                       help='the least error in DN the relative bound allows however small the value (default 0)')
    group.add_argument('--code-all-bands', action='store_true',
                       help='also keep the 22 water-vapour bands (simple coarse coder, larger file); evaluate '
                            'measures the HySpecNet bands either way')


def add_runtime_options(parser):
    group = parser.add_argument_group('runtime')
    group.add_argument('--device', choices=DEVICES, default='auto',
                       help='auto: CUDA when onnxruntime-gpu and a GPU really work, else the CPU (default auto)')
    group.add_argument('--threads', type=_threads, metavar='N',
                       help='CPU threads for the model (default: all cores but one, at most 8)')


def coding_kwargs(args):
    """The core's coding keyword arguments (codec.compress, evaluate.evaluate) from the parsed options."""
    kwargs = {'model': args.model, 'quality': args.quality, 'max_error': args.max_error,
              'band_max_errors': args.band_max_errors, 'relative_error': args.relative_error,
              'relative_floor': args.relative_floor, 'code_all_bands': args.code_all_bands}
    return kwargs


def runtime_kwargs(args):
    return {'device': args.device, 'threads': args.threads}

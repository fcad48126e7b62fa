"""`enmap-compress`: compress, decompress, evaluate, info, verify and archive from a shell.

Exit status: 0 success, 1 a failed input (one-line message on stderr, never a traceback unless --debug), 2 a usage
error, 130 interrupted (Ctrl+C or SIGTERM); `archive` exits 10 + the number of failed products (at most 110) when
some failed.
"""
import argparse
import contextlib
import importlib
import logging
import math
import os
import signal
import sys
import threading
import traceback

from .. import __version__
from ..core.errors import CancelledError, EnmapCompressError, os_error_text
from .console import PROGRAM, Console, StdoutLostError, WarningHandler, key_values
from .options import add_coding_options, add_runtime_options, coding_kwargs, runtime_kwargs

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
INPUT_FORMS = 'an EnMAP L2A product folder, its METADATA.XML, the DLR product ZIP, or a GeoTIFF/ENVI image'


# --- commands -----------------------------------------------------------------------------------------------

def cmd_compress(args, console):
    from ..core.codec import compress
    from .inspect import describe

    result = compress(args.input, args.output, progress=console.progress('compress'), **coding_kwargs(args),
                      **runtime_kwargs(args))
    info = describe(args.output)
    data = {'command': 'compress', 'ok': True, 'input': os.path.abspath(args.input), 'output': info['file'],
            'file_bytes': result.file_bytes, 'valid_pixels': result.valid_pixels, 'bpppb': result.bpppb,
            'compression_ratio': result.compression_ratio, 'model': info['model'], 'model_sha256': info['model_sha256'],
            'quality': result.quality, 'max_error': result.max_error, 'bound': info['bound'], 'device': result.device,
            'provider': result.provider, 'seconds': result.seconds, 'warnings': result.warnings}
    console.result(data, f'{args.output}: {result.file_bytes:,} bytes, {result.bpppb:.4f} bpppb (ratio '
                         f'{result.compression_ratio:.1f}:1), {info["model"]} {info["mode"]} quality {result.quality}'
                         f'{_bound_text(info["bound"])}, {result.device}, {result.seconds:.1f} s')
    return EXIT_OK


def _bound_text(bound):
    return '' if bound is None else f', error {bound}'


def _measured(template, value):
    """A metric by its template; NaN (nothing measured: the SSIM of an image smaller than its window) as 'n/a',
    where the template gave 'nan'; a bit-exact PSNR stays 'inf dB'."""
    return 'n/a' if math.isnan(value) else template.format(value)


def cmd_decompress(args, console):
    from ..core.codec import decompress

    result = decompress(args.input, args.output, progress=console.progress('decompress'), **runtime_kwargs(args))
    data = {'command': 'decompress', 'ok': True, 'input': os.path.abspath(args.input),
            'output': os.path.abspath(result.path), 'device': result.device, 'provider': result.provider,
            'seconds': result.seconds}
    console.result(data, f'{args.output}: decoded on {result.device} ({result.provider}) in {result.seconds:.1f} s')
    return EXIT_OK


def cmd_evaluate(args, console):
    from ..core.evaluate import evaluate
    from ..core.outputs import scratch_claim

    scratch = None if args.reconstructed else scratch_claim()  # a killed run's is removed by the next run
    try:
        reconstructed = args.reconstructed or os.path.join(scratch.folder, 'reconstructed.tif')
        result = evaluate(args.input, reconstructed, compressed=args.compressed, error=args.error,
                          report=args.report, progress=console.progress('evaluate'), **coding_kwargs(args),
                          **runtime_kwargs(args))
    finally:
        if scratch:
            scratch.abandon()
    data = dict(result.as_dict(), command='evaluate', ok=True, input=os.path.abspath(args.input),
                reconstructed=os.path.abspath(args.reconstructed) if args.reconstructed else None)
    bound = result.error_bound or None  # any bound (a per-band or relative one was left out), in the input's units
    if bound and not result.enmap_scale and bound != 'lossless':
        bound += " in the input's units (the errors above: DN at EnMAP scale)"
    text = key_values([
        ('psnr', _measured('{:.2f} dB', result.psnr)), ('spectral angle', _measured('{:.4f} deg', result.sa_deg)),
        ('ssim', _measured('{:.5f}', result.ssim)), ('rmse', _measured('{:.2f} DN', result.rmse_dn)),
        ('max error', _measured('{:g} DN', result.max_abs_error_dn)),
        ('rate', f'{result.bpppb:.4f} bpppb (ratio {result.compression_ratio:.1f}:1)'),
        ('model', f'{result.model} quality {result.quality}{_bound_text(bound)}'),
        ('time', f'compress {result.compress_seconds:.1f} s, decompress {result.decompress_seconds:.1f} s'),
        ('reconstructed', args.reconstructed), ('error', args.error), ('compressed', args.compressed),
        ('report', args.report)])
    console.result(data, text)
    return EXIT_OK


def cmd_info(args, console):
    from .inspect import describe, describe_text

    data = describe(args.file)
    console.result(dict(data, command='info', ok=True), describe_text(data))
    return EXIT_OK


def cmd_verify(args, console):
    from .inspect import verify, verify_text

    result = verify(args.file, args.against, progress=console.progress('verify'), **runtime_kwargs(args))
    console.result(dict(result, command='verify'), verify_text(result))
    if not result['ok']:
        console.error('verify', result['error'], result_printed=True)
        return EXIT_FAILED
    return EXIT_OK


def cmd_archive(args, console):
    from .archive import run_from_args

    return run_from_args(args, console)


# --- the parser ---------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line of usage, one line of error, exit 2 (argparse's own convention)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f'{self.prog}: error: {message}\n')


def _common():
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group('output')
    group.add_argument('--json', action='store_true', help='print the result as one JSON object on stdout')
    group.add_argument('--quiet', '-q', action='store_true', help='print nothing but errors (no progress bar)')
    group.add_argument('--debug', action='store_true', help='show the traceback of an unexpected error')
    return parent


def build_parser():
    common = _common()
    parser = _Parser(prog=PROGRAM, description='Compress EnMAP hyperspectral images into .ehc files and back.',
                     epilog='Inputs: ' + INPUT_FORMS + '. Run "enmap-compress COMMAND --help" for the options.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', parser_class=_Parser)
    commands.required = True

    def command(name, handler, help_text):
        sub = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    sub = command('compress', cmd_compress, 'compress an EnMAP image into a .ehc file')
    sub.add_argument('input', help=INPUT_FORMS)
    sub.add_argument('output', help='the .ehc file to write')
    add_coding_options(sub)
    add_runtime_options(sub)

    sub = command('decompress', cmd_decompress, 'decompress a .ehc file to a GeoTIFF (band order, nodata, '
                                                'georeferencing and wavelengths of the original)')
    sub.add_argument('input', help='a .ehc file')
    sub.add_argument('output', help='the GeoTIFF to write')
    add_runtime_options(sub)

    sub = command('evaluate', cmd_evaluate, 'compress, decompress and measure: PSNR, spectral angle, SSIM, maximum '
                                            'error and the real rate')
    sub.add_argument('input', help=INPUT_FORMS)
    sub.add_argument('--reconstructed', metavar='TIF', help='keep the reconstruction here (GeoTIFF)')
    sub.add_argument('--error', metavar='TIF', help='write the per-pixel error raster here')
    sub.add_argument('--compressed', metavar='EHC', help='keep the .ehc file here')
    sub.add_argument('--report', metavar='HTML', help='write an HTML report here')
    add_coding_options(sub)
    add_runtime_options(sub)

    sub = command('info', cmd_info, 'show what a .ehc file holds (model and its sha256, quality or bound, size, '
                                    'CRS, bands, rate, software versions)')
    sub.add_argument('file', help='a .ehc file')

    sub = command('verify', cmd_verify, 'check every checksum and decode every tile; with --against, compare '
                                        'with the original')
    sub.add_argument('file', help='a .ehc file')
    sub.add_argument('--against', metavar='ORIGINAL', help='the original image (' + INPUT_FORMS + ')')
    add_runtime_options(sub)

    from .archive import add_archive_parser

    add_archive_parser(command('archive', cmd_archive, 'compress every product under SRC into DEST (resumable; '
                                                       'on a Dask cluster with --workers or --scheduler)'))
    return parser


@contextlib.contextmanager
def _warnings_to(console):
    """The core's warnings go to the console while a command runs; the logger is as it was afterwards (main() may be
    called from a Python program or a test, not only as the entry point)."""
    logger = logging.getLogger('enmap_compress')
    saved = logger.handlers[:], logger.level, logger.propagate
    logger.handlers[:] = [WarningHandler(console)]
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], level, logger.propagate = saved
        logger.setLevel(level)


PRELOADED = ('osgeo.gdal', 'onnxruntime')  # C extensions whose initialisation swallows a KeyboardInterrupt in it


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (a scheduler's or a service manager's stop) ends a command as Ctrl+C does: the core then removes its
    claim folders and scratch copies (the default action killed it with them left behind). Only from the main
    thread, and the previous handlers are back afterwards (main() may run inside another program).
    PRELOADED is imported first with both signals only noted: GDAL's module initialisation swallowed the
    KeyboardInterrupt of a stop in the first half second, and the run went on to replace its output; a stop noted
    meanwhile interrupts right after."""
    term = getattr(signal, 'SIGTERM', None)
    if term is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_number, _frame):
        raise KeyboardInterrupt

    noted = []
    previous = {number: signal.signal(number, lambda n, _f: noted.append(n)) for number in (signal.SIGINT, term)}
    try:
        for name in PRELOADED:
            with contextlib.suppress(ImportError):  # (a missing onnxruntime is said when a model needs it)
                importlib.import_module(name)
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
        signal.signal(term, interrupt)
        if noted:
            raise KeyboardInterrupt
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)  # (imports the core's modules: a second or so on a cold start)
    except KeyboardInterrupt:  # Ctrl+C before any command started: nothing to clean up, and no traceback
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.write(f'{PROGRAM}: error: interrupted before the command started\n')
        return EXIT_CANCELLED
    console = Console(as_json=args.json, quiet=args.quiet)
    try:
        with _warnings_to(console), _terminate_as_interrupt():
            return args.handler(args, console)
    except StdoutLostError as exc:  # (the command's outputs are written; only its result did not reach the reader)
        console.error(args.command, exc, result_printed=True)
        return EXIT_FAILED
    except CancelledError as exc:
        console.error(args.command, exc)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        console.error(args.command, 'interrupted; nothing partial was left behind')
        return EXIT_CANCELLED
    except EnmapCompressError as exc:
        console.error(args.command, exc)
        return EXIT_FAILED
    except OSError as exc:  # a file the core does not open itself (permissions, a vanished path, a full disk)
        console.error(args.command, os_error_text(exc))
        return EXIT_FAILED
    except Exception as exc:  # anything else is a bug: still one line, the traceback only on request
        if args.debug:
            console.end_progress()
            traceback.print_exc()
        console.error(args.command, f'unexpected {type(exc).__name__}: {exc}',
                      hint='run again with --debug for the traceback, and please report it')
        return EXIT_FAILED
    finally:
        console.end_progress()


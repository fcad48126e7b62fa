"""The enmap-compress command line end to end: every command, --json parsed, exit codes, one-line errors."""
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from osgeo import gdal

from enmap_compress.plugin.cli import main as cli
from enmap_compress.plugin.core.runtime import find_model
from tools import synthetic

ENTRY_POINT = os.path.join(os.path.dirname(sys.executable), 'enmap-compress')


@pytest.fixture(scope='module')
def product(tmp_path_factory):
    return synthetic.write_product(str(tmp_path_factory.mktemp('cli')), width=48, height=40, seed=7, make_zip=True)


@pytest.fixture(scope='module')
def lossless(product, tmp_path_factory):
    path = str(tmp_path_factory.mktemp('lossless') / 'l.ehc')
    assert cli.main(['compress', product.zip, path, '--model', 'pca', '--max-error', '0', '--quiet']) == 0
    return path


def run(capsys, *argv):
    """(exit status, stdout, stderr) of one in-process run."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys, *argv):
    status, out, err = run(capsys, *argv, '--json')
    return status, json.loads(out), err


def assert_one_line_error(err, fragment):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('enmap-compress: error: ') and fragment in lines[0], err
    assert 'Traceback' not in err


def test_compress_json_reports_the_file_on_disk(product, tmp_path, capsys):
    out = tmp_path / 'a.ehc'
    status, data, _ = run_json(capsys, 'compress', product.zip, out, '--model', 'pca', '--quality', '6',
                               '--device', 'cpu', '--threads', '1')
    assert status == 0 and data['ok'] and data['command'] == 'compress'
    assert data['file_bytes'] == os.path.getsize(out)
    assert data['bpppb'] == pytest.approx(os.path.getsize(out) * 8 / (data['valid_pixels'] * 202))
    assert (data['model'], data['quality'], data['max_error']) == ('pca', 6, None)
    assert data['model_sha256'] == find_model('pca').decoder_sha256()[:16]  # as the file states it (3.x)


def test_compress_accepts_every_input_form(product, tmp_path, capsys):
    for number, source in enumerate((product.folder, product.xml, product.zip, product.image)):
        status, data, _ = run_json(capsys, 'compress', source, tmp_path / f'{number}.ehc', '--model', 'pca')
        assert status == 0, source
        assert data['valid_pixels'] > 0


def test_info_shows_model_bound_size_crs_bands_rate_and_versions(lossless, capsys):
    status, data, _ = run_json(capsys, 'info', lossless)
    assert status == 0
    assert data['model'] == 'pca' and data['model_sha256'] == find_model('pca').decoder_sha256()[:16]
    assert data['model_state'] == 'installed'
    assert (data['mode'], data['max_error']) == ('lossless', 0)
    assert (data['width'], data['height'], data['bands'], data['dtype']) == (48, 40, 224, 'int16')
    assert data['crs'] == 'EPSG:32633' and data['nodata'] == -32768
    assert data['file_bytes'] == os.path.getsize(lossless)
    assert data['bpppb'] == pytest.approx(data['file_bytes'] * 8 / (data['valid_pixels'] * 202))
    assert {'enmap_compress', 'numpy', 'python'} <= set(data['software'])
    status, text, _ = run(capsys, 'info', lossless)
    assert status == 0 and 'model sha256:' in text and 'EPSG:32633' in text and 'lossless' in text


def test_verify_lossless_against_the_original_is_bit_exact(lossless, product, capsys):
    status, data, _ = run_json(capsys, 'verify', lossless, '--against', product.folder)
    assert status == 0 and data['ok'] and data['checksums'] == 'ok'
    assert data['exact'] is True and data['max_abs_error'] == 0 and data['bound_held']


def test_verify_against_the_original_keeps_gdal_cache_to_a_row_of_tiles(product, tmp_path, monkeypatch, capsys):
    """GDAL's cache of the original is dropped after each row of tiles: it held the whole image (966 MB peak RSS
    for a full 1200 x 1200 tile, 405 MB with it dropped)."""
    from gdal_cache import cache_growth_at, striped_copy

    from enmap_compress.plugin.core import enmap
    from enmap_compress.plugin.core.codec import compress

    striped = striped_copy(product.image, str(tmp_path / 'striped.tif'))
    path = tmp_path / 's.ehc'
    compress(striped, str(path), 'pca', device='cpu', max_error=0, tile_size=4)
    growth = cache_growth_at(monkeypatch, enmap.SpectralRaster, 'read')
    status, data, _ = run_json(capsys, 'verify', path, '--against', striped)
    assert status == 0 and data['exact'] is True
    assert max(growth) < 48 * 40 * 224 * 2 / 3  # 10 rows of tiles: a row's blocks, not the image's


def test_verify_against_another_image_fails(lossless, tmp_path, capsys):
    other = synthetic.write_scene(str(tmp_path / 'other.tif'), width=48, height=40, seed=8)
    status, data, err = run_json(capsys, 'verify', lossless, '--against', other)
    assert status == 1 and data['ok'] is False and data['exact'] is False
    assert 'promises bit-exact' in data['error']
    assert 'enmap-compress: error:' in err and 'Traceback' not in err


def test_verify_reports_metrics_of_a_bounded_file(product, tmp_path, capsys):
    path = tmp_path / 'b.ehc'
    assert run(capsys, 'compress', product.zip, path, '--model', 'pca', '--max-error', '7')[0] == 0
    status, data, _ = run_json(capsys, 'verify', path, '--against', product.zip)
    assert status == 0 and data['mode'] == 'error-bounded'
    assert 0 < data['max_abs_error'] <= 7 and data['psnr'] > 60
    status, out, _ = run(capsys, 'verify', path, '--against', product.zip)
    # the maximum error is of the HySpecNet bands (less dead ones), not of the 224 bands a bounded file codes
    assert status == 0 and '202 coded bands' not in out and 'HySpecNet bands less dead ones' in out


def test_relative_and_per_band_bounds_are_options_and_verify_checks_them(product, tmp_path, capsys):
    path = tmp_path / 'rel.ehc'
    status, data, _ = run_json(capsys, 'compress', product.zip, path, '--model', 'pca', '--relative-error', '0.01',
                               '--relative-floor', '2')
    assert status == 0 and data['bound'] == '<= 1 % of the value, at least 2 DN' and data['max_error'] is None
    status, info, _ = run_json(capsys, 'info', path)
    assert info['mode'] == 'error-bounded' and info['bound'] == data['bound']
    status, check, _ = run_json(capsys, 'verify', path, '--against', product.zip)
    assert status == 0 and check['bound_held'] and check['max_abs_error'] > 2
    status, _, err = run(capsys, 'compress', product.zip, tmp_path / 'x.ehc', '--band-max-errors', '1,2,3')
    assert status == 1
    assert_one_line_error(err, 'BAND_MAX_ERRORS must give 224 values')


def test_verify_finds_a_damaged_tile(lossless, tmp_path, capsys):
    damaged = tmp_path / 'damaged.ehc'
    data = bytearray(open(lossless, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    status, out, err = run_json(capsys, 'verify', damaged)
    assert status == 1 and out['ok'] is False
    assert_one_line_error(err, 'corrupt')


def test_verify_names_a_file_of_another_model_version(lossless, tmp_path, capsys):
    """The model's sha256 is compared after every checksum: that refusal names the file too."""
    from ehc_forge import EhcParts
    parts = EhcParts.read(lossless)
    parts.header['codec']['model_sha256'] = '0' * 16
    other = tmp_path / 'other.ehc'
    other.write_bytes(parts.build())
    status, out, err = run_json(capsys, 'verify', other)
    assert status == 1 and out['ok'] is False
    assert_one_line_error(err, f'{other}: this file was made with a different version of model "pca"')


def test_decompress_and_evaluate(lossless, product, tmp_path, capsys):
    tif = tmp_path / 'r.tif'
    status, data, _ = run_json(capsys, 'decompress', lossless, tif, '--device', 'cpu')
    assert status == 0 and data['output'] == str(tif)
    restored = gdal.Open(str(tif)).ReadAsArray()
    original = gdal.Open(product.image).ReadAsArray()
    np.testing.assert_array_equal(restored, original)
    status, data, _ = run_json(capsys, 'evaluate', product.zip, '--model', 'pca', '--quality', '4',
                               '--error', tmp_path / 'err.tif')
    assert status == 0 and 30 < data['psnr'] < 80 and data['bpppb'] > 0
    assert os.path.isfile(tmp_path / 'err.tif') and data['reconstructed'] is None
    status, every, _ = run_json(capsys, 'evaluate', product.zip, '--model', 'pca', '--quality', '4',
                                '--code-all-bands', '--reconstructed', tmp_path / 'all.tif')
    assert status == 0 and every['bpppb'] > data['bpppb'] and every['psnr'] == pytest.approx(data['psnr'], abs=0.01)
    water = gdal.Open(str(tmp_path / 'all.tif')).ReadAsArray(band_list=[128])  # (a water-vapour band, not dead)
    assert (water != -32768).any()  # kept (0.7.2: evaluate had no such option, and it came back as nodata)


def test_evaluate_text_states_any_bound_and_unmeasured_metrics_in_words(tmp_path, capsys):
    """The text result left out a relative (or per-band) bound, and printed the SSIM of an image smaller than its
    7 x 7 window as 'nan'."""
    small = synthetic.write_scene(str(tmp_path / 'small.tif'), width=6, height=5, seed=3)
    status, out, _ = run(capsys, 'evaluate', small, '--model', 'pca', '--relative-error', '0.01',
                         '--relative-floor', '3', '--device', 'cpu')
    assert status == 0
    lines = dict(line.split(':', 1) for line in out.splitlines())
    assert lines['ssim'].strip() == 'n/a' and 'nan' not in out
    assert 'error <= 1 % of the value, at least 3 DN' in lines['model']


def test_a_bad_input_is_one_line_and_exit_1(tmp_path, capsys):
    status, _, err = run(capsys, 'compress', tmp_path / 'missing.ZIP', tmp_path / 'x.ehc')
    assert status == 1
    assert_one_line_error(err, 'does not exist')
    (tmp_path / 'junk.ehc').write_bytes(b'not an ehc file')
    status, data, err = run_json(capsys, 'info', tmp_path / 'junk.ehc')
    assert status == 1 and data == {'command': 'info', 'ok': False, 'error': data['error']}
    assert_one_line_error(err, 'not an EnMAP Compress .ehc file')
    assert not os.path.exists(tmp_path / 'x.ehc')


def test_info_checks_the_header_like_the_decoder_and_names_the_bad_field(lossless, tmp_path, capsys):
    """`info` and the Browser share one summary (core/ehcinfo.py), read through the decoder's checks."""
    from ehc_forge import EhcParts

    parts = EhcParts.read(lossless)
    del parts.header['codec']['model_id']
    (tmp_path / 'no_model.ehc').write_bytes(parts.build())
    status, _, err = run(capsys, 'info', tmp_path / 'no_model.ehc')
    assert status == 1
    assert_one_line_error(err, 'codec.model_id is missing')


def test_main_leaves_the_library_logger_as_it_was(lossless, capsys):
    """main() called from a program (or a test) must not reconfigure the core's logger for the rest of the process."""
    import logging

    logger = logging.getLogger('enmap_compress')
    before = logger.handlers[:], logger.level, logger.propagate
    run(capsys, 'info', lossless)
    assert (logger.handlers[:], logger.level, logger.propagate) == before


@pytest.mark.parametrize('argv', [
    ['compress', 'in.zip', 'out.ehc', '--quality', '11'],
    ['compress', 'in.zip', 'out.ehc', '--max-error', '-1'],
    ['compress', 'in.zip', 'out.ehc', '--relative-error', '2'],
    ['compress', 'in.zip', 'out.ehc', '--threads', '1000000'],
    ['compress', 'in.zip', 'out.ehc', '--quality', '1_0'],
    ['compress', 'in.zip', 'out.ehc', '--quality', '\u0665'],
    ['compress', 'in.zip', 'out.ehc', '--max-error', '1_000'],
    ['compress', 'in.zip', 'out.ehc', '--relative-error', '0.0_1'],
    ['archive', 'src', 'dest', '--threads', '99999999999999999999'],
    ['compress', 'in.zip'],
    ['archive', 'src', 'dest', '--workers', '2', '--scheduler', 'tcp://127.0.0.1:1'],
    ['frobnicate'],
    [],
])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert 'usage:' in capsys.readouterr().err


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(lossless, monkeypatch, capsys):
    def broken(path):
        raise RuntimeError('a bug')

    monkeypatch.setattr('enmap_compress.plugin.cli.inspect.describe', broken)
    status, _, err = run(capsys, 'info', lossless)
    assert status == 1
    assert_one_line_error(err, 'unexpected RuntimeError: a bug (run again with --debug')
    status, _, err = run(capsys, 'info', lossless, '--debug')
    assert status == 1 and 'Traceback' in err


def test_quiet_prints_nothing_and_piped_output_has_no_progress_bar(product, tmp_path, capsys):
    status, out, err = run(capsys, 'compress', product.zip, tmp_path / 'q.ehc', '--model', 'pca', '--quiet')
    assert status == 0 and out == '' and err == ''
    status, out, err = run(capsys, 'compress', product.zip, tmp_path / 'p.ehc', '--model', 'pca')
    assert status == 0 and 'bpppb' in out and '\r' not in err


def test_the_installed_entry_point_runs_and_exits_like_main(lossless, tmp_path):
    result = subprocess.run([ENTRY_POINT, 'info', lossless, '--json'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout)['model'] == 'pca'
    result = subprocess.run([ENTRY_POINT, 'info', str(tmp_path / 'none.ehc')], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and result.stdout == ''
    assert_one_line_error(result.stderr, 'Cannot open')


@pytest.mark.skipif(os.name != 'posix', reason='pseudo-terminals are POSIX')
def test_a_terminal_gets_a_progress_bar(product, tmp_path):
    import pty

    leader, follower = pty.openpty()
    try:
        result = subprocess.run([ENTRY_POINT, 'compress', product.zip, str(tmp_path / 't.ehc'), '--model', 'pca'],
                                stdout=subprocess.PIPE, stderr=follower, timeout=120)
        os.close(follower)
        follower = None
        shown = b''
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert result.returncode == 0
    assert b'compress [' in shown and b'100%' in shown


SWALLOWING_MODULE = '''
import os, signal, time
try:  # as GDAL's module initialisation does with a KeyboardInterrupt raised while it runs
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
except KeyboardInterrupt:
    pass
'''


@pytest.mark.skipif(os.name != 'posix', reason='a SIGTERM to this process is POSIX')
def test_a_stop_while_the_c_extensions_load_is_not_lost(product, tmp_path, monkeypatch, capsys):
    """A SIGTERM or Ctrl+C in the first half second was swallowed by GDAL's initialisation: the run went on, replaced
    its output and exited 0. The extensions now load with the signals only noted, and a noted stop interrupts."""
    (tmp_path / 'swallowing_extension.py').write_text(SWALLOWING_MODULE, encoding='utf-8')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cli, 'PRELOADED', ('swallowing_extension',))
    out, before = tmp_path / 'x.ehc', (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    status, _, err = run(capsys, 'compress', product.zip, out, '--model', 'pca', '--device', 'cpu')
    assert status == 130 and 'interrupted' in err and not out.exists()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


class _BrokenPipe:
    """A stdout whose reader has gone (`enmap-compress ... --json | head -c 10`)."""

    def write(self, text):
        raise BrokenPipeError(32, 'Broken pipe')

    def flush(self):
        raise BrokenPipeError(32, 'Broken pipe')

    def isatty(self):
        return False


@pytest.mark.parametrize('as_json', [False, True])
def test_a_broken_pipe_or_closed_stdout_is_one_line_not_a_traceback(lossless, tmp_path, monkeypatch, capsys, as_json):
    """0.7 printed "unexpected AttributeError" (stdout closed, `>&-`) or, with --json, a chained traceback of two
    BrokenPipeErrors: the error handler wrote its JSON to the broken stdout again."""
    out = tmp_path / 'x.tif'
    argv = ['decompress', lossless, str(out)] + (['--json'] if as_json else [])
    monkeypatch.setattr(sys, 'stdout', _BrokenPipe())
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status == 1 and os.path.exists(out)
    assert_one_line_error(err, 'the result could not be printed')
    monkeypatch.setattr(sys, 'stdout', None)  # how Python starts when the shell closed stdout
    assert cli.main(argv) == 0
    assert capsys.readouterr().err == ''


def test_a_name_the_redirected_stdout_cannot_encode_is_printed_escaped(lossless, tmp_path, monkeypatch, capsys):
    """On Windows a stdout redirected to a file or a pipe encodes in the ANSI code page (cp1252): 0.7.3 took the
    UnicodeEncodeError of a Cyrillic output name for a closed stdout, said the result could not be printed and
    exited 1 with the file written."""
    out = tmp_path / 'Потсдам.tif'
    stdout = io.TextIOWrapper(io.BytesIO(), encoding='cp1252', newline='')
    monkeypatch.setattr(sys, 'stdout', stdout)
    assert cli.main(['decompress', lossless, str(out)]) == 0
    assert capsys.readouterr().err == '' and out.exists()
    stdout.flush()
    printed = stdout.buffer.getvalue().decode('cp1252')
    assert '\\u041f\\u043e' in printed and printed.endswith('s\n')


def test_a_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    """0.7 built the parser (importing the core) outside its handlers: a Ctrl+C in that first second printed a
    KeyboardInterrupt traceback."""
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, 'build_parser', interrupted)
    assert cli.main(['info', 'x.ehc']) == 130
    assert_one_line_error(capsys.readouterr().err, 'interrupted')

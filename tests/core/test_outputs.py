"""Output checks and atomic writing."""
import os
import re
import sys

import pytest
from osgeo import gdal

from enmap_compress.plugin.core.errors import OutputError
from enmap_compress.plugin.core.outputs import atomic_output, check_writable


def test_check_writable_accepts_a_writable_folder_and_leaves_nothing(tmp_path):
    check_writable(str(tmp_path / 'out.tif'))
    assert os.listdir(tmp_path) == []


def test_check_writable_accepts_a_folder_that_can_be_created(tmp_path):
    target = tmp_path / 'new' / 'deeper' / 'out.tif'
    check_writable(str(target))
    assert not (tmp_path / 'new').exists()  # checking creates nothing


def test_check_writable_rejects_a_file_as_parent_folder(tmp_path):
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('x')
    with pytest.raises(OutputError, match='Cannot write to folder .*is a file, not a folder'):
        check_writable(str(blocker / 'out.tif'))


def test_check_writable_rejects_a_folder_as_output(tmp_path):
    with pytest.raises(OutputError, match='is a folder; expected a file name'):
        check_writable(str(tmp_path))


@pytest.mark.skipif(sys.platform == 'win32' or os.geteuid() == 0,
                    reason='chmod does not stop root (or Windows) from writing')
def test_check_writable_rejects_a_read_only_folder(tmp_path):
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match='read-only or no permission'):
            check_writable(str(folder / 'out.tif'))
    finally:
        folder.chmod(0o700)


def test_atomic_output_moves_the_file_into_place(tmp_path):
    target = tmp_path / 'rec.tif'
    with atomic_output(str(target)) as tmp:
        assert os.path.dirname(tmp) == str(tmp_path / '.rec.tif.enmapcompress.part')
        assert tmp.endswith('.tif')
        with open(tmp, 'w') as f:
            f.write('new')
    assert target.read_text() == 'new'
    assert os.listdir(tmp_path) == ['rec.tif']


def test_atomic_output_replaces_an_existing_file(tmp_path):
    target = tmp_path / 'rec.tif'
    target.write_text('old')
    with atomic_output(str(target)) as tmp, open(tmp, 'w') as f:
        f.write('new')
    assert target.read_text() == 'new'


@pytest.mark.parametrize('error', [RuntimeError('boom'), KeyboardInterrupt()])
def test_atomic_output_leaves_nothing_on_error(tmp_path, error):
    target = tmp_path / 'rec.tif'
    target.write_text('old')
    with pytest.raises(type(error)):
        with atomic_output(str(target)) as tmp:
            for name in (tmp, tmp + '.aux.xml', os.path.splitext(tmp)[0] + '.hdr'):
                with open(name, 'w') as f:
                    f.write('partial')
            raise error
    assert os.listdir(tmp_path) == ['rec.tif']
    assert target.read_text() == 'old'


def test_atomic_output_moves_gdal_side_cars(tmp_path):
    target = tmp_path / 'scene.bsq'
    (tmp_path / 'scene.bsq.aux.xml').write_text('stale statistics')
    with atomic_output(str(target)) as tmp:
        ds = gdal.GetDriverByName('ENVI').Create(tmp, 4, 3, 2, gdal.GDT_Int16)
        ds.GetRasterBand(1).SetMetadataItem('wavelength', '500')  # makes GDAL write an .aux.xml
        ds = None
    assert sorted(os.listdir(tmp_path)) == ['scene.bsq', 'scene.bsq.aux.xml', 'scene.hdr']
    assert 'stale' not in (tmp_path / 'scene.bsq.aux.xml').read_text()
    assert gdal.Open(str(target)).RasterCount == 2


def test_atomic_output_removes_a_stale_aux_xml(tmp_path):
    target = tmp_path / 'x.tif'
    (tmp_path / 'x.tif.aux.xml').write_text('stale')
    with atomic_output(str(target)) as tmp, open(tmp, 'w') as f:
        f.write('new')
    assert os.listdir(tmp_path) == ['x.tif']


def test_atomic_output_creates_the_folder(tmp_path):
    target = tmp_path / 'a' / 'b' / 'x.ehc'
    with atomic_output(str(target)) as tmp, open(tmp, 'wb') as f:
        f.write(b'1')
    assert target.read_bytes() == b'1'


def test_atomic_output_without_a_written_file_is_an_error(tmp_path):
    with pytest.raises(OutputError, match='Nothing was written'):
        with atomic_output(str(tmp_path / 'x.tif')):
            pass
    assert os.listdir(tmp_path) == []


def test_atomic_output_cannot_create_folder_under_a_file(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(OutputError, match='Cannot create the output folder'):
        with atomic_output(str(tmp_path / 'file' / 'x.tif')):
            pass


def test_no_output_overwrites_its_own_input_or_another_output(tmp_path):
    """0.5.3 let evaluate write its reconstruction over its own input and decompress a GeoTIFF over the .ehc it
    read; each is now one OutputError before anything runs, also through another spelling of the path."""
    from enmap_compress.plugin.core.codec import compress, decompress
    from enmap_compress.plugin.core.evaluate import evaluate
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=12, height=10, seed=1)
    before = open(source, 'rb').read()
    ehc = str(tmp_path / 'scene.ehc')
    compress(source, ehc, 'pca', 3, 'cpu')
    packed = open(ehc, 'rb').read()
    other_spelling = str(tmp_path / '.' / 'scene.tif')
    os.link(source, str(tmp_path / 'linked.tif'))
    calls = [lambda: evaluate(source, other_spelling, model='pca', quality=3),
             lambda: evaluate(source, str(tmp_path / 'linked.tif'), model='pca', quality=3),
             lambda: evaluate(source, str(tmp_path / 'r.tif'), model='pca', quality=3, error=str(tmp_path / 'r.tif')),
             lambda: decompress(ehc, ehc, 'cpu')]
    for call in calls:
        with pytest.raises(OutputError, match='it would be overwritten'):
            call()
    assert open(source, 'rb').read() == before and open(ehc, 'rb').read() == packed
    assert not os.path.exists(tmp_path / 'r.tif')


def test_a_geotiff_output_must_be_named_as_one(tmp_path):
    """decompress and evaluate write GeoTIFF whatever the name: an .img, .sdat or .png name (formats a Processing
    file dialog offers) is refused before anything runs; .tif and .tiff in any case are fine."""
    from enmap_compress.plugin.core.codec import compress, decompress
    from enmap_compress.plugin.core.evaluate import evaluate
    from enmap_compress.plugin.core.outputs import check_named
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=8, height=6, seed=1)
    ehc = str(tmp_path / 'scene.ehc')
    compress(source, ehc, 'pca', 3, 'cpu')
    for name in ('out.img', 'out.sdat', 'out.png', 'out'):
        with pytest.raises(OutputError, match=r'written as a GeoTIFF; name it \.tif or \.tiff'):
            decompress(ehc, str(tmp_path / name), 'cpu')
        assert not os.path.exists(tmp_path / name)
    with pytest.raises(OutputError, match='written as a GeoTIFF'):
        evaluate(source, str(tmp_path / 'r.tif'), model='pca', quality=3, error=str(tmp_path / 'e.img'))
    with pytest.raises(OutputError, match=r'is an HTML page; name it \.html'):
        evaluate(source, str(tmp_path / 'r.tif'), model='pca', quality=3, report=str(tmp_path / 'report.pdf'))
    for name in ('a.tif', 'b.TIFF', 'c.Tif'):
        check_named(str(tmp_path / name), 'geotiff')


def test_compare_refuses_an_error_map_over_its_inputs_or_not_named_as_a_geotiff(tmp_path):
    from enmap_compress.plugin.core.compare import compare
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=8, height=6, seed=1)
    before = open(source, 'rb').read()
    with pytest.raises(OutputError, match='it would be overwritten'):
        compare(source, source, error_path=source)
    with pytest.raises(OutputError, match='written as a GeoTIFF'):
        compare(source, source, error_path=str(tmp_path / 'e.img'))
    assert open(source, 'rb').read() == before


@pytest.mark.parametrize('path', ['/vsimem/x.ehc', '/vsizip/a.zip/x.tif'])
def test_a_gdal_virtual_output_path_is_refused(path):
    """0.7.0 made /vsimem/ as a real folder at the disk's root for a compress there (a decompress failed oddly)."""
    existed = os.path.exists('/vsimem')
    with pytest.raises(OutputError, match='GDAL virtual path'):
        check_writable(path)
    assert os.path.exists('/vsimem') == existed


def test_a_name_too_long_for_the_file_system_is_refused_before_any_work(tmp_path):
    """A 256-byte name passed every check and failed only when the finished file was moved into place."""
    check_writable(str(tmp_path / ('a' * 251 + '.ehc')))  # 255 bytes
    with pytest.raises(OutputError, match='too long for a file system .256 bytes; at most 255'):
        check_writable(str(tmp_path / ('a' * 252 + '.ehc')))
    if os.name != 'nt':  # (NTFS counts UTF-16 units: 130 there)
        with pytest.raises(OutputError, match='too long'):
            check_writable(str(tmp_path / ('é' * 126 + '.ehc')))  # 256 bytes in UTF-8
    assert os.listdir(tmp_path) == []


def _padded(tmp_path, length):
    """A folder path of `length` characters under tmp_path (not made)."""
    return str(tmp_path) + os.sep + 'd' * (length - len(str(tmp_path)) - 1)


def test_a_path_too_long_for_windows_is_refused_before_any_work(tmp_path, monkeypatch):
    """Without long-path support Windows opens no path beyond 259 characters (MAX_PATH), and the temporary file of
    an output lies in a claim folder beside it, named after it: an output path 43 characters short of the limit
    passed every check and failed when that folder or file was made."""
    from enmap_compress.plugin.core import outputs

    fits = os.path.join(_padded(tmp_path, 216), 'x.ehc')  # .x.ehc.enmapcompress.part/part.ehc.aux.xml: 259
    longer = os.path.join(_padded(tmp_path, 217), 'x.ehc')
    with monkeypatch.context() as windows:  # (left before pytest reports: its pathlib cannot be Windows here)
        windows.setattr(os, 'name', 'nt')
        windows.setattr(outputs, '_windows_long_paths', lambda: False, raising=False)
        check_writable(fits)
        with pytest.raises(OutputError, match='The output path .*x.ehc is too long for Windows: its temporary '
                                              'file beside it takes 260 characters .at most 259.'):
            check_writable(longer)
        windows.setattr(outputs, '_windows_long_paths', lambda: True)  # (the system and the program allow them)
        check_writable(longer)
    assert os.listdir(tmp_path) == []


def test_evaluate_refuses_an_output_too_long_for_windows_before_it_compresses(tmp_path, monkeypatch):
    """evaluate's writers claim their staged files again, one folder deeper (29 more characters and a file name):
    an output that fits one claim passed evaluate's checks, and on Windows the decompress failed after the compress,
    naming a folder inside the claim."""
    from enmap_compress.plugin.core import evaluate as evaluating
    from enmap_compress.plugin.core import outputs
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=8, height=6, seed=1)
    folder = _padded(tmp_path, 200)
    reconstructed = os.path.join(folder, 'r.tif')  # one claim: 243 characters; nested: 272

    def compress(*_args, **_kwargs):
        raise AssertionError('compress ran')

    monkeypatch.setattr(evaluating, 'compress', compress)
    with monkeypatch.context() as windows:
        windows.setattr(os, 'name', 'nt')
        windows.setattr(outputs, '_windows_long_paths', lambda: False, raising=False)
        check_writable(reconstructed)
        with pytest.raises(OutputError, match=f'The output path {re.escape(reconstructed)} is too long for '
                                              'Windows: .* 272 '):
            evaluating.evaluate(source, reconstructed, model='pca', quality=3, device='cpu',
                                compressed=str(tmp_path / 'c.ehc'))  # (no scratch claim in the shared /tmp)
    assert os.listdir(folder) == [] and sorted(os.listdir(tmp_path)) == [os.path.basename(folder), 'scene.tif']


@pytest.mark.parametrize('output', ['reconstructed', 'error'])
@pytest.mark.parametrize('named', ['folder', 'xml'])
def test_evaluate_never_writes_over_the_image_of_the_product_it_reads(tmp_path, output, named):
    """A product folder (or its METADATA.XML) names its image only when it is opened: 0.7 compared the outputs with
    the folder's path and replaced the product's SPECTRAL_IMAGE.TIF with the reconstruction (or the error raster)."""
    from enmap_compress.plugin.core.compare import compare
    from enmap_compress.plugin.core.evaluate import evaluate
    from tools import synthetic

    product = synthetic.write_product(str(tmp_path / 'p'), width=12, height=10, seed=2)
    before = open(product.image, 'rb').read()
    source = product.folder if named == 'folder' else product.xml
    with pytest.raises(OutputError, match='it would be overwritten'):
        evaluate(source, product.image if output == 'reconstructed' else str(tmp_path / 'r.tif'), model='pca',
                 quality=3, device='cpu', **({'error': product.image} if output == 'error' else {}))
    with pytest.raises(OutputError, match='it would be overwritten'):
        compare(source, source, error_path=product.image)
    assert open(product.image, 'rb').read() == before
    assert sorted(os.listdir(product.folder)) == sorted(os.path.basename(p) for p in (
        product.image, product.xml, product.quality_classes))
    assert not os.path.exists(tmp_path / 'r.tif')


@pytest.mark.parametrize('failing', ['setting the old file aside', 'moving the new file in'])
def test_evaluate_replaces_all_its_outputs_or_none(tmp_path, monkeypatch, failing):
    """evaluate moved its outputs into place one after another: when one could not be replaced (on Windows the
    reconstruction open in QGIS) the .ehc file before it was already the new one, beside the old reconstruction."""
    from enmap_compress.plugin.core import outputs
    from enmap_compress.plugin.core.evaluate import evaluate
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=12, height=10, seed=1)
    names = {'compressed': 'c.ehc', 'reconstructed': 'r.tif', 'error': 'e.tif', 'report': 'r.html'}
    paths = {key: str(tmp_path / 'out' / name) for key, name in names.items()}
    os.mkdir(tmp_path / 'out')
    for path in paths.values():
        with open(path, 'w') as f:
            f.write('old')
    real = os.replace

    def replace(src, dst):
        src, dst = os.fspath(src), os.fspath(dst)
        if failing == 'setting the old file aside' and paths['reconstructed'] in (src, dst):
            raise PermissionError(13, 'Permission denied', src)  # as Windows says for a file open elsewhere
        if failing == 'moving the new file in' and dst == paths['report'] and '/previous-' not in src.replace(
                '\\', '/'):
            raise PermissionError(13, 'Permission denied', dst)
        return real(src, dst)

    monkeypatch.setattr(outputs.os, 'replace', replace)
    with pytest.raises(OutputError, match='Cannot replace .*r\\.(tif|html) .*Permission denied'):
        evaluate(source, paths['reconstructed'], 'pca', 3, 'cpu', compressed=paths['compressed'],
                 error=paths['error'], report=paths['report'])
    monkeypatch.setattr(outputs.os, 'replace', real)
    assert sorted(os.listdir(tmp_path / 'out')) == sorted(names.values())
    for path in paths.values():
        assert open(path, 'rb').read() == b'old', path


def test_a_write_error_inside_nested_claims_names_the_output_and_its_folder(tmp_path):
    """evaluate's writers claim their own temporary file inside evaluate's claim: a full disk was told as
    `.c.ehc.enmapcompress.part/part.ehc` in `.c.ehc.enmapcompress.part`."""
    import errno

    from enmap_compress.plugin.core.outputs import CLAIM_SUFFIX, shown_path, write_error

    nested = tmp_path / f'.c.ehc{CLAIM_SUFFIX}' / f'.part.ehc{CLAIM_SUFFIX}' / 'part.ehc'
    assert shown_path(str(nested)) == str(tmp_path / 'c.ehc')
    message = str(write_error(str(nested.parent.parent / 'part.ehc'), OSError(errno.ENOSPC, 'No space left')))
    assert message.startswith(f'Cannot write {tmp_path / "c.ehc"}: not enough disk space in {tmp_path}; '), message
    scratch = tmp_path / f'.enmapcompress-scratch-0123abcd{CLAIM_SUFFIX}' / 'evaluate.ehc'
    message = str(write_error(str(scratch), OSError(errno.ENOSPC, 'No space left')))
    assert f'not enough disk space in {tmp_path};' in message, message  # (the temporary folder that is full)


def test_evaluate_refuses_a_compressed_output_not_named_ehc_by_its_own_name(tmp_path):
    """evaluate checked the .ehc name only on its staged temporary: 'compressed output must end with .ehc:
    .../.c.tif.enmapcompress.part/part.tif'."""
    from enmap_compress.plugin.core.evaluate import evaluate
    from tools import synthetic

    source = synthetic.write_scene(str(tmp_path / 'scene.tif'), width=8, height=6, seed=1)
    compressed = str(tmp_path / 'c.tif')
    with pytest.raises(OutputError) as caught:
        evaluate(source, str(tmp_path / 'r.tif'), model='pca', quality=3, compressed=compressed)
    assert str(caught.value) == f'compressed output must end with .ehc: {compressed}'
    assert sorted(os.listdir(tmp_path)) == ['scene.tif']

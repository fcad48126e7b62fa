"""The reconstruction keeps every metadata item the input had: georeferencing, nodata, wavelengths, FWHM, scale
and offset, band names and the bad-band list (as ENVI's bbl), through the Processing algorithms."""
import numpy as np

pytest_plugins = ['gui_fixtures']  # the shared GUI fixtures (tests/qgis is on sys.path)


def test_decompress_keeps_every_metadata_item_of_a_product(plugin, tmp_path):
    import processing
    from osgeo import gdal

    from enmap_compress.plugin.core.enmap import open_spectral
    from tools import synthetic

    product = synthetic.write_product(str(tmp_path / 'p'), width=40, height=32, seed=8, make_zip=True)
    ehc, rec = str(tmp_path / 'p.ehc'), str(tmp_path / 'p.tif')
    processing.run('enmapcompress:compress', {'INPUT': product.zip, 'QUALITY': 5, 'DEVICE': 1, 'OUTPUT': ehc})
    processing.run('enmapcompress:decompress', {'INPUT': ehc, 'DEVICE': 1, 'OUTPUT': rec})
    with open_spectral(product.zip) as source:
        dead = np.asarray(source.dead_bands)
        expected = (source.geotransform, source.nodata, source.wavelengths, source.fwhm, source.gains,
                    source.offsets, source.band_names, source.band_count)
    geotransform, nodata, wavelengths, fwhm, gains, offsets, names, count = expected
    assert dead.any(), 'the synthetic product flags some bands bad in its METADATA.XML'
    out = gdal.Open(rec)
    assert out.RasterCount == count and out.GetGeoTransform() == tuple(geotransform) and out.GetProjection()
    bands = [out.GetRasterBand(i + 1) for i in range(count)]
    assert all(b.GetNoDataValue() == nodata for b in bands)
    assert np.allclose([float(b.GetMetadataItem('wavelength')) for b in bands], wavelengths, atol=1e-3)
    assert np.allclose([float(b.GetMetadataItem('fwhm')) for b in bands], fwhm, atol=1e-3)
    assert np.allclose([b.GetScale() for b in bands], gains) and np.allclose([b.GetOffset() for b in bands], offsets)
    assert [b.GetDescription() for b in bands] == list(names)
    bbl = out.GetMetadataItem('bbl', 'ENVI').strip('{}').split(',')
    assert [v.strip() == '0' for v in bbl] == list(dead)
    with open_spectral(rec) as back:  # and the core reads the reconstruction as it read the input
        assert np.allclose(back.wavelengths, wavelengths, atol=1e-3) and back.nodata == nodata

"""How far GDAL's block cache grows while a run reads or writes an image: tests that bound what of it GDAL keeps."""
from osgeo import gdal


def striped_copy(image, path):
    """`image` rewritten in blocks of 2 rows, as a large GeoTIFF's strips are (GDAL caches a block whole)."""
    gdal.Translate(path, image, creationOptions=['INTERLEAVE=BAND', 'BLOCKYSIZE=2'])
    return path


def cache_growth_at(monkeypatch, owner, name):
    """A list that receives, at each call of the method owner.name, how many bytes GDAL's cache has grown since
    now."""
    start, growth, method = gdal.GetCacheUsed(), [], getattr(owner, name)

    def recording(self, *args, **kwargs):
        growth.append(gdal.GetCacheUsed() - start)
        return method(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return growth

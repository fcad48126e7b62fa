"""Open EnMAP L2A products and other hyperspectral rasters without reading the image into memory.

One entry point, `open_spectral(path)`, accepts:
1. an L2A product folder (or the folder above it) or its `*-METADATA.XML`;
2. the product ZIP as DLR delivers it, read in place through GDAL's /vsizip/ (nothing is extracted);
3. a `*-SPECTRAL_IMAGE.*` file (GeoTIFF, COG, ENVI) next to its `*-METADATA.XML`;
4. any GeoTIFF or ENVI raster with wavelength metadata (GDAL band items or the ENVI header);
5. a plain 224-band raster without spectral metadata (the standard band table is assumed, with a warning).
Attributes of the returned SpectralRaster are in FILE band order; `canonical_index` maps to ascending wavelength.
"""
import collections
import contextlib
import functools
import logging
import lzma
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
from osgeo import gdal

from . import bands as _bands
from . import zipstage
from .bands import DN_PEAK, ENMAP_GAIN, MAX_GAIN, MIN_GAIN
from .bandscan import StreamedBandScan
from .errors import InputError
from .gdalerrors import GdalError, checked, failure
from .geotiff import GDAL_TYPES, NO_GEOTRANSFORM
from .headerfields import MAX_TEXT

logger = logging.getLogger('enmap_compress')

MIN_BANDS = 10
# the nodata value a masked integer raster without one is given: the type's minimum (EnMAP's -32768 for Int16), or
# for unsigned types the maximum (0 is a common dark value)
MASK_NODATA = {'i': lambda dtype: np.iinfo(dtype).min, 'u': lambda dtype: np.iinfo(dtype).max}
MAX_XML_BYTES = 64 * 1024 * 1024
MAX_ZIP_TOTAL_BYTES = 32 * 1024 ** 3
MAX_XML_COMPRESSION_RATIO = 1000
SCAN_BLOCK_BYTES = 64 * 1024 * 1024
SCAN_FIRST_BYTES = 4 * 1024 * 1024  # the scan's first block; each next one doubles (the bar moves early)
# Float samples without a scale: reflectance as a fraction stays below about 1.5 (specular highlights, snow); if
# the FLOAT_DN_PERCENTILE of a coarse sample exceeds FLOAT_REFLECTANCE_LIMIT the values are DN, not reflectance.
FLOAT_REFLECTANCE_LIMIT = 2.0
FLOAT_DN_PERCENTILE = 90.0
FLOAT_SAMPLE_SIDE = 64
READ_MARGIN = 65536  # a read of a staged image still unpacking waits this far past its last byte (read-ahead)
ENMAP_NODATA = -32768.0
DEAD_BAND_MEAN = -1000000.0  # EnMAP-Box convention: bandStatistics mean -1000000 and stdDeviation 0

_EXPECTED = ('Expected an EnMAP L2A product (folder, METADATA.XML or ZIP) or a GeoTIFF/ENVI hyperspectral image '
             'with wavelength metadata.')
_METADATA_SUFFIX = '-METADATA.XML'
_LEVEL_RE = re.compile(r'^ENMAP\d\d-_*(L\d[A-Z])-', re.IGNORECASE)  # ENMAP01-____L2A-DT...: the level in the name
_L1B_REASON = ('its VNIR and SWIR images are apart (-SPECTRAL_IMAGE_VNIR and -SPECTRAL_IMAGE_SWIR) and in sensor '
               'geometry, which EnMAP Compress does not read. Expected an EnMAP L2A product (order the scene as L2A, '
               'or L1C, from EOWEB).')
# An EnMAP product's quality and quicklook layers, which are no spectral image (QL_PIXELMASK has a band per band).
_QUALITY_LAYER_RE = re.compile(r'-(QL_[A-Z0-9_]+)\.(TIF|TIFF|GEOTIFF|BSQ|BIL|BIP|JP2|HDR)$', re.IGNORECASE)
_L1B_IMAGE_RE = re.compile(r'-SPECTRAL_IMAGE_(VNIR|SWIR)\.(TIF|TIFF|GEOTIFF|BSQ|BIL|BIP|JP2|HDR)$', re.IGNORECASE)
_VSIZIP_RE = re.compile(r'^/vsizip/(/?.+?\.zip)(/.*)?$', re.IGNORECASE)  # the ZIP and the member in it
_IMAGE_RE = re.compile(r'-SPECTRAL_IMAGE(_COG)?\.(TIF|TIFF|GEOTIFF|BSQ|BIL|BIP|JP2|HDR)$', re.IGNORECASE)
# Preferred spectral image formats when a product folder holds several.
_IMAGE_PREFERENCE = ('.TIF', '.TIFF', '.GEOTIFF', '_COG.TIF', '_COG.TIFF', '.BSQ', '.BIL', '.BIP', '.JP2')
# The formats an EnMAP product's spectral image comes in, the only GDAL drivers it is opened with: GDAL picks a driver
# by content, and a VRT (or a WMS or MRF description) named -SPECTRAL_IMAGE.TIF in a product reads any file or URL it
# names (a user's own files, /vsicurl/, \\host\share), which would end up in the .ehc made of the product.
PRODUCT_IMAGE_DRIVERS = ('GTiff', 'ENVI', 'JP2OpenJPEG', 'JP2KAK', 'JP2ECW', 'JP2MrSID', 'JPEG2000')
_ENVI_DATA_EXTS = ('', '.bsq', '.bil', '.bip', '.img', '.dat', '.raw', '.BSQ', '.BIL', '.BIP', '.IMG', '.DAT', '.RAW')
# Never sniffed as ZIP: a raster's last bytes could happen to look like a ZIP directory.
_RASTER_EXTS = ('.tif', '.tiff', '.geotiff', '.bsq', '.bil', '.bip', '.img', '.dat', '.jp2', '.hdr', '.xml')
_UNIT_FACTORS = {'nanometers': 1.0, 'nanometer': 1.0, 'nm': 1.0, 'micrometers': 1000.0, 'micrometer': 1000.0,
                 'um': 1000.0, 'µm': 1000.0, 'microns': 1000.0, 'micron': 1000.0, 'millimeters': 1e6, 'mm': 1e6}


def _gdal_dtypes():
    names = {'Byte': np.uint8, 'Int8': np.int8, 'UInt16': np.uint16, 'Int16': np.int16, 'UInt32': np.uint32,
             'Int32': np.int32, 'UInt64': np.uint64, 'Int64': np.int64, 'Float32': np.float32, 'Float64': np.float64}
    # Int8/Int64/UInt64 only exist in newer GDAL versions.
    return {getattr(gdal, 'GDT_' + n): np.dtype(t) for n, t in names.items() if hasattr(gdal, 'GDT_' + n)}


_GDAL_TO_NUMPY = _gdal_dtypes()


# ----------------------------------------------------------------------------------------------------------------
# METADATA.XML

@dataclass
class _XmlInfo:
    path: str
    product_name: Optional[str]
    wavelengths: np.ndarray
    fwhm: Optional[np.ndarray]
    gains: Optional[np.ndarray]
    offsets: Optional[np.ndarray]
    dead: Optional[np.ndarray]
    image_name: Optional[str]
    notes: tuple = ()  # warnings about values that were stated but not used (an unreadable FWHM, gain, offset)
    level: Optional[str] = None  # the processing level, 'L2A' for the products this reader is made for
    dimensions: Optional[tuple] = None  # (columns, rows) of the spectral image as product/image/merge states them


def _not_readable(label, detail):
    return InputError(f'{label} is not a readable EnMAP METADATA.XML ({detail}). '
                      'Expected the METADATA.XML of an EnMAP L2A product as delivered by DLR.')


def _float_or_none(text):
    try:
        value = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _band_number(entry, label):
    text = entry.get('number')
    if text is None:
        raise _not_readable(label, 'a bandID has no number attribute')
    try:
        return int(text.strip())
    except ValueError:
        raise _not_readable(label, f'bandID number {text[:20]!r} is not an integer') from None


def _band_entries(root, label):
    """bandCharacterisation/bandID elements in the order of their 1-based numbers, which must be 1..n once each."""
    entries = root.findall('specific/bandCharacterisation/bandID')
    if not entries:
        raise _not_readable(label, 'no specific/bandCharacterisation/bandID entries')
    numbers = [_band_number(e, label) for e in entries]
    count = len(entries)
    repeated = sorted((n, times) for n, times in collections.Counter(numbers).items() if times > 1)
    if repeated:
        raise _not_readable(label, f'bandID number {repeated[0][0]} appears {repeated[0][1]} times; each of '
                                   f'1..{count} must appear once')
    if min(numbers) != 1 or max(numbers) != count:
        raise _not_readable(label, f'the bandID numbers must be 1..{count}, found {min(numbers)}..{max(numbers)}')
    by_number = dict(zip(numbers, entries))
    return [by_number[n] for n in range(1, count + 1)]


def _band_values(entries, tag):
    values = [_float_or_none(e.findtext(tag)) for e in entries]
    return None if any(v is None for v in values) else np.asarray(values, dtype=np.float64)


def _xml_dead_bands(root, n):
    """Bands flagged as no-data in product/bandStatistics (None when the section is absent)."""
    stats = root.findall('product/bandStatistics/bandID')
    if not stats:
        return None
    dead = np.zeros(n, dtype=bool)
    for entry in stats:
        number = _float_or_none(entry.get('number'))
        mean, std = _float_or_none(entry.findtext('mean')), _float_or_none(entry.findtext('stdDeviation'))
        if number is not None and 1 <= number <= n and mean == DEAD_BAND_MEAN and std == 0.0:
            dead[int(number) - 1] = True
    return dead


def _product_name(root, path):
    name = (root.findtext('metadata/name') or os.path.basename(path.replace('\\', '/'))).strip()
    if name.upper().endswith(_METADATA_SUFFIX):
        return name[:-len(_METADATA_SUFFIX)] or None
    return None


def _without_namespaces(root):
    """Drop XML namespaces from the tags and attribute names (DLR's METADATA.XML has none; one a processor version
    or a re-export adds changes no path this reader asks for)."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith('{'):
            element.tag = element.tag.rpartition('}')[2]
        if any(key.startswith('{') for key in element.attrib):
            element.attrib = {key.rpartition('}')[2]: value for key, value in element.attrib.items()}
    return root


def _unread_note(entries, tag, path, consequence):
    """The warning for a per-band value some band lacks or states as no number, or None when every band states
    one or none does."""
    bad = [n for n, e in enumerate(entries, 1) if _float_or_none(e.findtext(tag)) is None]
    if not bad or len(bad) == len(entries) and not any((e.findtext(tag) or '').strip() for e in entries):
        return None
    return f'{path}: the {tag} of band {bad[0]} is missing or not a number, so {consequence}; check the METADATA.XML.'


def _fwhm_note(entries, path):
    if not any((e.findtext('FWHMOfBand') or '').strip() for e in entries):
        return f'{path} states no FWHMOfBand; the output states no band widths (FWHM).'
    return _unread_note(entries, 'FWHMOfBand', path, 'no band\'s FWHM is used and the output states none')


def _processing_level(root, product_name):
    """'L1B', 'L1C', 'L2A', ... from metadata/schema/processingLevel, else from the product name, else None."""
    level = (root.findtext('metadata/schema/processingLevel') or '').strip().upper()
    if not level and product_name:
        match = _LEVEL_RE.match(product_name)
        level = match.group(1).upper() if match else ''
    return level or None


def _image_dimensions(root):
    columns = _float_or_none(root.findtext('product/image/merge/dimension/columns'))
    rows = _float_or_none(root.findtext('product/image/merge/dimension/rows'))
    return None if columns is None or rows is None else (int(columns), int(rows))


def _parse_metadata(data, path):
    """Parse METADATA.XML bytes (defusedxml only: no entities, no external references)."""
    import defusedxml.ElementTree as SafeET  # lazy: the dialog imports this module, and must open without it
    from defusedxml import DefusedXmlException

    label = f'The file {path}'
    try:
        root = SafeET.fromstring(data)
    except DefusedXmlException as exc:
        raise _not_readable(label, f'it declares entities or a DTD, which are not read for safety: {exc}') from exc
    except (SafeET.ParseError, ValueError, LookupError) as exc:  # (LookupError: an encoding Python does not know, as
        # expat reports it)
        raise _not_readable(label, f'corrupt or truncated: {exc}') from exc
    root = _without_namespaces(root)
    if root.tag != 'level_X':
        raise _not_readable(label, f'its root element is <{root.tag}>, expected <level_X>')
    product_name = _product_name(root, path)
    level = _processing_level(root, product_name)
    if level == 'L1B':  # (its VNIR and SWIR images would be "no spectral image"; their bands are not one cube)
        raise InputError(f'{path} is the METADATA.XML of an EnMAP L1B product: {_L1B_REASON}')
    entries = _band_entries(root, label)
    wavelengths = _band_values(entries, 'wavelengthCenterOfBand')
    if wavelengths is None or np.any(wavelengths <= 0):
        raise _not_readable(label, 'a band has no valid wavelengthCenterOfBand')
    gains = _band_values(entries, 'GainOfBand')
    offsets = _band_values(entries, 'OffsetOfBand')
    fwhm = _band_values(entries, 'FWHMOfBand')
    notes = [_fwhm_note(entries, path) if fwhm is None else None,
             _unread_note(entries, 'GainOfBand', path, 'no band\'s GainOfBand is used') if gains is None else None,
             _unread_note(entries, 'OffsetOfBand', path, 'no band\'s offset is used (reflectance = DN x GainOfBand)')
             if gains is not None and offsets is None else None]
    return _XmlInfo(path=path, product_name=product_name, wavelengths=wavelengths, fwhm=fwhm, gains=gains,
                    offsets=offsets if gains is not None else None, dead=_xml_dead_bands(root, len(entries)),
                    image_name=(root.findtext('product/image/merge/name') or '').strip() or None,
                    notes=tuple(n for n in notes if n), level=level, dimensions=_image_dimensions(root))


def _read_metadata_file(path):
    try:
        size = os.path.getsize(path)
        if size > MAX_XML_BYTES:
            raise InputError(f'The METADATA.XML {path} is {size / 2**20:.0f} MB; a real one is a few MB '
                             f'(limit {MAX_XML_BYTES // 2**20} MB). Expected the METADATA.XML of an EnMAP L2A product.')
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f'Cannot read {path} ({exc.strerror or exc}).') from exc
    return _parse_metadata(data, path)


# ----------------------------------------------------------------------------------------------------------------
# Finding the files of a product

@dataclass
class _Located:
    gdal_path: str
    label: str  # what to name in messages
    xml: Optional[_XmlInfo] = None
    note: Optional[str] = None  # a warning found while locating
    zip_image: Optional[zipstage.ZipImage] = None  # the image is a member of this product ZIP
    open_hint: Optional[InputError] = None  # the error to raise, when GDAL cannot open gdal_path, instead of its own
    drivers: Optional[tuple] = None  # the only GDAL drivers that may open gdal_path (a product's image); None: any


def _is_metadata_name(name):
    upper = name.upper()  # ('._<name>': the AppleDouble file macOS writes beside each file on FAT and exFAT drives
    # and into ZIPs, under __MACOSX/; it holds no XML)
    return (upper.endswith(_METADATA_SUFFIX) or upper == 'METADATA.XML') and not name.startswith('._')


def _metadata_xmls_in(folder):
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise InputError(f'Cannot list the folder {folder} ({exc.strerror or exc}).') from exc
    found = [os.path.join(folder, n) for n in names if _is_metadata_name(n) and os.path.isfile(os.path.join(folder, n))]
    if found:
        return found
    found = []
    for sub in (os.path.join(folder, n) for n in names if os.path.isdir(os.path.join(folder, n))):
        try:
            found += [os.path.join(sub, n) for n in sorted(os.listdir(sub))
                      if _is_metadata_name(n) and os.path.isfile(os.path.join(sub, n))]
        except OSError:
            continue  # an unreadable sub-folder cannot be the product
    return found


def _image_rank(name, prefix):
    """Preference rank of a spectral image file name for the product `prefix`, or None when it is not one."""
    upper = name.upper()
    head = (prefix + '-SPECTRAL_IMAGE').upper() if prefix else None
    match = _IMAGE_RE.search(upper)
    if not match or match.group(2) == 'HDR' or (head and not upper.startswith(head)):
        return None
    tail = upper[match.start() + len('-SPECTRAL_IMAGE'):]
    return _IMAGE_PREFERENCE.index(tail) if tail in _IMAGE_PREFERENCE else len(_IMAGE_PREFERENCE)


def _pick_image(names, prefix, image_name):
    ranked = sorted((r, n) for n in names if (r := _image_rank(n, prefix)) is not None)
    if ranked:
        return ranked[0][1]
    if image_name and image_name in names:
        return image_name
    return None


def _xml_prefix(xml_name):
    upper = xml_name.upper()
    return xml_name[:-len(_METADATA_SUFFIX)] if upper.endswith(_METADATA_SUFFIX) else ''


def _locate_from_xml(xml_path, label):
    info = _read_metadata_file(xml_path)
    folder = os.path.dirname(os.path.abspath(xml_path))
    try:
        names = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]  # (GDAL's open of a
        # pipe named like the image never returns)
    except OSError as exc:
        raise InputError(f'Cannot list the folder {folder} ({exc.strerror or exc}).') from exc
    image = _pick_image(names, _xml_prefix(os.path.basename(xml_path)), info.image_name)
    if image is None:
        raise InputError(f'{label} has a METADATA.XML but no spectral image next to it (expected '
                         f'{_xml_prefix(os.path.basename(xml_path)) or "<PRODUCT>"}-SPECTRAL_IMAGE.TIF or '
                         '.BSQ/.BIL/.BIP with .HDR in the same folder).')
    return _Located(gdal_path=os.path.join(folder, image), label=label, xml=info, drivers=PRODUCT_IMAGE_DRIVERS)


def _locate_folder(folder):
    xmls = _metadata_xmls_in(folder)
    if not xmls:
        raise InputError(f'The folder {folder} contains no EnMAP METADATA.XML (<PRODUCT>-METADATA.XML, also looked '
                         'one folder down). Expected an EnMAP L2A product folder.')
    if len(xmls) > 1:
        names = ', '.join(os.path.basename(x) for x in xmls[:4])
        raise InputError(f'The folder {folder} holds {len(xmls)} EnMAP products ({names}...); choose one product '
                         'folder or its METADATA.XML.')
    return _locate_from_xml(xmls[0], f'The product folder {folder}')


# ----------------------------------------------------------------------------------------------------------------
# ZIP products, read in place

def _zip_error(path, detail):
    return InputError(f'The ZIP {path} cannot be used: {detail}. Expected an EnMAP L2A product ZIP as delivered '
                      'by DLR (one folder <PRODUCT>/ with <PRODUCT>-METADATA.XML and the spectral image).')


def _check_zip_members(path, infos):
    for info in infos:
        name = info.filename.replace('\\', '/')
        parts = name.split('/')
        if name.startswith('/') or ':' in name or '..' in parts:  # (a colon: a drive, 'x/D:y' too, or a stream)
            raise _zip_error(path, f'it contains an unsafe member path {info.filename!r} (absolute, with ".." or '
                                   'with a drive letter or colon)')
    total = sum(i.file_size for i in infos)
    if total > MAX_ZIP_TOTAL_BYTES:
        raise _zip_error(path, f'its members declare {total / 2**30:.0f} GiB uncompressed (limit '
                               f'{MAX_ZIP_TOTAL_BYTES // 2**30} GiB); the file looks damaged or malicious')


def _member_path(name):
    """A member's path as GDAL's /vsizip/ names it: '/' separators (a ZIP written on Windows may use '\\'), no
    leading './'."""
    name = name.replace('\\', '/')
    while name.startswith('./'):
        name = name[2:]
    return name


def _zip_metadata_member(path, infos):
    xmls = [i for i in infos if not i.is_dir() and _is_metadata_name(_member_path(i.filename).rsplit('/', 1)[-1])]
    if not xmls:
        inner = [i.filename for i in infos if not i.is_dir() and i.filename.lower().endswith('.zip')]
        if inner:  # a delivery that wraps the product ZIP in another ZIP
            raise _zip_error(path, f'it contains no <PRODUCT>-METADATA.XML but {len(inner)} ZIP file'
                                   f'{"s" if len(inner) > 1 else ""} ({inner[0]}{", ..." if len(inner) > 1 else ""}); '
                                   'unpack this ZIP and give the product ZIP inside it')
        raise _zip_error(path, 'it contains no <PRODUCT>-METADATA.XML')
    if len(xmls) > 1:
        raise _zip_error(path, f'it contains {len(xmls)} METADATA.XML files (one product per ZIP expected)')
    info = xmls[0]
    if info.file_size > MAX_XML_BYTES:
        raise _zip_error(path, f'its METADATA.XML is {info.file_size / 2**20:.0f} MB '
                               f'(limit {MAX_XML_BYTES // 2**20} MB)')
    if info.file_size > MAX_XML_COMPRESSION_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
        raise _zip_error(path, 'its METADATA.XML is compressed more than 1000:1, which a real one never is')
    return info


def _read_zip_member(zf, info, limit):
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise InputError(f'The ZIP member {info.filename} is larger than it claims; the ZIP looks damaged.')
    return data


def _vsizip_path(zip_path, member):
    return '/vsizip/' + os.path.abspath(zip_path).replace('\\', '/') + '/' + member


def _locate_zip(path):
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            _check_zip_members(path, infos)
            xml_info = _zip_metadata_member(path, infos)
            data = _read_zip_member(zf, xml_info, MAX_XML_BYTES)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, zlib.error,
            lzma.LZMAError, NotImplementedError) as exc:  # (damaged deflate or LZMA data; a method zipfile lacks)
        raise _zip_error(path, f'it is not a readable ZIP file ({exc})') from exc
    xml = _parse_metadata(data, _vsizip_path(path, _member_path(xml_info.filename)))
    folder, _, xml_name = _member_path(xml_info.filename).rpartition('/')
    by_path = {_member_path(i.filename): i for i in infos if not i.is_dir()}
    siblings = [name.rpartition('/')[2] for name in by_path if name.rpartition('/')[0] == folder]
    image = _pick_image(siblings, _xml_prefix(xml_name), xml.image_name)
    if image is None:
        raise _zip_error(path, f'it has {xml_name} but no spectral image next to it')
    member = f'{folder}/{image}' if folder else image
    zip_image = zipstage.zip_image(path, infos, by_path[member].filename)
    return _Located(gdal_path=_vsizip_path(path, member), label=f'The ZIP {path}', xml=xml, zip_image=zip_image,
                    open_hint=_method_hint(path, infos, zip_image), drivers=PRODUCT_IMAGE_DRIVERS)


def _method_hint(path, infos, zip_image):
    """What to say when GDAL cannot open the image because its members use a method GDAL's /vsizip/ lacks (GDAL
    3.6 reads stored and deflated members only; 7-Zip and others can write BZIP2, LZMA or Deflate64), or None."""
    methods = {i.filename: i.compress_type for i in infos}
    odd = sorted({methods[m] for m in zip_image.members} - {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
    if not odd:
        return None
    method = {zipfile.ZIP_BZIP2: 'BZIP2', zipfile.ZIP_LZMA: 'LZMA', 9: 'Deflate64'}.get(odd[0], f'method {odd[0]}')
    return _zip_error(path, f'its spectral image {zip_image.image_name} is compressed with {method}, which GDAL '
                            'cannot read inside a ZIP; unpack the ZIP and give the product folder, or zip it again '
                            'with the standard Deflate method')


# ----------------------------------------------------------------------------------------------------------------
# Single raster files

def _find_case_insensitive(folder, name):
    if os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
    try:
        matches = [n for n in os.listdir(folder)
                   if n.upper() == name.upper() and os.path.isfile(os.path.join(folder, n))]
    except OSError:
        return None
    return os.path.join(folder, matches[0]) if matches else None


def _data_file_for_header(path):
    """GDAL opens the ENVI data file, not its .hdr: find the data file next to the header."""
    root = os.path.splitext(path)[0]
    folder = os.path.dirname(os.path.abspath(path))
    for ext in _ENVI_DATA_EXTS:
        candidate = root + ext
        if os.path.isfile(candidate) and candidate != path:
            return candidate
    found = [os.path.join(folder, n) for n in os.listdir(folder)
             if os.path.splitext(n)[0] == os.path.basename(root) and not n.lower().endswith(('.hdr', '.aux.xml'))
             and os.path.isfile(os.path.join(folder, n))]
    if not found:
        raise InputError(f'The ENVI header {path} has no data file next to it (expected {os.path.basename(root)} '
                         'with .bsq/.bil/.bip/.img or no extension).')
    return found[0]


def _locate_raster(path):
    name = os.path.basename(path)
    layer = _QUALITY_LAYER_RE.search(name)
    if layer:  # (QL_PIXELMASK's 224 bands would read as a spectral image of the standard bands)
        raise InputError(f'{path} is the {layer.group(1).upper()} layer of an EnMAP product, not its spectral image. '
                         'Expected the product folder, its ZIP or METADATA.XML, or its -SPECTRAL_IMAGE file.')
    if _L1B_IMAGE_RE.search(name):
        raise InputError(f'{path} is a spectral image of an EnMAP L1B product: {_L1B_REASON}')
    if path.lower().endswith('.hdr'):
        path = _data_file_for_header(path)
    located = _Located(gdal_path=path, label=f'The image {path}')
    match = _IMAGE_RE.search(os.path.basename(path))
    if match:
        located.drivers = PRODUCT_IMAGE_DRIVERS
        name = os.path.basename(path)[:match.start()] + _METADATA_SUFFIX
        xml_path = _find_case_insensitive(os.path.dirname(os.path.abspath(path)), name)
        if xml_path:
            located.xml = _read_metadata_file(xml_path)
        else:
            located.note = f'No {name} next to {path}; reading the band information from the image itself.'
    return located


@functools.lru_cache(maxsize=64)
def _holds_product(zip_path, modified_ns, size):
    """Whether the ZIP holds a METADATA.XML, from its directory; cached per path, modification time and size (the
    dialog and the spectrum tool ask for every layer, often), so a ZIP replaced or rewritten is read again."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        return False  # GDAL's own open says what is wrong
    return any(_is_metadata_name(os.path.basename(n)) for n in names)


def _product_zip(path):
    """The product ZIP that a GDAL /vsizip/ path points into; None when it is no /vsizip/ path or the ZIP holds no
    product (no METADATA.XML). Reads only the ZIP's directory, once while the ZIP is unchanged."""
    match = _VSIZIP_RE.match(path)
    if not match:
        return None
    try:
        found = os.stat(match.group(1))
    except OSError:
        return None
    holds = stat.S_ISREG(found.st_mode) and _holds_product(match.group(1), found.st_mtime_ns, found.st_size)
    return match.group(1) if holds else None


def product_source(path):
    """What to open for a path as QGIS names a layer: for a raster read in place from a product ZIP
    (/vsizip/<ZIP>/<member>), the ZIP itself, which names the product and holds its METADATA.XML; any other path as
    it is. open_spectral() accepts both; this is for callers that show or pass the input on (names, Processing)."""
    return _product_zip(path) or path


def _locate_virtual(path):
    """GDAL virtual paths, as QGIS gives for a layer opened from a product ZIP: the ZIP's product when it is one,
    else the raster as GDAL reads it."""
    zip_path = _product_zip(path)
    if zip_path:
        return _locate_zip(zip_path)
    return _Located(gdal_path=path, label=f'The input {path}')


def _locate(path):
    if path.startswith('/vsi'):
        return _locate_virtual(path)
    if not os.path.exists(path):
        raise InputError(f'The input {path} does not exist. {_EXPECTED}')
    if os.path.isdir(path):
        return _locate_folder(path)
    if not os.path.isfile(path):  # reading a pipe or a device named .zip or .tif never ends
        raise InputError(f'The input {path} is not a regular file (a pipe, a device or a socket). {_EXPECTED}')
    lower = path.lower()
    if lower.endswith('.zip') or (not lower.endswith(_RASTER_EXTS) and zipfile.is_zipfile(path)):
        return _locate_zip(path)
    if path.lower().endswith('.xml'):
        return _locate_from_xml(path, f'The product of {path}')
    return _locate_raster(path)


# ----------------------------------------------------------------------------------------------------------------
# Band information from GDAL

@contextlib.contextmanager
def _single_threaded_decoding():
    """GDAL 3.6 crashes on band-subset reads of uncompressed GeoTIFFs when GDAL_NUM_THREADS is set (a user's
    environment or QGIS option may set it), so files opened here decode in the calling thread."""
    previous = gdal.GetThreadLocalConfigOption('GDAL_NUM_THREADS', None)
    gdal.SetThreadLocalConfigOption('GDAL_NUM_THREADS', '1')
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption('GDAL_NUM_THREADS', previous)


def _gdal_open(located):
    gdal.PushErrorHandler('CPLQuietErrorHandler')
    try:
        gdal.ErrorReset()
        with _single_threaded_decoding():  # GTiff takes its decoding threads when the file is opened
            if located.drivers is None:
                ds = gdal.Open(located.gdal_path, gdal.GA_ReadOnly)
            else:
                ds = gdal.OpenEx(located.gdal_path, gdal.OF_RASTER | gdal.OF_READONLY,
                                 allowed_drivers=list(located.drivers))
        message = gdal.GetLastErrorMsg()
    except RuntimeError as exc:  # when someone else in the process called gdal.UseExceptions()
        ds, message = None, str(exc)
    finally:
        gdal.PopErrorHandler()
    if ds is None and located.open_hint is not None:
        raise located.open_hint
    if ds is None and located.drivers is not None:  # (a VRT, say: not opened, it could read other files)
        raise InputError(f'{located.label}: its spectral image {os.path.basename(located.gdal_path)} is no GeoTIFF, '
                         f'ENVI or JPEG 2000 image that GDAL can read ({message or "another format"}), as an EnMAP '
                         'product\'s is. Expected an EnMAP L2A product as delivered.')
    if ds is None:
        raise InputError(f'{located.label} is not a raster GDAL can open ({message or "unknown format"}). {_EXPECTED}')
    return ds


def _parse_list(text, n):
    """An ENVI header list '{1.0, 2.0}' as floats, or None unless it has exactly n valid numbers."""
    if not text:
        return None
    values = [_float_or_none(v) for v in str(text).strip().strip('{}').split(',')]
    if len(values) != n or any(v is None for v in values):
        return None
    return np.asarray(values, dtype=np.float64)


def _lower_keys(mapping):
    return {str(k).lower(): v for k, v in (mapping or {}).items()}


def _band_items(ds, key):
    values = [_float_or_none(_lower_keys(ds.GetRasterBand(i + 1).GetMetadata()).get(key))
              for i in range(ds.RasterCount)]
    return None if any(v is None for v in values) else np.asarray(values, dtype=np.float64)


def _units_factor(ds, wavelengths):
    """nm per file unit: from wavelength_units, else a guess (values below 100 are micrometres)."""
    units = _lower_keys(ds.GetRasterBand(1).GetMetadata()).get('wavelength_units')
    units = units or _lower_keys(ds.GetMetadata('ENVI')).get('wavelength_units')
    units = units or _lower_keys(ds.GetMetadata()).get('wavelength_units')
    factor = _UNIT_FACTORS.get(str(units or '').strip().lower())
    if factor is None:
        factor = 1000.0 if np.nanmedian(wavelengths) < 100 else 1.0
    return factor


def _gdal_spectral(ds):
    """(wavelengths nm, fwhm nm or None) from GDAL band metadata or the ENVI header, or (None, None)."""
    n = ds.RasterCount
    envi = _lower_keys(ds.GetMetadata('ENVI'))
    wavelengths = _band_items(ds, 'wavelength')
    if wavelengths is None:
        wavelengths = _parse_list(envi.get('wavelength'), n)
    if wavelengths is None:
        return None, None
    fwhm = _band_items(ds, 'fwhm')
    if fwhm is None:
        fwhm = _parse_list(envi.get('fwhm'), n)
    factor = _units_factor(ds, wavelengths)
    return wavelengths * factor, (fwhm * factor if fwhm is not None else None)


def _band_scaling(ds):
    """GDAL scale/offset per band, or (None, None) when no band has any."""
    scales = [ds.GetRasterBand(i + 1).GetScale() for i in range(ds.RasterCount)]
    offsets = [ds.GetRasterBand(i + 1).GetOffset() for i in range(ds.RasterCount)]
    if all(s is None for s in scales) and all(o is None for o in offsets):
        return None, None
    return (np.asarray([1.0 if s is None else s for s in scales], dtype=np.float64),
            np.asarray([0.0 if o is None else o for o in offsets], dtype=np.float64))


def _sampled_percentile(ds, nodata, percent, side=FLOAT_SAMPLE_SIDE):
    """A percentile of the finite, non-nodata samples of all bands on a coarse grid (at most side x side pixels,
    GDAL's nearest-neighbour decimation: a few rows of each band are read), or None when there are none."""
    width, height = min(side, ds.RasterXSize), min(side, ds.RasterYSize)
    values = ds.ReadAsArray(0, 0, ds.RasterXSize, ds.RasterYSize, buf_xsize=width, buf_ysize=height)
    if values is None:
        return None
    values = np.asarray(values, np.float64).ravel()
    keep = np.isfinite(values)
    if nodata is not None and not np.isnan(nodata):
        keep &= values != nodata
    return float(np.percentile(np.abs(values[keep]), percent)) if keep.any() else None


def _band_nodata(ds):
    values = [ds.GetRasterBand(i + 1).GetNoDataValue() for i in range(ds.RasterCount)]
    first = values[0]
    same = all((v is None and first is None) or (v is not None and first is not None and
                                                   (v == first or (np.isnan(v) and np.isnan(first))))
               for v in values)
    return first, same


MAX_BAND_NM = 1e6  # 1 mm: beyond any imaging spectrometer's band, and far inside what a .ehc band table holds


def _in_band_range(values, low_open):
    """Whether wavelengths (low_open: above 0) or FWHM (0 allowed) are finite nm below MAX_BAND_NM."""
    values = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values > 0 if low_open else values >= 0) and
                np.all(values < MAX_BAND_NM))


def _signed_bytes(ds, label):
    """Whether the bands are signed bytes that this GDAL reads as Byte (GTiff's PIXELTYPE=SIGNEDBYTE before GDAL
    3.7, which reads them as Int8): their values are then the bytes' int8 view. InputError when only some are."""
    signed = [ds.GetRasterBand(i + 1).DataType == gdal.GDT_Byte and
              ds.GetRasterBand(i + 1).GetMetadataItem('PIXELTYPE', 'IMAGE_STRUCTURE') == 'SIGNEDBYTE'
              for i in range(ds.RasterCount)]
    if any(signed) and not all(signed):
        raise InputError(f'{label} has signed bytes (PIXELTYPE=SIGNEDBYTE) in band {signed.index(True) + 1} but '
                         f'unsigned values in band {signed.index(False) + 1}; convert it to one pixel type first.')
    return bool(signed) and all(signed)


def _band_dtype(ds, label):
    """(GDAL type, numpy dtype, warning or None) the raster is read in: its bands' type, or for bands of several
    types (a VRT can mix them) the smallest type that holds every value of each; signed bytes (Int8, or Byte with
    PIXELTYPE=SIGNEDBYTE: _signed_bytes) as Int16. Refuses a type the .ehc format does not store (GDAL_TYPES)
    before anything is written."""
    if _signed_bytes(ds, label):  # (read as Byte, viewed as int8, then cast: SpectralRaster.read)
        return gdal.GDT_Byte, np.dtype(np.int16), (
            f'{label} holds signed bytes (PIXELTYPE=SIGNEDBYTE); they are read as Int16 (-128..127), and the output '
            'has that type.')
    types = sorted({ds.GetRasterBand(i + 1).DataType for i in range(ds.RasterCount)})
    names = [gdal.GetDataTypeName(t) for t in types]
    for gdal_type, name in zip(types, names):
        if gdal_type not in _GDAL_TO_NUMPY:
            raise InputError(f'{label} has pixel type {name}; expected integer or float numbers (EnMAP L2A is '
                             'Int16).')
    dtypes = [_GDAL_TO_NUMPY[t] for t in types]
    common = np.result_type(*dtypes)
    if common == np.int8:  # (GDAL 3.7 and newer: GDAL converts them to the Int16 read buffer)
        common = np.dtype(np.int16)
    if common.name not in GDAL_TYPES and len(types) > 1 and all(np.can_cast(d, np.float64) for d in dtypes):
        common = np.dtype(np.float64)
    if common.name not in GDAL_TYPES:
        raise InputError(f'{label} has pixel type {" and ".join(names)}; EnMAP Compress reads '
                         f'{", ".join(GDAL_TYPES.values())} images (EnMAP L2A is Int16). Convert it first, for '
                         'example with gdal_translate -ot Int32 when its values fit, or -ot Float64.')
    gdal_type = next(t for t, d in _GDAL_TO_NUMPY.items() if d == common)
    warning = (f'{label} has pixel type Int8; it is read as Int16, and the output has that type.'
               if names == ['Int8'] else None) if len(types) == 1 else (
        f'{label} has bands of different pixel types ({", ".join(names)}); all are read as '
        f'{gdal.GetDataTypeName(gdal_type)}, which holds every value of each, and the output has that type.')
    return gdal_type, common, warning


def _is_number(text):
    try:
        float(str(text).strip())
    except ValueError:
        return False
    return True


def representable(value, dtype):
    """Whether a nodata value can occur in data of `dtype` (-32768 never occurs in uint8 data, NaN in ints)."""
    if value is None or np.isnan(value):
        return False
    if dtype.kind in 'iu':
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return not np.isfinite(value) or abs(value) <= np.finfo(dtype).max  # (1e300 never occurs in float32 data)


# ----------------------------------------------------------------------------------------------------------------
# The raster

class SpectralRaster:
    """An open hyperspectral raster. Attributes are in FILE band order; use canonical_index for ascending order.

    Use as a context manager or call close(); nothing is read until read()/dead_bands/check_not_empty.
    """

    def __init__(self, source, located, ds):
        self.source = source
        self.gdal_path = located.gdal_path
        self.metadata_xml = located.xml.path if located.xml else None
        self.product_name = located.xml.product_name if located.xml else None
        self.warnings = []
        self._ds = ds
        self._label = located.label
        self._xml_dead = located.xml.dead if located.xml else None
        self._valid_cache = None
        self._zip_image = located.zip_image if located.zip_image and located.zip_image.deflated else None
        self._staged = self._staged_ds = self._stream = self._stage_progress = self._step_progress = None
        self._wait_share = 0.5
        self._bytes_read = 0
        if located.note:
            self._warn(located.note)
        for note in (located.xml.notes if located.xml else ()):
            self._warn(note)
        self._init_geometry(ds)
        self._init_spectral(ds, located.xml)
        self._init_radiometry(ds, located.xml)
        if located.xml is not None:
            self._check_product(located.xml)

    # -- setup ---------------------------------------------------------------------------------------------------
    def _warn(self, message):
        self.warnings.append(message)
        logger.warning(message)

    def _init_geometry(self, ds):
        self.width, self.height, self.band_count = ds.RasterXSize, ds.RasterYSize, ds.RasterCount
        subdatasets = (ds.GetSubDatasets() or []) if self.band_count == 0 else []
        if subdatasets:  # (a netCDF or HDF file: its images are subdatasets, the file itself has no band)
            raise InputError(f'{self._label} holds {len(subdatasets)} subdataset{"s" if len(subdatasets) > 1 else ""}'
                             f' (such as {subdatasets[0][0]}), not one multi-band image: convert it to a GeoTIFF '
                             'first (gdal_translate of the subdataset that holds the bands, or gdalbuildvrt '
                             '-separate of one subdataset per band).')
        alpha = [i + 1 for i in range(self.band_count)
                 if ds.GetRasterBand(i + 1).GetColorInterpretation() == gdal.GCI_AlphaBand]
        if alpha:  # (GDAL makes a mask of it only for 2- and 4-band rasters: it would be read as a spectral band)
            others = '-b 1 ... -b 224' if self.band_count == 225 and alpha == [225] else 'the other bands as -b'
            raise InputError(f'{self._label}: its band {alpha[0]} of {self.band_count} is an alpha band (transparency, '
                             'as gdalwarp -dstalpha and gdalbuildvrt -addalpha add it), not a spectral band, and '
                             'EnMAP Compress does not read alpha bands. Make it a mask band, whose masked pixels are '
                             f'read as nodata (gdal_translate -mask {alpha[0]} with {others}), or write nodata '
                             'instead (gdalwarp -dstnodata -32768 without -dstalpha).')
        if self.band_count < MIN_BANDS:
            raise InputError(f'{self._label} has {self.band_count} band{"s" if self.band_count != 1 else ""}; '
                             'EnMAP Compress expects a hyperspectral image (EnMAP L2A has 224 bands).')
        self._gdal_type, self.dtype, mixed = _band_dtype(ds, self._label)
        self._buffer_dtype = np.dtype(np.int8) if self._gdal_type == gdal.GDT_Byte and self.dtype == np.int16 \
            else self.dtype  # what ReadRaster's bytes hold (signed bytes read as Byte: their int8 view)
        if mixed:
            self._warn(mixed)
        self.crs_wkt = ds.GetProjection() or ''
        self.geotransform = tuple(ds.GetGeoTransform() or NO_GEOTRANSFORM)
        if not all(np.isfinite(self.geotransform)):
            self._warn(f'{self._label} has a geotransform that is not a set of numbers ({self.geotransform}); it is '
                       'read as none, and the output has none.')
            self.geotransform = NO_GEOTRANSFORM
        # ground control points and RPCs (a raster not yet orthorectified): carried to the output as they are
        self.gcps = [(g.GCPPixel, g.GCPLine, g.GCPX, g.GCPY, g.GCPZ) for g in (ds.GetGCPs() or ())]
        self.gcp_crs_wkt = (ds.GetGCPProjection() or '') if self.gcps else ''
        self.rpc = dict(ds.GetMetadata('RPC') or {})
        # pixel-is-point: GDAL reports the geotransform of the pixels' corners either way; the flag says the values
        # are samples at their centres
        self.pixel_is_point = str(ds.GetMetadataItem('AREA_OR_POINT') or '').strip().lower() == 'point'
        if self.pixel_is_point and self.gcps and self.geotransform == NO_GEOTRANSFORM:
            self._warn(f'{self._label} is pixel-is-point (AREA_OR_POINT=Point) and georeferenced by ground control '
                       'points; the output states the same points as pixel-is-area (GDAL would move points written '
                       'with the flag by a pixel).')
            self.pixel_is_point = False

    def _init_spectral(self, ds, xml):
        n = self.band_count
        if xml is not None and xml.wavelengths.size != n:
            raise InputError(f'The METADATA.XML {xml.path} describes {xml.wavelengths.size} bands but the image '
                             f'{self.gdal_path} has {n}; expected the METADATA.XML of the same product.')
        wavelengths, fwhm = (xml.wavelengths, xml.fwhm) if xml is not None else _gdal_spectral(ds)
        if wavelengths is None:
            wavelengths, fwhm = self._assume_standard(n)
        if not _in_band_range(wavelengths, low_open=True):
            raise InputError(f'{self._label} has invalid wavelength metadata (values must be positive numbers of nm '
                             f'below {MAX_BAND_NM:g}).')
        if fwhm is not None and not _in_band_range(fwhm, low_open=False):  # (a .ehc band table cannot state it)
            self._warn(f'{self._label} has FWHM metadata that is no bandwidth (negative, not a number or over '
                       f'{MAX_BAND_NM:g} nm); it is left out of the output.')
            fwhm = None
        self.wavelengths = np.asarray(wavelengths, dtype=np.float64)
        self.fwhm = None if fwhm is None else np.asarray(fwhm, dtype=np.float64)
        self.band_order = _bands.detect_band_order(self.wavelengths)
        self.canonical_index = _bands.canonical_order(self.wavelengths)
        self._inverse_index = np.argsort(self.canonical_index)
        self.is_standard_enmap = _bands.matches_standard(self.wavelengths)
        self.band_names = self._make_band_names(ds)
        self.bad_bands = self._envi_bad_bands(ds)

    def _check_product(self, xml):
        """Say where the product's METADATA.XML and its image do not fit together, or the product is not the L2A
        reflectance the models are made for (what it states is used all the same)."""
        if xml.level == 'L1C':
            self._warn(f'{self._label} is an EnMAP L1C product: top-of-atmosphere radiance (DN x GainOfBand + '
                       'OffsetOfBand), not the L2A reflectance the lossy models are made for, which they clip to '
                       '0..1; use MAX_ERROR (error-bounded or lossless) to keep its values.')
        elif xml.level is not None and not xml.level.startswith('L2A'):
            self._warn(f'{self._label} is an EnMAP {xml.level} product, not L2A: its bands are read as the '
                       'METADATA.XML states them, but the models are made for L2A reflectance.')
        if xml.dimensions is not None and xml.dimensions != (self.width, self.height):
            self._warn(f'{self._label}: its METADATA.XML {xml.path} describes a {xml.dimensions[0]} x '
                       f'{xml.dimensions[1]} pixel image, but the image {self.gdal_path} is {self.width} x '
                       f'{self.height}: they may be of different products (the METADATA.XML\'s wavelengths and '
                       'gains are used).')
        if not self.crs_wkt and self.geotransform == NO_GEOTRANSFORM and not self.gcps:
            self._warn(f'{self._label}: its image {self.gdal_path} has no georeferencing (no CRS or geotransform; '
                       'the METADATA.XML states no pixel grid), so the output has none.')

    def _assume_standard(self, n):
        if n != _bands.N_BANDS:
            raise InputError(f'{self._label} has {n} bands and no wavelength metadata; expected band metadata '
                             '"wavelength" (GDAL) or an ENVI header with wavelengths, or a 224-band EnMAP L2A image.')
        self._warn(f'{self._label} has no wavelength metadata; assuming the standard EnMAP L2A bands in ascending '
                   'wavelength order. If its bands are in another order, the results will be wrong.')
        return _bands.standard_wavelengths(), _bands.standard_fwhm()

    def _envi_bad_bands(self, ds):
        """0-based bands the ENVI bad band list (bbl, as ENVI headers and GDAL's ENVI domain state it) flags 0, or
        an empty list; the output's bbl flags them besides the dead bands."""
        stated = _lower_keys(ds.GetMetadata('ENVI')).get('bbl')
        if stated is None:
            return []
        flags = _parse_list(stated, self.band_count)
        if flags is None or not np.isin(flags, (0.0, 1.0)).all():
            self._warn(f'{self._label}: the ENVI bad band list (bbl) is not {self.band_count} values of 0 or 1; it '
                       'is ignored, and the output\'s bbl flags only the bands without data.')
            return []
        return [int(i) for i in np.flatnonzero(flags == 0.0)]

    def _make_band_names(self, ds):
        names = []
        for i, wl in enumerate(self.wavelengths):
            desc = ds.GetRasterBand(i + 1).GetDescription() or ''
            if not desc.strip():  # (a name of spaces only is none; others keep their spaces)
                desc = ''
            if len(desc) > MAX_TEXT:  # (the .ehc header stores names up to this length)
                self._warn(f'{self._label}: the name of band {i + 1} has {len(desc)} characters; its first '
                           f'{MAX_TEXT} are kept.')
                desc = desc[:MAX_TEXT]
            names.append(desc or f'band {i + 1} ({wl:.1f} Nanometers)')
        return names

    def _init_radiometry(self, ds, xml):
        nodata, same = _band_nodata(ds)
        stated = _lower_keys(ds.GetMetadata('ENVI')).get('data_ignore_value')
        if nodata is not None and stated is not None and not _is_number(stated):  # GDAL reads 'abc' as 0
            self._warn(f'{self._label}: the ENVI header\'s data ignore value {str(stated)[:40]!r} is not a number; '
                       'it is ignored.')
            nodata, same = None, True
        if not same:
            self._warn(f'{self._label}: the bands have different nodata values; using band 1\'s ({nodata}).')
        if nodata is None and xml is not None:
            nodata = ENMAP_NODATA  # DLR's L2A no-data value, not always stored in the image file
        self.nodata = None if nodata is None else float(nodata)
        if self.nodata is not None and not (self.dtype.kind == 'f' and np.isnan(self.nodata)) and \
                not representable(self.nodata, self.dtype):
            self._warn(f'{self._label} declares nodata {self.nodata:g}, which {gdal.GetDataTypeName(self._gdal_type)} '
                       'data cannot hold, so no sample is nodata: it is read without nodata, and the output '
                       'declares none.')
            self.nodata = None
        self._mask_fill = None  # what read() writes at the pixels a per-dataset mask band masks
        flags = ds.GetRasterBand(1).GetMaskFlags()
        if not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):  # a mask of its own, not one GDAL derives
            self._init_mask(flags)
        self.gains, self.offsets = self._gains_offsets(ds, xml)

    def _init_mask(self, flags):
        """Band 1's GDAL mask flags say it has a mask band. A per-dataset mask (or alpha) band: its masked pixels are
        read as nodata pixels, as gdalwarp -dstnodata writes them (an integer raster without nodata takes
        MASK_NODATA's value; a float one NaN). A mask per band is not read (said so)."""
        if not flags & gdal.GMF_PER_DATASET:
            self._warn(f'{self._label} has a mask band per band, which EnMAP Compress does not read: its masked '
                       'pixels are compressed as data and the output has no mask. To keep them out, write them as '
                       'a nodata value first (for example gdalwarp -dstnodata -32768).')
            return
        if self.nodata is None and self.dtype.kind in 'iu':
            self.nodata = float(MASK_NODATA[self.dtype.kind](self.dtype))
        self._mask_fill = self.nodata if self.nodata is not None else float('nan')
        self._warn(f'{self._label} has a mask band: its masked pixels are read as nodata ({self._mask_fill:g}) and '
                   'come back as nodata pixels; the output states them by that nodata value, not by a mask.')

    def _gains_offsets(self, ds, xml):
        n = self.band_count
        if xml is not None and xml.gains is not None:
            offsets = xml.offsets if xml.offsets is not None else np.zeros(n)
            self._check_radiometry(xml.gains, offsets, f'The METADATA.XML {xml.path} states', 'GainOfBand',
                                   'OffsetOfBand')
            stated, _ = _band_scaling(ds)  # (scale 1 in every band: what a VRT or ENVI header states for none)
            if stated is not None and not np.all(stated == 1.0) and not np.allclose(stated, xml.gains, rtol=1e-6):
                band = int(np.flatnonzero(~np.isclose(stated, xml.gains, rtol=1e-6))[0])
                self._warn(f'{self._label}: its image states scale {stated[band]:g} for band {band + 1}, its '
                           f'METADATA.XML GainOfBand {xml.gains[band]:g}; the METADATA.XML\'s gains are used.')
            return xml.gains.copy(), offsets.copy()
        gains, offsets = _band_scaling(ds)
        if gains is not None:
            self._check_radiometry(gains, offsets, f'{self._label} states', 'scale', 'offset')
        integral = self.dtype.kind in 'iu' and self.dtype.itemsize >= 2  # types that can hold EnMAP's DN
        if gains is not None and not (integral and np.all(gains == 1.0) and np.all(offsets == 0.0)):
            return gains, offsets
        factor = self._reflectance_scale_factor(ds)
        if factor is not None:
            return np.full(n, 1.0 / factor), np.zeros(n)
        # integer DN at scale 1 are no reflectance (all but 0 and 1 would clip): a VRT or ENVI header states 1
        # where the file has no scale; UInt16 and Int32 DN take the EnMAP convention as Int16 does
        if integral and (xml is not None or self.is_standard_enmap):
            self._warn(f'{self._label} has no scale/offset; assuming the EnMAP L2A convention '
                       'reflectance = DN x 0.0001.')
            return np.full(n, ENMAP_GAIN), np.zeros(n)
        if self.dtype.kind == 'f' and (xml is not None or self.is_standard_enmap):
            return self._float_units(ds, n)
        return np.ones(n), np.zeros(n)

    @staticmethod
    def _check_radiometry(gains, offsets, stated, gain_name, offset_name):
        """InputError naming the first band whose gain or offset is no radiometry (as bands.Radiometry takes it), so
        the file is named here, not in an error of the compressor's."""
        bad = _bands.unusable_gains(gains)
        if bad.any():
            band = int(np.flatnonzero(bad)[0])
            raise InputError(f'{stated} {gain_name} {gains[band]:g} for band {band + 1}; a gain must be a number of '
                             f'magnitude {MIN_GAIN:g} to {MAX_GAIN:g} (reflectance = DN x {gain_name} + '
                             f'{offset_name}).')
        bad = _bands.unusable_offsets(offsets)
        if bad.any():
            band = int(np.flatnonzero(bad)[0])
            raise InputError(f'{stated} {offset_name} {offsets[band]:g} for band {band + 1}; an offset must be a '
                             f'number of magnitude at most {MAX_GAIN:g}.')

    def _reflectance_scale_factor(self, ds):
        """An ENVI header's 'reflectance scale factor' (reflectance = value / factor; GDAL does not make it a band
        scale), or None when it states none; one that is no positive number is ignored, with a warning."""
        stated = _lower_keys(ds.GetMetadata('ENVI')).get('reflectance_scale_factor')
        if stated is None:
            return None
        factor = _float_or_none(stated)
        if factor is None or not MIN_GAIN <= factor <= MAX_GAIN:  # (gains beyond these are no radiometry)
            self._warn(f'{self._label}: the ENVI header\'s reflectance scale factor {str(stated)[:40]!r} is not a '
                       'positive number; it is ignored.')
            return None
        return factor

    def _float_units(self, ds, n):
        """Float samples without a scale are reflectance (gain 1) unless they are far too large for it: EnMAP DN
        written as floats (up to 10000) read as reflectance would reach the models 10000 times too bright."""
        typical = _sampled_percentile(ds, self.nodata, FLOAT_DN_PERCENTILE)
        if typical is None or typical <= FLOAT_REFLECTANCE_LIMIT:
            return np.ones(n), np.zeros(n)
        self._warn(f'{self._label} holds float values without a scale/offset that are too large for reflectance '
                   f'({FLOAT_DN_PERCENTILE:g} % of the sampled values are below {typical:.6g}); reading them as EnMAP '
                   'DN, reflectance = value x 0.0001. Set the bands\' scale if they are something else.')
        return np.full(n, ENMAP_GAIN), np.zeros(n)

    # -- life cycle ----------------------------------------------------------------------------------------------
    def close(self):
        self._ds = self._staged_ds = None  # releases the GDAL handles (and the file locks on Windows)
        if self._staged is not None:
            self._staged.close()  # removes the unpacked copy of a ZIP member
            self._staged = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        return (f'SpectralRaster({self.source!r}, {self.width}x{self.height}x{self.band_count}, '
                f'{self.dtype}, order={self.band_order})')

    # -- reading -------------------------------------------------------------------------------------------------
    def _dataset(self):
        if self._ds is None:
            raise ValueError(f'{self.source} has been closed; open it again with open_spectral().')
        return self._ds

    @property
    def needs_staging(self):
        """Whether stage() would unpack a deflated ZIP member (not done yet)."""
        return self._zip_image is not None

    def stage(self, progress=None):
        """Make a walk over the whole image cheap. A deflated spectral image inside a product ZIP is inflated once
        into a private temporary folder, read from there, and removed by close(); `progress` (a tiling.Progress)
        moves with the bytes and may cancel. This returns once the dead bands are known and GDAL can open the copy
        (for a row-ordered TIFF, early); the rest unpacks meanwhile, and each read waits for its rows (checking
        `progress` for a cancel). Anything else reads in place: this does nothing. read() stages by itself once the
        pixels read add up to an eighth of the image."""
        if self._zip_image is None or self._staged is not None:
            return
        image, self._zip_image = self._zip_image, None  # one attempt: on failure the ZIP is read in place
        scan = StreamedBandScan((self.band_count, self.height, self.width), self.dtype, self._invalid,
                                ignore=self._xml_dead)

        def ready(written):  # the dead bands are known and GDAL can open the image: reads wait for their rows
            return scan.settled and scan.head_end is not None and written >= scan.head_end

        staged, reason = zipstage.stage(image, progress, on_block=scan.feed, ready=ready)
        if staged is None:
            self._warn(f'{self._label}: {reason}; reading the image inside the ZIP instead, which is much slower.')
            return
        try:
            ds = _gdal_open(_Located(gdal_path=staged.path, label=self._label, drivers=PRODUCT_IMAGE_DRIVERS))
            if (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) != (self.width, self.height, self.band_count):
                raise InputError(f'{self._label}: the unpacked image differs from the one GDAL reads in the ZIP.')
        except BaseException:
            ds = None
            staged.close()
            raise
        self._staged, self._staged_ds, self._stream = staged, ds, scan
        self._stage_progress = progress
        if self._valid_cache is None and scan.has_valid is not None:
            self._valid_cache = scan.has_valid  # the dead-band scan needs no second pass over the image

    def _await_rows(self, y, height, bands):
        """Wait until the staged image holds rows y..y+height of `bands` (while the rest is still unpacking)."""
        staged = self._staged
        if staged is None or staged.complete:
            return
        strips = self._stream.strips
        ready = strips.ready(y, height, bands) if strips is not None else None
        last = ready is None or ready >= strips.ends.max()  # the image's last strip waits for the CRC check
        target = float('inf') if last else ready + READ_MARGIN
        goal = staged.image_size if last else target
        staged.wait_for(target, functools.partial(self._while_waiting, staged, staged.written, goal))

    def report_waits_to(self, steps, share=0.5):
        """While a read waits for the unpacking, move `steps` (a tiling.Progress counting steps, such as tiles)
        through `share` of a step past what it has done with the bytes it waits for (the caller advances it by
        that share when the read is done), so the bar does not stand still; None: stop."""
        self._step_progress, self._wait_share = steps, share

    def _while_waiting(self, staged, start, goal):
        """What a read waiting for the unpacking does every tenth of a second: say so, move the bar within the
        current step (tiling.Progress never moves back) and honour a cancel."""
        progress, steps = self._stage_progress, self._step_progress
        if progress is not None:
            progress.say(staged.describe())
        if steps is not None and goal is not None and goal > start:
            waited = min(1.0, (staged.written - start) / (goal - start))
            steps.report((steps.done + self._wait_share * waited) / steps.total)
        if progress is not None:
            progress.check()

    def _pixel_dataset(self, y, height, bands, nbytes):
        """The dataset the pixels of rows y..y+height of `bands` come from: the staged copy of a ZIP member once the
        reads add up to a walk (after waiting for those rows), else the image itself.

        No frame holds a dataset while a read waits: a failed wait's traceback (a cancel, damage further on) may
        outlive the reader's close(), and a dataset it held would keep the unpacked file open (Windows cannot
        delete it), and crash the interpreter if it is freed after QgsApplication.exitQgis() has closed GDAL's
        datasets (pytest-qgis exits so)."""
        if self._zip_image is not None:
            self._bytes_read += nbytes
            if self._bytes_read > self._zip_image.size // 8:
                self.stage()
        if self._staged_ds is None:
            return self._dataset()
        self._await_rows(y, height, bands)
        return self._staged_ds

    def drop_cache(self):
        """Let GDAL forget the blocks it cached for this raster (a walk that will not come back to them calls
        this after each row of tiles, so the cache does not grow to the whole image)."""
        for dataset in (self._ds, self._staged_ds):
            if dataset is not None:
                dataset.FlushCache()

    def done_with(self, tile):
        """A walk over the image in raster order calls this after each tile it read: after a row's last tile GDAL
        forgets the row's blocks (kept, the cache grew to the whole image, up to GDAL's 5 % of the memory)."""
        if tile.x + tile.width >= self.width:
            self.drop_cache()

    def _check_window(self, x, y, width, height):
        if width <= 0 or height <= 0 or x < 0 or y < 0 or x + width > self.width or y + height > self.height:
            raise ValueError(f'Window x={x} y={y} width={width} height={height} lies outside the image '
                             f'({self.width} x {self.height}).')

    def _band_list(self, bands):
        if bands is None:
            return np.arange(self.band_count)
        idx = np.asarray(bands, dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= self.band_count:
            raise ValueError(f'Band indices must be 0..{self.band_count - 1}, got {bands!r}.')
        return idx

    def read(self, x, y, width, height, bands=None, writable=True):
        """(bands, height, width) array in the native dtype and FILE order; bands = 0-based file indices.
        writable False: may be a read-only view of GDAL's buffer (saves a copy of what is read)."""
        x, y, width, height = int(x), int(y), int(width), int(height)
        self._check_window(x, y, width, height)
        idx = self._band_list(bands)
        dataset = self._pixel_dataset(y, height, idx, idx.size * width * height * self._buffer_dtype.itemsize)
        try:
            with checked() as recorder:
                buf = dataset.ReadRaster(x, y, width, height, buf_type=self._gdal_type,
                                         band_list=[int(b) + 1 for b in idx])
                if buf is None:
                    raise failure(recorder, 'I/O error')
        except GdalError as exc:
            raise InputError(f'Reading {self.gdal_path} failed ({exc}); the file may be truncated or damaged.') \
                from None
        finally:
            dataset = None  # not held by the traceback of a failed read (see _pixel_dataset)
        cube = np.frombuffer(buf, dtype=self._buffer_dtype).reshape(idx.size, height, width)
        if self._buffer_dtype != self.dtype:
            cube = cube.astype(self.dtype)
        if self._mask_fill is not None:
            masked = ~self._mask_window(x, y, width, height)
            if masked.any():
                cube = cube if cube.flags.writeable else cube.copy()
                cube[:, masked] = self._mask_fill
        return cube if cube.flags.writeable or not writable else cube.copy()

    def _mask_window(self, x, y, width, height):
        """The per-dataset mask band's window: True where a pixel is not masked."""
        try:
            with checked() as recorder:
                buf = self._dataset().GetRasterBand(1).GetMaskBand().ReadRaster(x, y, width, height,
                                                                                 buf_type=gdal.GDT_Byte)
                if buf is None:
                    raise failure(recorder, 'I/O error')
        except GdalError as exc:
            raise InputError(f'Reading the mask band of {self.gdal_path} failed ({exc}); the file may be truncated '
                             'or damaged.') from None
        return np.frombuffer(buf, np.uint8).reshape(height, width) > 0

    def read_canonical(self, x, y, width, height, writable=True):
        """Like read() for all bands, in canonical (ascending-wavelength) order."""
        return self.read(x, y, width, height, bands=self.canonical_index, writable=writable)

    def to_canonical(self, cube):
        """Reorder a (bands, ...) array from file order to canonical order."""
        return self._reorder(cube, self.canonical_index)

    def to_file_order(self, cube):
        """Reorder a (bands, ...) array from canonical order back to file order (inverse of to_canonical)."""
        return self._reorder(cube, self._inverse_index)

    def _reorder(self, cube, index):
        cube = np.asarray(cube)
        if cube.ndim < 1 or cube.shape[0] != self.band_count:
            raise ValueError(f'Expected an array with {self.band_count} bands first, got shape {cube.shape}.')
        return cube[index]

    @property
    def canonical_radiometry(self):
        """bands.Radiometry of all bands in canonical order (the gains and offsets of the file or its METADATA.XML)."""
        return _bands.Radiometry.of(self.gains[self.canonical_index], self.offsets[self.canonical_index])

    def hyspecnet_view(self, x, y, width, height):
        """float32 (202, height, width) in HySpecNet-11k's convention (needs a standard 224-band EnMAP image)."""
        if not self.is_standard_enmap:
            raise InputError(f'{self._label} has {self.band_count} bands that do not match the 224 EnMAP L2A bands; '
                             'the HySpecNet view needs a standard EnMAP L2A image.')
        cube = self.read_canonical(x, y, width, height).astype(np.float32)
        invalid = self._invalid(cube)
        gains, offsets = self.gains[self.canonical_index], self.offsets[self.canonical_index]
        if not (np.allclose(gains, ENMAP_GAIN, rtol=1e-6) and np.allclose(offsets, 0.0)):
            # bring other scalings to EnMAP DN (reflectance x 10000)
            unit = cube * gains[:, None, None].astype(np.float32) + offsets[:, None, None].astype(np.float32)
            cube = unit * DN_PEAK
        cube[invalid] = 0.0
        return _bands.to_hyspecnet(cube)

    # -- nodata --------------------------------------------------------------------------------------------------
    def _invalid(self, block):
        """Nodata samples: the nodata value, NaN and ±Inf (as the codec's valid_pixels counts them)."""
        invalid = ~np.isfinite(block) if block.dtype.kind == 'f' else np.zeros(block.shape, dtype=bool)
        if representable(self.nodata, block.dtype):
            invalid |= block == np.asarray(self.nodata).astype(block.dtype)
        return invalid

    def _scan_rows(self, n_bands, block_bytes=SCAN_BLOCK_BYTES):
        row_bytes = max(1, self.width * self.dtype.itemsize * n_bands)
        return int(max(1, min(self.height, block_bytes // row_bytes)))

    def _scan_valid(self, stop_at_first=False, progress=None):
        """bool per file band: has at least one valid pixel (bands METADATA.XML calls dead are not looked for).
        Reads row blocks from SCAN_FIRST_BYTES doubling to SCAN_BLOCK_BYTES; `progress` (a tiling.Progress) moves
        with the rows and may cancel."""
        has_valid = np.zeros(self.band_count, dtype=bool)
        if self.nodata is None and self.dtype.kind != 'f':
            has_valid[:] = True  # integer data without a nodata value: every pixel is valid
            return has_valid
        wanted = ~self._xml_dead if self._xml_dead is not None else np.ones(self.band_count, bool)
        y, block_bytes = 0, SCAN_FIRST_BYTES
        while y < self.height and not has_valid[wanted].all():
            pending = np.flatnonzero(wanted & ~has_valid)
            rows = min(self._scan_rows(pending.size, block_bytes), self.height - y)
            block = self.read(0, y, self.width, rows, bands=pending)
            has_valid[pending] |= (~self._invalid(block)).reshape(pending.size, -1).any(axis=1)
            if stop_at_first and has_valid.any():
                return has_valid
            y, block_bytes = y + rows, min(2 * block_bytes, SCAN_BLOCK_BYTES)
            if progress is not None:
                progress.report(y / self.height)
                progress.check()
        return has_valid

    def find_dead_bands(self, progress=None):
        """Scan for the bands without a valid pixel now (dead_bands does it lazily), moving `progress`."""
        if self._valid_cache is None:
            self._valid_cache = self._scan_valid(progress=progress)

    def _valid_bands(self):
        self.find_dead_bands()
        return self._valid_cache

    @property
    def dead_bands(self):
        """bool per file band: flagged dead in METADATA.XML or entirely nodata (scanned once, lazily)."""
        dead = ~self._valid_bands()
        if self._xml_dead is not None:
            dead = dead | self._xml_dead
        return dead.copy()

    @property
    def canonical_dead_bands(self):
        """dead_bands in canonical (ascending-wavelength) order."""
        return self.dead_bands[self.canonical_index]

    def check_not_empty(self):
        """Raise InputError when every pixel of every band is nodata (stops at the first valid pixel)."""
        has_valid = self._valid_cache if self._valid_cache is not None else self._scan_valid(stop_at_first=True)
        if not has_valid.any():
            what = 'NaN or ±Inf' if self.nodata is None or np.isnan(self.nodata) else f'{self.nodata:g}, NaN or ±Inf'
            raise InputError(f'{self._label} contains only nodata pixels ({what}); there is nothing to compress. '
                             'Expected an image with valid data.')


def open_spectral(path, check_empty=False):
    """Open an EnMAP product or hyperspectral raster (see the module docstring); raises InputError when unusable."""
    source = os.fspath(path)
    located = _locate(source)
    ds = _gdal_open(located)
    try:
        raster = SpectralRaster(source, located, ds)
    except BaseException:
        ds = None  # release the file now (Windows keeps open files locked)
        raise
    if check_empty:
        try:
            raster.check_not_empty()
        except BaseException:
            raster.close()
            raise
    return raster

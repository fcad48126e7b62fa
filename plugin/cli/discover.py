"""Finding the products under an archive folder, and where each one's .ehc goes in the mirrored tree.

A product is a folder holding a `*-METADATA.XML` (not searched further), a DLR product ZIP, a loose
`*-SPECTRAL_IMAGE*.TIF`, or a ZIP inside a `.tar.gz` order. A tar is one *source*: its ZIPs are only known once it
is streamed, which the worker that processes it does (listing a tar means decompressing all of it). Outputs mirror
SRC: `a/X/` (folder), `a/X.ZIP` and `a/X-SPECTRAL_IMAGE.TIF` give `a/X.ehc`; a ZIP `X.ZIP` in `a/order.tar.gz`
gives `a/order/X.ehc`. When a folder and its ZIP (or a loose TIF) would give the same output, the delivered ZIP wins.
"""
import os
import re
from dataclasses import dataclass

from ..core.errors import InputError

METADATA_SUFFIX = '-METADATA.XML'
TAR_SUFFIXES = ('.tar.gz', '.tgz', '.tar', '.tar.bz2', '.tar.xz')
_SPECTRAL_TIF = re.compile(r'-SPECTRAL_IMAGE(_COG)?\.TIFF?$', re.IGNORECASE)
PREFERENCE = ('zip', 'folder', 'tif')  # which source of one output is used


@dataclass(frozen=True)
class Source:
    """What one task reads: kind 'folder', 'zip', 'tif' or 'tar'; paths relative to SRC / DEST use '/'."""

    kind: str
    input: str
    path: str
    output: str  # for a tar: the folder its products go to


def relative(path, root):
    return os.path.relpath(path, root).replace(os.sep, '/')


def is_product_folder(folder):
    try:
        return any(n.upper().endswith(METADATA_SUFFIX) and os.path.isfile(os.path.join(folder, n))
                   for n in os.listdir(folder))
    except OSError:
        return False


def tar_stem(name):
    lower = name.lower()
    for suffix in TAR_SUFFIXES:
        if lower.endswith(suffix):
            return name[:-len(suffix)]
    return None


def ehc_name(name):
    """The .ehc file name of a product folder, ZIP or spectral image TIF."""
    if _SPECTRAL_TIF.search(name):
        return _SPECTRAL_TIF.sub('', name) + '.ehc'
    return (name[:-4] if name.lower().endswith('.zip') else name) + '.ehc'


def _classify(name):
    lower = name.lower()
    if tar_stem(name) is not None:
        return 'tar'
    if lower.endswith('.zip'):
        return 'zip'
    if _SPECTRAL_TIF.search(name):
        return 'tif'
    return None


def discover(src, dest=None):
    """(sources sorted by input, duplicates) under `src`; `dest` (when inside src) is not searched."""
    src = os.path.abspath(src)
    if not os.path.isdir(src):
        raise InputError(f'The archive folder {src} does not exist or is not a folder.')
    if is_product_folder(src):
        raise InputError(f'{src} is itself a product folder; give the folder above it, or use "compress".')
    skip = {os.path.abspath(dest)} if dest else set()
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if os.path.join(root, d) not in skip and not d.startswith('.'))
        products = [d for d in dirs if is_product_folder(os.path.join(root, d))]
        dirs[:] = [d for d in dirs if d not in products]  # a product folder's files are not products
        rel_root = relative(root, src)
        prefix = '' if rel_root == '.' else rel_root + '/'
        for name in products:
            found.append(Source('folder', prefix + name, os.path.join(root, name), prefix + ehc_name(name)))
        for name in sorted(files):
            kind = _classify(name)
            if kind == 'tar':
                found.append(Source('tar', prefix + name, os.path.join(root, name), prefix + tar_stem(name)))
            elif kind:
                found.append(Source(kind, prefix + name, os.path.join(root, name), prefix + ehc_name(name)))
    return _unique_outputs(found)


def _unique_outputs(found):
    """One source per output. Sources of one output (a folder and its ZIP) are one product: the preferred kind is
    compressed, the others are duplicates. Outputs that differ in letter case only are one file on Windows and
    macOS, and orders (tars) of one output folder are not one product: the first by name is compressed, the others
    are collisions (they fail, naming it)."""
    by_output = {}
    for source in found:
        by_output.setdefault(source.output.lower(), []).append(source)
    chosen, duplicates = [], []
    for group in by_output.values():
        group.sort(key=lambda s: (s.output, PREFERENCE.index(s.kind) if s.kind in PREFERENCE else len(PREFERENCE)))
        chosen.append(group[0])
        duplicates += [{'input': s.input, 'output': s.output, 'same_output_as': group[0].input,
                        'same_output': group[0].output,
                        'collision': s.output != group[0].output or 'tar' in (s.kind, group[0].kind)}
                       for s in group[1:]]  # (an order is no copy of another source: order.tar.gz and order.tar
        # may hold different products, and both would fill the folder order/)
    return sorted(chosen, key=lambda s: s.input), duplicates


def collision_message(output, other_input, other_output):
    """Why a product whose output is another's (or differs from it in letter case only) is not compressed."""
    case = ' (names that differ in letter case only are one file on Windows and macOS)' \
        if other_output != output else ''
    return f'its output {output} is the output of {other_input} too{case}; rename or move one of them'

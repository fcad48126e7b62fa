"""Where the bytes of a small .ehc file go: container framing, header (by part), tile framing and payload.

usage: python -m bench.header_overhead [--models rdnet] [--levels 1,4,10] [--sizes 32,128]
Inputs: a 32 x 32 training tile (enmap_potsdam_tile_96_32, never a held-out one) for size 32, the synthetic scene of
tools.synthetic (seed 0) for other sizes. Each file is written by the real codec. A header part's cost is what the
stored (deflated) header loses when the part is left out, so parts need not add up to the header exactly.
bpppb counts the whole file over the valid pixels and the HySpecNet bands.
"""
import argparse
import copy
import os
import shutil
import struct

from bench.reporting import machine, scratch_dir
from bench.scenes import CODED, synthetic_scene
from enmap_compress.plugin.core import container
from enmap_compress.plugin.core.codec import compress
from enmap_compress.plugin.core.container import EhcReader
from training.shared_data import potsdam_tiles

TRAINING_TILE = 'enmap_potsdam_tile_96_32'
HEADER_PARTS = (('wavelengths', 'raster', ('wavelengths_delta', 'wavelengths_milli')),
                ('fwhm', 'raster', ('fwhm_delta', 'fwhm_milli')),
                ('crs + geotransform', 'raster', ('crs', 'geotransform')),
                ('model sha256', 'codec', ('model_sha256',)),
                ('provenance', None, ('device', 'software', 'created')))


def source_of(size):
    if size == 32:
        return next(p for p in potsdam_tiles(held_out=False) if os.path.basename(p).startswith(TRAINING_TILE))
    return synthetic_scene(size, size)


def stored_header_bytes(header, version):
    """The deflated length of a header as a file of `version` stores it."""
    return len(container.store_json(container.to_json_bytes(header), tuple(version)))


def without(header, section, keys):
    out = copy.deepcopy(header)
    for key in keys:
        (out if section is None else out[section]).pop(key, None)
    return out


def tile_framing(payload):
    """Bytes of a tile payload before its sections: u8 version, u16 count, a u32 length per section."""
    return 3 + 4 * struct.unpack_from('<BH', payload)[1]


def breakdown(path):
    """{part: bytes} of a written file."""
    size = os.path.getsize(path)
    with EhcReader(path) as reader:
        header, version = reader.header, reader.version
        header_bytes = stored_header_bytes(header, version)
        records = sum(reader.stored_size(i) - len(reader.read_chunk(i)) for i in range(reader.chunk_count))
        framing = sum(tile_framing(reader.read_chunk(i)) for i in range(reader.chunk_count))
        index = reader.index_bytes
    parts = {'file': size, 'header': header_bytes}
    for name, section, keys in HEADER_PARTS:
        parts[name] = header_bytes - stored_header_bytes(without(header, section, keys), version)
    parts.update({'prefix + trailer': container.fixed_bytes(version), 'index': index, 'chunk records': records,
                  'tile framing': framing})
    parts['payload'] = size - header_bytes - parts['prefix + trailer'] - index - records - framing
    return parts


def run(models, levels, sizes, scratch):
    rows = []
    for size in sizes:
        source = source_of(size)
        for model in models:
            for level in levels:
                out = os.path.join(scratch, f'{model}_{size}_q{level}.ehc')
                result = compress(source, out, model=model, quality=level, threads=1)
                parts = breakdown(out)
                parts['bpppb'] = parts['file'] * 8 / (size * size * CODED) if result.bpppb is None else result.bpppb
                rows.append((size, model, level, parts))
    return rows


def table(rows):
    names = ['file', 'header'] + [n for n, _s, _k in HEADER_PARTS] + \
            ['prefix + trailer', 'index', 'chunk records', 'tile framing', 'payload']
    lines = ['| size | model | q | ' + ' | '.join(names) + ' | overhead % | bpppb |', '|' + '---|' * (len(names) + 5)]
    for size, model, level, parts in rows:
        overhead = parts['file'] - parts['payload']
        lines.append(f'| {size} | {model} | {level} | ' + ' | '.join(str(parts[n]) for n in names) +
                     f' | {100 * overhead / parts["file"]:.1f} | {parts["bpppb"]:.4f} |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='rdnet')
    parser.add_argument('--levels', default='1,4,10')
    parser.add_argument('--sizes', default='32,128')
    parser.add_argument('--keep', action='store_true', help='keep the written files (their folder is printed)')
    args = parser.parse_args(argv)
    scratch = scratch_dir('header_overhead')
    try:
        rows = run(args.models.split(','), [int(v) for v in args.levels.split(',')],
                   [int(v) for v in args.sizes.split(',')], scratch)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.keep:
        print(f'files: {scratch}')
    print(f'machine: {machine()}; bytes per part (header parts: marginal deflated cost)')
    print(table(rows))


if __name__ == '__main__':
    main()

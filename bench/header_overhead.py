"""Where the bytes of a small .ehc file go: container framing, header (by part), tile framing and payload.

usage: python -m bench.header_overhead [--models rdnet] [--levels 1,4,10] [--sizes 32,128] [--keep]
       python -m bench.header_overhead --baseline DIR [--models rdnet] [--levels 1-10]
Inputs: a 32 x 32 training tile (enmap_potsdam_tile_96_32, never a held-out one) for size 32, the synthetic scene of
tools.synthetic (seed 0) for other sizes. Each file is written by the real codec. A header part's cost is what the
stored (deflated) header loses when the part is left out, so parts need not add up to the header exactly.
bpppb counts the whole file over the valid pixels and the HySpecNet bands.

--baseline DIR: the effect of this checkout's header on the held-out tiles, each its own file (a final measurement,
nothing is chosen from it): every tile and level is written by DIR/enmap_compress (an earlier checkout, as
bench.speed --baseline takes it) and by this checkout; their chunks must be identical or (when the tile framing
changed) decode to the same image bit for bit, so PSNR is the same too; the table gives the pooled rates of both
and the PSNR gain at equal rate (interpolated in log rate).
"""
import argparse
import copy
import math
import os
import shutil
import struct
import subprocess
import sys

import numpy as np

from bench.reporting import machine, scratch_dir
from bench.scenes import CODED, synthetic_scene
from enmap_compress.plugin.core import container, tilepayload
from enmap_compress.plugin.core.codec import compress, decompress
from enmap_compress.plugin.core.container import EhcReader
from enmap_compress.plugin.core.evaluate import measure
from enmap_compress.plugin.core.runtime import find_model
from enmap_compress.plugin.core.varint import read_uvarint
from training.shared_data import PROJECT_ROOT, potsdam_tiles

TRAINING_TILE = 'enmap_potsdam_tile_96_32'
RATES = (0.10, 0.15, 0.20, 0.30, 0.40, 0.60)
_WRITE = ('''import sys
from enmap_compress.plugin.core.codec import compress
for source, output, level in zip(sys.argv[2::3], sys.argv[3::3], sys.argv[4::3]):
    compress(source, output, model=sys.argv[1], quality=int(level), device="cpu", threads=1)
''')
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


def tile_framing(payload, learned):
    """(bytes of a tile payload before its sections, bytes of its latent stream's head and CRC when `learned`, a
    learned-prior stream): u8 version, u16 count, a u32 length per section, and the stream's 15-byte head and
    CRC-32; or compactly (tilepayload.COMPACT) a head byte and varint lengths, and a version byte and two varints."""
    if tilepayload.is_compact(payload):
        mask_length, pos = read_uvarint(payload, 1, 'payload')
        for _ in range((payload[0] & 7) + (payload[0] >> 3 & 1) - 2):
            pos = read_uvarint(payload, pos, 'payload')[1]
        latent = payload[pos + mask_length:]
        head = read_uvarint(latent, read_uvarint(latent, 1, 'latent')[1], 'latent')[1] if learned and latent else 0
        return pos, head
    framing = 3 + 4 * struct.unpack_from('<BH', payload)[1]
    has_latent = learned and struct.unpack_from('<I', payload, 7)[0] > 0
    return framing, 19 if has_latent else 0


def breakdown(path):
    """{part: bytes} of a written file."""
    size = os.path.getsize(path)
    with EhcReader(path) as reader:
        header, version = reader.header, reader.version
        header_bytes = stored_header_bytes(header, version)
        records = sum(reader.stored_size(i) - len(reader.read_chunk(i)) for i in range(reader.chunk_count))
        learned = find_model(header['codec']['model_id']).meta.entropy_model is not None
        framing, heads = np.sum([tile_framing(reader.read_chunk(i), learned) for i in range(reader.chunk_count)],
                                axis=0).tolist()
        index = reader.index_bytes
    parts = {'file': size, 'header': header_bytes}
    for name, section, keys in HEADER_PARTS:
        parts[name] = header_bytes - stored_header_bytes(without(header, section, keys), version)
    parts.update({'prefix + trailer': container.fixed_bytes(version), 'index': index, 'chunk records': records,
                  'tile framing': framing, 'stream heads': heads})
    parts['payload'] = size - header_bytes - parts['prefix + trailer'] - index - records - framing - heads
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
            ['prefix + trailer', 'index', 'chunk records', 'tile framing', 'stream heads', 'payload']
    lines = ['| size | model | q | ' + ' | '.join(names) + ' | overhead % | bpppb |', '|' + '---|' * (len(names) + 5)]
    for size, model, level, parts in rows:
        overhead = parts['file'] - parts['payload']
        lines.append(f'| {size} | {model} | {level} | ' + ' | '.join(str(parts[n]) for n in names) +
                     f' | {100 * overhead / parts["file"]:.1f} | {parts["bpppb"]:.4f} |')
    return '\n'.join(lines)


def write_with(checkout, model, jobs):
    """Write (source, output, level) jobs with `checkout`'s enmap_compress (None: this one) in a fresh process."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    if checkout:
        env['PYTHONPATH'] = os.pathsep.join([checkout, env.get('PYTHONPATH', '')]).rstrip(os.pathsep)
    arguments = [str(value) for job in jobs for value in job]
    subprocess.run([sys.executable, '-c', _WRITE, model, *arguments], check=True, env=env,
                   cwd=checkout or PROJECT_ROOT)


def chunks_of(path):
    with EhcReader(path) as reader:
        return [reader.read_chunk(i) for i in range(reader.chunk_count)]


def same_image(path, decoded):
    """Whether the .ehc file at `path` decodes to the values of the GeoTIFF `decoded`, bit for bit."""
    from osgeo import gdal

    decompress(path, path + '.tif', 'cpu')
    first, second = (gdal.Open(p).ReadAsArray() for p in (path + '.tif', decoded))
    return first.dtype == second.dtype and np.array_equal(first, second, equal_nan=first.dtype.kind == 'f')


def held_out_effect(baseline, model, levels, scratch):
    """Rows (level, bytes before, bytes after, bpppb before, bpppb after, PSNR) pooled over the held-out tiles."""
    tiles = potsdam_tiles(held_out=True)
    jobs = {tag: [(t, os.path.join(scratch, f'{tag}_{i}_q{q}.ehc'), q) for q in levels for i, t in enumerate(tiles)]
            for tag in ('before', 'after')}
    write_with(os.path.abspath(baseline), model, jobs['before'])
    write_with(None, model, jobs['after'])
    rows = []
    for level in levels:
        pairs = [(b, a) for b, a in zip(jobs['before'], jobs['after']) if b[2] == level]
        sizes, pixels, squared = [0, 0], 0, 0.0
        for (source, before, _q), (_s, after, _q2) in pairs:
            decompress(after, after + '.tif', 'cpu')
            if chunks_of(before) != chunks_of(after) and not same_image(before, after + '.tif'):
                raise SystemExit(f'{before} and {after} decode differently: not a framing-only comparison')
            sizes = [sizes[0] + os.path.getsize(before), sizes[1] + os.path.getsize(after)]
            m = measure(source, after + '.tif')
            pixels += m['valid_pixels']
            squared += 10 ** (-m['psnr'] / 10) * m['valid_pixels']
        rows.append((level, *sizes, *(8 * n / (pixels * CODED) for n in sizes), -10 * math.log10(squared / pixels)))
    return rows


def psnr_at(points, rate):
    """PSNR at `rate`, linear in log rate between measured (rate, PSNR) points; None outside them."""
    logs, values = [math.log(r) for r, _p in points], [p for _r, p in points]
    return float(np.interp(math.log(rate), logs, values)) if logs[0] <= math.log(rate) <= logs[-1] else None


def effect_table(rows):
    lines = ['| q | bytes before | bytes after | bpppb before | bpppb after | change | PSNR dB |', '|' + '---|' * 7]
    for level, before, after, rate_before, rate_after, psnr in rows:
        lines.append(f'| {level} | {before} | {after} | {rate_before:.4f} | {rate_after:.4f} | '
                     f'{100 * (after / before - 1):+.1f} % | {psnr:.2f} |')
    curves = [[(row[3], row[5]) for row in rows], [(row[4], row[5]) for row in rows]]
    for rate in RATES:
        before, after = (psnr_at(curve, rate) for curve in curves)
        shown = f'{after - before:+.2f} dB ({before:.2f} -> {after:.2f})' if None not in (before, after) else 'outside'
        lines.append(f'at {rate:.2f} bpppb: {shown}')
    return '\n'.join(lines)


def levels_of(text):
    if '-' in text:
        first, last = text.split('-')
        return list(range(int(first), int(last) + 1))
    return [int(v) for v in text.split(',')]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', default='rdnet')
    parser.add_argument('--levels', default='1,4,10')
    parser.add_argument('--sizes', default='32,128')
    parser.add_argument('--keep', action='store_true', help='keep the written files (their folder is printed)')
    parser.add_argument('--baseline', help='an earlier checkout: DIR/enmap_compress (see above)')
    args = parser.parse_args(argv)
    scratch = scratch_dir('header_overhead')
    try:
        if args.baseline:
            rows = held_out_effect(args.baseline, args.models.split(',')[0], levels_of(args.levels), scratch)
        else:
            rows = run(args.models.split(','), levels_of(args.levels), levels_of(args.sizes), scratch)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    if args.keep:
        print(f'files: {scratch}')
    print(f'machine: {machine()}')
    if args.baseline:
        print(f'held-out tiles, each its own file, {args.models.split(",")[0]}; before: {args.baseline}, '
              'after: this checkout')
        print(effect_table(rows))
    else:
        print('bytes per part (header parts: marginal deflated cost)')
        print(table(rows))


if __name__ == '__main__':
    main()

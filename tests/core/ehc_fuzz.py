"""Seeded fuzzing of the .ehc decoder, run by test_fuzz_decoder.py in a subprocess under an address-space limit.

    python tests/core/ehc_fuzz.py WORK_DIR SEED LIMIT_BYTES BASE.ehc [BASE.ehc ...]

For each base file: random bit flips, byte runs, truncations and appended garbage of the raw bytes, then structured
edits with every checksum recomputed (ehc_forge): header, index and footer fields set to values of the wrong type
or out of range, keys removed, chunks dropped, duplicated, swapped, emptied, cut or garbled, zlib bombs in the
header, index, masks, prediction modes and entropy side info, deep JSON nesting. Every case is decompressed; it must
either fail with an EnmapCompressError and leave nothing in its folder, or succeed with an output identical to the
base file's decode. Prints one JSON line: counts, failures (at most 20), seconds, peak RSS.
"""
import hashlib
import json
import os
import resource
import shutil
import struct
import sys
import time
import zlib

import numpy as np
from ehc_forge import Chunk, EhcParts, join_payload, nested_json, read_index, split_payload, zlib_bomb

# type-invalid or out-of-range for every field they may land on (numbers are valid gains and offsets: skipped there)
HOSTILE = ('x', [], {}, [None], [[[]]], -(10 ** 30), 10 ** 30, 2 ** 64, True, float('nan'), float('-inf'))
FREE_NUMBERS = {'gains', 'offsets'}
CASES_PER_BASE = (10, 12, 8, 8)  # raw damage, header fields, index fields, chunk payload edits (each plus fixed cases)


def own_peak_kb():  # VmHWM: this process's peak; ru_maxrss of a child starts at its parent's (fork/vfork + exec)
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmHWM'))


def describe(path):
    """Pixels and metadata of a decoded GeoTIFF (what an identical decode must reproduce)."""
    from osgeo import gdal

    ds = gdal.Open(path)
    pixels = ds.ReadAsArray()
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    facts = [hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(), str(pixels.dtype),
             ds.GetGeoTransform(), ds.GetProjection(), ds.GetMetadata(),
             [(b.GetNoDataValue(), b.GetDescription(), b.GetMetadata(), b.GetScale(), b.GetOffset()) for b in bands]]
    ds = None
    return json.dumps(facts, default=str)


# --- raw damage ------------------------------------------------------------------------------------------------

def raw_cases(data, rng, count):
    for _ in range(count):
        flipped = bytearray(data)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
        yield 'bit flips', bytes(flipped)
    for _ in range(count // 2):
        start, size = int(rng.integers(0, len(data))), int(rng.integers(1, 65))
        fill = rng.choice([b'\x00', b'\xff', None])
        run = rng.bytes(size) if fill is None else fill * size
        yield 'byte run', data[:start] + run[:len(data) - start] + data[start + size:]
    for _ in range(count // 2):
        yield 'truncation', data[:int(rng.integers(0, len(data)))]
    for size in (1, 32, 1000):
        yield 'appended garbage', data + rng.bytes(size)


# --- structured edits, checksums recomputed ----------------------------------------------------------------------

def _leaves(obj, path=()):
    """Paths of every value in nested dicts (a list counts as one value)."""
    for key, value in obj.items():
        yield path + (key,)
        if isinstance(value, dict):
            yield from _leaves(value, path + (key,))


def _parent(obj, path):
    for key in path[:-1]:
        obj = obj[key]
    return obj


def header_cases(parts, rng, count):
    paths = list(_leaves(parts.header))
    for _ in range(count):
        path = paths[int(rng.integers(len(paths)))]
        edited = parts.copy()
        if rng.random() < 0.2:
            _parent(edited.header, path).pop(path[-1])
            yield 'header key removed', edited.build()
            continue
        value = HOSTILE[int(rng.integers(len(HOSTILE)))]
        if path[-1] in FREE_NUMBERS and not isinstance(value, (str, list, dict, bool)):
            value = 'x'
        _parent(edited.header, path)[path[-1]] = value
        yield 'header field', edited.build()
    yield 'header nesting', parts.build(header_json=nested_json(50_000))
    yield 'header bomb', parts.build(header_raw=zlib_bomb(64 << 20, version=parts.version))
    yield 'header not an object', parts.build(header_json=b'[1, 2, 3]')


def index_cases(parts, rng, count):
    keys = ('offset', 'length', 'crc32', 'x', 'y', 'w', 'h')
    for _ in range(count):
        chunk, key = int(rng.integers(len(parts.chunks))), keys[int(rng.integers(len(keys)))]
        choice = rng.random()

        def edit(index, chunk=chunk, key=key, choice=choice):
            entry = index['chunks'][chunk]
            target = entry if key in entry else entry['meta']
            if choice < 0.5:
                target[key] = target[key] + int(rng.choice([-17, -1, 1, 8, 4096]))
            else:
                target[key] = HOSTILE[int(rng.integers(len(HOSTILE)))]
        yield 'index field', parts.build(index_edit=edit)
    for value in ('x', -1, 10 ** 30, 1.5, [], 3):  # 3 valid pixels: the decoder does not use it, output identical
        edited = parts.copy()
        edited.footer = dict(edited.footer, valid_pixels=value)
        yield 'footer field', edited.build()
    yield 'index nesting', parts.build(index_json=nested_json(50_000))
    yield 'index bomb', parts.build(index_raw=zlib_bomb(3 << 30, version=parts.version))
    yield 'index chunks not a list', parts.build(index_edit=lambda index: index.update(chunks={}))




def _with_chunk(parts, index, payload):
    edited = parts.copy()
    edited.chunks[index] = Chunk(edited.chunks[index].meta, payload)
    return edited.build()


def _entropy_side_bomb(stream):
    """An entropy stream whose zlib side info inflates to 64 MB (its own CRC recomputed, as a crafted file would)."""
    head = struct.Struct('<2sBBIIIII')
    magic, version, _flags, channels, samples, side, words, raw = head.unpack_from(stream, 0)
    bomb = zlib_bomb(64 << 20)
    body = head.pack(magic, version, 1, channels, samples, len(bomb), words, raw) + bomb + \
        stream[head.size + side:len(stream) - 4]
    return body + struct.pack('<I', zlib.crc32(body))


def chunk_cases(parts, rng, count, records):
    chunks = parts.chunks
    for name, edit in (('chunk dropped', lambda c: c.pop(int(rng.integers(len(c))))),
                       ('chunk duplicated', lambda c: c.insert(0, c[int(rng.integers(len(c)))])),
                       ('chunk emptied', lambda c: c.__setitem__(1, Chunk(c[1].meta, b'')))):
        edited = parts.copy()
        edit(edited.chunks)
        yield name, edited.build()
    if records:  # the stored records swapped: each records its own tile, so the index no longer matches
        edited = parts.copy()
        data = parts.build()
        offsets = _stored_spans(parts)
        edited.chunks[0].record = data[slice(*offsets[2])]
        edited.chunks[2].record = data[slice(*offsets[0])]
        yield 'chunks swapped', edited.build()
    # a payload of a tile of another size in this tile's place (not an empty tile's: that one fits any tile, and
    # only a chunk record, not its payload, says where a chunk belongs)
    sizes = [(c.meta['w'], c.meta['h']) for c in chunks]
    coded = [i for i, c in enumerate(chunks) if split_payload(c.payload)[1][0] != b'\x00']
    pairs = [(i, j) for i in coded for j in coded if sizes[i] != sizes[j]]
    if pairs:
        i, j = pairs[int(rng.integers(len(pairs)))]
        yield 'payload of another tile size', _with_chunk(parts, i, chunks[j].payload)
    for _ in range(count):
        index = int(rng.integers(len(chunks)))
        payload = bytearray(chunks[index].payload)
        kind = int(rng.integers(4))
        if kind == 0:
            for pos in rng.integers(0, len(payload), rng.integers(1, 4)):
                payload[pos] ^= 1 << int(rng.integers(0, 8))
            yield 'payload bit flips', _with_chunk(parts, index, bytes(payload))
        elif kind == 1:
            yield 'payload cut', _with_chunk(parts, index, bytes(payload[:int(rng.integers(len(payload)))]))
        elif kind == 2:
            yield 'payload extended', _with_chunk(parts, index, bytes(payload) + rng.bytes(int(rng.integers(1, 64))))
        else:
            start = int(rng.integers(len(payload)))
            payload[start:start + 8] = rng.bytes(8)
            yield 'payload byte run', _with_chunk(parts, index, bytes(payload))
    version, sections = split_payload(chunks[0].payload)
    bomb = zlib_bomb(64 << 20)
    yield 'mask bomb', _with_chunk(parts, 0, join_payload(version, [b'\x02' + bomb] + sections[1:]))
    latent = sections[1]
    if latent[:2] != b'EP':  # a predicted stream: u16 modes length, zlib modes, entropy stream
        (length,) = struct.unpack_from('<H', latent, 0)
        modes = struct.pack('<H', 60000) + bomb[:60000] + latent[2 + length:]
        yield 'prediction modes bomb', _with_chunk(parts, 0, join_payload(version, [sections[0], modes] + sections[2:]))
        side = latent[:2 + length] + _entropy_side_bomb(latent[2 + length:])
        yield 'entropy side info bomb', _with_chunk(parts, 0, join_payload(version, [sections[0], side] + sections[2:]))
    yield 'sections doubled', _with_chunk(parts, 0, join_payload(version, sections + sections))


def _stored_spans(parts):
    """(start, end) of each stored chunk in parts.build()."""
    data = parts.build()
    index = read_index(data, parts.version, parts.header)
    return [(e['offset'], e['offset'] + e['length']) for e in index['chunks']]


def all_cases(path, rng, raw_count, header_count, index_count, chunk_count):
    data = open(path, 'rb').read()
    parts = EhcParts.read(path)
    yield from raw_cases(data, rng, raw_count)
    yield from header_cases(parts, rng, header_count)
    yield from index_cases(parts, rng, index_count)
    yield from chunk_cases(parts, rng, chunk_count, tuple(parts.version) >= (1, 1))


# --- running -------------------------------------------------------------------------------------------------

def run_case(decompress, error_type, data, folder, reference):
    """'refused', 'identical' or a failure text."""
    os.makedirs(folder)
    path, out = os.path.join(folder, 'case.ehc'), os.path.join(folder, 'case.tif')
    with open(path, 'wb') as handle:
        handle.write(data)
    try:
        decompress(path, out, 'cpu', threads=1)
    except error_type:
        left = sorted(set(os.listdir(folder)) - {'case.ehc'})
        return 'refused' if not left else f'left {left} behind'
    except BaseException as exc:  # the finding: anything but a clean error
        return f'{type(exc).__name__}: {str(exc)[:200]}'
    same = describe(out) == reference
    return 'identical' if same else 'decoded to a different image'


def main(argv):
    work, seed, limit, bases = argv[0], int(argv[1]), int(argv[2]), argv[3:]
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from enmap_compress.plugin.core.codec import decompress
    from enmap_compress.plugin.core.errors import EnmapCompressError

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    counts, outcomes, failures = {}, {}, []
    for number, base in enumerate(bases):
        reference_out = os.path.join(work, f'reference{number}.tif')
        decompress(base, reference_out, 'cpu', threads=1)
        reference = describe(reference_out)
        for case, (kind, data) in enumerate(all_cases(base, rng, *CASES_PER_BASE)):
            folder = os.path.join(work, f'b{number}c{case}')
            result = run_case(decompress, EnmapCompressError, data, folder, reference)
            shutil.rmtree(folder)
            counts[kind] = counts.get(kind, 0) + 1
            outcome = result if result in ('refused', 'identical') else 'failed'
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == 'failed' and len(failures) < 20:
                failures.append(f'{os.path.basename(base)} case {case} ({kind}): {result}')
    print(json.dumps({'cases': sum(counts.values()), 'kinds': counts, 'outcomes': outcomes, 'failures': failures,
                      'seconds': round(time.perf_counter() - started, 1),
                      'peak_rss_mb': round(own_peak_kb() / 1024)}))


if __name__ == '__main__':
    main(sys.argv[1:])

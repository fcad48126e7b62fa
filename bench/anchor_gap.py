"""Why rdnet's margin over PCA + JPEG 2000 is smaller on the 96 x 32 mosaic than on the tiles (issue #14): two
measurements on the training side only (the nine training tiles and their three 96 x 32 mosaics).

usage: python -m bench.anchor_gap [--parts allocation,contexts,shape,offsets]

- allocation: the anchor (bench.pca_jpeg2000: the training tiles' KLT, one OpenJPEG codestream per file) on each
  training tile at equal target rates, as the protocol codes the held-out tiles, against one rate-distortion optimal
  allocation over the tiles (for each lambda every tile takes its point of least squared error + lambda x bits over
  K and target), and on the three training mosaics. Whatever the mosaic gains beyond the optimal allocation is not
  allocation (rdnet's fixed step already allocates so) but the codestream's per-file cost and its wavelet crossing
  what were tile borders.
- contexts: rdnet's detail symbols (Haar levels 1-3) on the training tiles at pairs of quality levels, ideal code
  lengths under the context coder's own classes with the deltas fitted to these data; the same with a second
  context of BUCKETS quantile buckets (the block's parent-level activity averaged over all components, or the four
  neighbouring blocks' of the same component), and under the empirical distribution of each context (an optimistic
  bound on any table shape). Percentages are of the real latent bytes.
- shape: the same symbols with a second table parameter per (level, class), its own dead zone (table_shape).
- offsets: what restoring each quantiser bin at its centroid would save (reconstruction_offsets).
"""
import argparse
import math
import os
import shutil
import sys

import numpy as np

from bench import pca_jpeg2000
from bench.reporting import scratch_dir
from bench.scenes import CODED, Pool, load_scene, write_mosaic
from enmap_compress.plugin.core import context_coder
from enmap_compress.plugin.core.latent import laplace_bits
from training.shared_data import potsdam_tiles

KS = (8, 12, 16, 24, 32)  # the anchor's K at these rates on the training tiles
TARGETS = np.geomspace(0.05, 1.0, 16)
RATES = (0.10, 0.15, 0.20, 0.30, 0.40, 0.60)
BUCKETS = 5
QUALITY_PAIRS = ((2, 3), (5, 6), (8, 9))
SHAPE_LEVELS = (2, 4, 6, 8)
EXTRA_DEADZONES = [-0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4]  # steps added to a table's dead zone


# --- allocation ------------------------------------------------------------------------------------------------

def _point(scenes, mean, basis, k, target, folder):
    pool = Pool()
    for scene in scenes:
        size, reconstruction = pca_jpeg2000.roundtrip(scene, mean, basis, k, target, folder)
        pool.add(size, scene, reconstruction, scene.keep)
    return pool


def _rate_psnr(pools):
    bits = 8 * sum(p.bytes for p in pools)
    return bits / (sum(p.pixels for p in pools) * CODED), -10 * math.log10(sum(p.sq for p in pools) /
                                                                          sum(p.samples for p in pools))


def _at(points, rate):
    """PSNR at `rate` on a curve's points, linear in log rate (NaN outside them)."""
    points = sorted(points)
    for (r0, p0), (r1, p1) in zip(points, points[1:]):
        if r0 <= rate <= r1 and r1 > r0:
            return p0 + (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0)) * (p1 - p0)
    return float('nan')


def _best(curves, rate):
    """The best K's PSNR at `rate` (as bench.pca_jpeg2000.best_k_table chooses K)."""
    return max((_at(curve, rate) for curve in curves), key=lambda p: -math.inf if math.isnan(p) else p)


def allocation(folder):
    tiles = potsdam_tiles(held_out=False)
    mean, basis = pca_jpeg2000.fit_klt(tiles)
    scenes = [load_scene(p) for p in tiles]
    per_tile = [{k: [_point([s], mean, basis, k, t, folder) for t in TARGETS] for k in KS} for s in scenes]
    equal = [[_rate_psnr([points[k][i] for points in per_tile]) for i in range(len(TARGETS))] for k in KS]
    every = [[p for k in KS for p in points[k]] for points in per_tile]  # a tile's points over K and target
    optimal = [_rate_psnr([min(points, key=lambda p: p.sq + lam * 8 * p.bytes) for points in every])
               for lam in np.geomspace(1e-6, 1e-1, 400)]
    mosaics = [load_scene(write_mosaic(tiles[i:i + 3], os.path.join(folder, f'row{i}.tif'))) for i in (0, 3, 6)]
    joint = [[_rate_psnr([_point(mosaics, mean, basis, k, t, folder)]) for t in TARGETS] for k in KS]
    lines = ['| bpppb | tiles, equal rate per file dB | tiles, optimal allocation dB | gain | 3 mosaics dB | mosaics '
             'over the optimal allocation |', '|---|---|---|---|---|---|']
    for rate in RATES:
        a, b, c = _best(equal, rate), _at(optimal, rate), _best(joint, rate)
        lines.append(f'| {rate:.2f} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {c:.2f} | {c - b:+.2f} |')
    return lines


# --- contexts --------------------------------------------------------------------------------------------------

def _parent_activity(coder, level, sym, coded, codes, grid):
    """(K, cells) the context coder's normalised parent activity of `level` (NaN where no coded parent row)."""
    activity = np.full((coder.components, sym.shape[2]), np.nan)
    if level == 1:
        ks = np.flatnonzero(coded[:, 0] & coded[:, coder.level_rows[1]].any(axis=1))
        ll = np.pad(sym[ks, 0].reshape(ks.size, *grid).astype(np.int64), ((0, 0), (1, 1), (1, 1)), mode='edge')
        values = (np.abs(ll[:, 1:-1, 2:] - ll[:, 1:-1, :-2]) + np.abs(ll[:, 2:, 1:-1] - ll[:, :-2, 1:-1]))
        values, weight = values.reshape(ks.size, -1), 0.5 * coder._weights(coded, codes, 1)[ks]
    else:
        rows = coder.level_rows[level - 1]
        ks = np.flatnonzero(coded[:, rows].any(axis=1) & coded[:, coder.level_rows[level]].any(axis=1))
        values, weight = np.abs(sym[ks, rows]).sum(axis=1), coder._weights(coded, codes, level - 1)[ks]
    activity[ks] = values * weight[:, None]
    return activity


def _second_contexts(activity, grid):
    """{name: (K, cells)} the extra features: all components' mean activity, the four neighbouring blocks'."""
    known = np.isfinite(activity)
    across = np.where(known, activity, 0).sum(axis=0) / np.maximum(known.sum(axis=0), 1)
    own = np.pad(np.nan_to_num(activity).reshape(activity.shape[0], *grid), ((0, 0), (1, 1), (1, 1)), mode='edge')
    around = (own[:, 1:-1, 2:] + own[:, 1:-1, :-2] + own[:, 2:, 1:-1] + own[:, :-2, 1:-1]) / 4
    return {'components': np.broadcast_to(across, activity.shape), 'neighbours': around.reshape(activity.shape)}


def _symbols(meta, items, quality):
    """({level: {feature: array}}, real latent bytes, dead zone) of the detail symbols of `items` at `quality`."""
    out = {level: {key: [] for key in ('class', 'code', 'size', 'components', 'neighbours')} for level in (1, 2, 3)}
    latent_bytes = 0
    coder = context_coder.ContextLatentCoder(meta.level(quality), meta.entropy_model)
    for latent, geometry in items:
        latent_bytes += len(coder.encode(latent.copy(), geometry)[1])
        sym, coded, codes, occupied, classes = coder.analyse(latent.copy(), geometry)[5]
        cells, grid = np.flatnonzero(occupied), geometry.grid.shape
        for level in (1, 2, 3):
            rows = coder.level_rows[level]
            ks, js = np.nonzero(coded[:, rows])
            extra = _second_contexts(_parent_activity(coder, level, sym, coded, codes, grid), grid)
            record = out[level]
            record['class'].append(classes[level][ks][:, cells].ravel())
            record['code'].append(np.repeat(codes[ks, js + rows.start] + 128, cells.size))
            record['size'].append(np.abs(sym[ks, js + rows.start][:, cells]).ravel().astype(np.int64))
            for name, values in extra.items():
                record[name].append(values[ks][:, cells].ravel())
    return ({level: {k: np.concatenate(v) for k, v in record.items()} for level, record in out.items()}, latent_bytes,
            coder.deadzone)


def _class_bits(key, size, deadzone):
    """(classes, candidate deltas) ideal bits of the symbols of each class (key // 256) under the dead-zone Laplace
    of scale 2 ** ((row code + delta) / 4) (key % 256: row code + 128) for each of the context coder's deltas."""
    beta = np.exp2((np.arange(256)[None, :] - 128 + context_coder.candidate_deltas()[:, None]) / 4.0)
    groups = int(key.max()) // 256 + 1 if key.size else 0
    counts = [np.bincount(key, weights=w, minlength=groups * 256).reshape(groups, 256)
              for w in (size == 0, size > 0, np.maximum(size - 1, 0))]
    bits = np.zeros((groups, beta.shape[0]))
    for group, (zeros, nonzeros, excess) in enumerate(zip(*counts)):
        if zeros.sum() + nonzeros.sum():
            bits[group] = np.nan_to_num(laplace_bits(zeros[None], nonzeros[None], excess[None], beta,
                                                     deadzone)).sum(axis=1)
    return bits


def _laplace_bits(key, size, deadzone):
    """Least ideal bits of the symbols when each class takes its best delta (_class_bits)."""
    return float(_class_bits(key, size, deadzone).min(axis=1).sum())


def _empirical_bits(key, size):
    """Bits under each key's own magnitude histogram (sizes above 63 pooled) plus a sign bit per nonzero."""
    joint = key * 64 + np.minimum(size, 63)
    counts = np.bincount(joint, minlength=(key.max() + 1) * 64).reshape(-1, 64)
    share = np.where(counts > 0, counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), 1.0)
    return float(-(counts * np.log2(share)).sum() + (size > 0).sum())


def contexts():
    from bench.latent_context import latents

    meta, items = latents('train')
    lines = ['| quality levels | latent B | detail, own classes B | + all components | + neighbours | '
             'empirical per class |', '|---|---|---|---|---|---|']
    for pair in QUALITY_PAIRS:
        totals = {'own': 0.0, 'components': 0.0, 'neighbours': 0.0, 'empirical': 0.0}
        latent_bytes = 0
        for records, size, deadzone in (_symbols(meta, items, quality) for quality in pair):
            latent_bytes += size
            _add_totals(totals, records, deadzone)
        shares = {name: f'{totals[name] / 8:.0f} ({100 * (totals[name] - totals["own"]) / (8 * latent_bytes):+.2f} %)'
                  for name in ('components', 'neighbours', 'empirical')}
        lines.append(f'| q{pair[0]} + q{pair[1]} | {latent_bytes} | {totals["own"] / 8:.0f} | {shares["components"]} '
                     f'| {shares["neighbours"]} | {shares["empirical"]} |')
    return lines


def _add_totals(totals, records, deadzone):
    """Add the ideal bits of one quality level's records to `totals` under each context and the bound."""
    for record in records.values():
        key = record['class'] * 256 + record['code']
        totals['own'] += _laplace_bits(key, record['size'], deadzone)
        totals['empirical'] += _empirical_bits(key, record['size'])
        for name in ('components', 'neighbours'):
            edges = np.unique(np.quantile(record[name], np.linspace(0, 1, BUCKETS + 1)[1:-1]))
            bucket = np.searchsorted(edges, record[name])
            totals[name] += _laplace_bits((record['class'] * (len(edges) + 1) + bucket) * 256 + record['code'],
                                          record['size'], deadzone)


def table_shape():
    """The context coder's tables have one free parameter per class (the delta of its scale); a second one, the
    table's own dead zone d + e per (Haar level, class), each class at its best (delta, e) in-sample: percent of the
    real latent bytes it would save (an upper bound: the e would be fitted, or sent)."""
    from bench.latent_context import latents

    meta, items = latents('train')
    lines = ['| quality | latent B | own classes B | with a dead zone per class |', '|---|---|---|---|']
    for quality in SHAPE_LEVELS:
        records, latent_bytes, deadzone = _symbols(meta, items, quality)
        own = shaped = 0.0
        for record in records.values():
            key = record['class'] * 256 + record['code']
            bits = np.stack([_class_bits(key, record['size'], deadzone + e) for e in EXTRA_DEADZONES])
            own += bits[EXTRA_DEADZONES.index(0.0)].min(axis=1).sum()
            shaped += bits.min(axis=2).min(axis=0).sum()
        share = 100 * (shaped - own) / (8 * latent_bytes)
        lines.append(f'| q{quality} | {latent_bytes} | {own / 8:.0f} | {share:+.2f} % |')
    return lines


def reconstruction_offsets():
    """A decoder restores a symbol q as q steps; restoring each (LL or Haar level, |q| = 1, 2, >= 3) bin at its
    centroid instead (one offset per bin, fitted in-sample on the unquantised latent) would save this share of the
    latent's squared error (in the learned coordinates; an upper bound for offsets fixed in the model or sent)."""
    from bench.latent_context import latents

    meta, items = latents('train')
    lines = ['| quality | latent squared error saved | offsets in steps (LL, level 1, 2, 3; abs(q) = 1 / 2 / >= 3) |',
             '|---|---|---|']
    for quality in SHAPE_LEVELS:
        coder = context_coder.ContextLatentCoder(meta.level(quality), meta.entropy_model)
        detail = {level: coder.level_rows[level] for level in (1, 2, 3)}
        sums, total = {}, 0.0
        for latent, geometry in items:
            symbols = coder.encode(latent.copy(), geometry)[0]
            scaled = latent / coder.step
            total += float(((scaled - symbols) ** 2).sum())
            ll = np.ones(symbols.shape[0], bool)
            for rows in detail.values():
                ll[rows] = False
            for level, rows in [('LL', ll)] + list(detail.items()):
                size, excess = np.abs(symbols[rows]), np.abs(scaled[rows]) - np.abs(symbols[rows])
                for bin_ in (1, 2, 3):
                    chosen = size == bin_ if bin_ < 3 else size >= 3
                    count, summed = sums.get((level, bin_), (0, 0.0))
                    sums[(level, bin_)] = (count + int(chosen.sum()), summed + float(excess[chosen].sum()))
        saved = sum(s * s / n for n, s in sums.values() if n)
        shown = ', '.join(' / '.join(f'{sums[(level, b)][1] / max(1, sums[(level, b)][0]):+.2f}' for b in (1, 2, 3))
                          for level in ('LL', 1, 2, 3))
        lines.append(f'| q{quality} | {100 * saved / total:.2f} % | {shown} |')
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--parts', default='allocation,contexts')
    args = parser.parse_args(argv)
    parts = args.parts.split(',')
    if 'allocation' in parts:
        folder = scratch_dir('anchor_gap')
        try:
            print('\n'.join(allocation(folder)), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if 'contexts' in parts:
        print('\n'.join(contexts()), flush=True)
    if 'shape' in parts:
        print('\n'.join(table_shape()), flush=True)
    if 'offsets' in parts:
        print('\n'.join(reconstruction_offsets()), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

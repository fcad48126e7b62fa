"""How much a decoder-side filter across rdnet's block borders could gain (issue #14's mosaic margin).

usage: python -m bench.postfilter_bound [--levels 2,3,4,6] [--components 4,8,16,32] [--radius 1]

rdnet's 8 x 8 block synthesis has no support beyond a block; a post-filter on the decoded component images would
give it some without a new transform. This measures the best such linear filter: for each of the first L
components, a (2 radius + 1)^2 spatial filter on its decoded image (the block synthesis of its dequantised
coefficients), its correction mapped to the bands by rdnet's spectral map, the taps fitted by least squares on the
band-space error. The nine training tiles only (held-out tiles never), each coded by the real context coder at
each quality: `in-sample` fits and scores the taps on all nine (an upper bound for taps sent in each file, before
their cost), `leave-one-out` fits them on eight and scores the ninth (taps fixed in the model). Gains are in dB of
the mean squared error on [0, 1] reflectance, at the latent's own rate (bpppb of its bytes alone).
"""
import argparse
import os
import sys

import numpy as np

from bench.latent_context import cubes_of
from enmap_compress.plugin.core.latent_basis import BasisContextCoder
from enmap_compress.plugin.core.runtime import OnnxRunner, find_model
from enmap_compress.plugin.core.synthesis import FACTOR, FoldedSynthesis
from enmap_compress.plugin.core.transforms import make_transform
from training.shared_data import PROJECT_ROOT


class Decoded:
    """A coded training tile: its original x (bands, h, w), reconstruction x_hat, component images (K, h, w) and
    latent bytes, all in float64."""

    def __init__(self, x, x_hat, images, nbytes):
        self.x, self.x_hat, self.images, self.nbytes = x, x_hat, images, nbytes


def decoded_tiles(level):
    """The nine training tiles coded at quality `level` and decoded by the folded synthesis' weights (the graph's
    reconstruction to float rounding)."""
    package = find_model(os.path.join(PROJECT_ROOT, 'models', 'rdnet'))
    transform = make_transform(OnnxRunner(package, 'cpu', 1), package.meta)
    with open(package.decoder_path, 'rb') as handle:
        folded = FoldedSynthesis.of_decoder(handle.read())
    matrix, bias = folded.matrix.astype(np.float64), folded.bias.reshape(-1).astype(np.float64)
    basis = folded.basis.astype(np.float64)  # (coefficients, pixels of a block)
    out = []
    for cube, valid in cubes_of('train'):
        kept = (slice(0, valid.shape[0]), slice(0, valid.shape[1]))
        geometry = transform.latent_geometry(valid, kept)
        coder = BasisContextCoder(package.meta.level(level), package.meta.entropy_model)
        symbols, data = coder.encode(transform.encode(cube, valid, kept).copy(), geometry)
        rows, columns = geometry.grid.shape
        latent = coder.dequantise(symbols).reshape(matrix.shape[1], FACTOR * FACTOR, rows, columns)
        blocks = np.einsum('jp,kjrc->kprc', basis, latent.astype(np.float64))
        images = blocks.reshape(-1, FACTOR, FACTOR, rows, columns).transpose(0, 3, 1, 4, 2).reshape(
            len(latent), rows * FACTOR, columns * FACTOR)
        x_hat = np.einsum('bk,khw->bhw', matrix, images) + bias[:, None, None]
        out.append(Decoded(cube.astype(np.float64), x_hat, images, len(data)))
    return out, matrix


def shifted(images, radius):
    """(K, taps, h, w): each image shifted by every offset within `radius` (edges repeated)."""
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)), mode='edge')
    h, w = images.shape[1:]
    return np.stack([padded[:, radius + dy:radius + dy + h, radius + dx:radius + dx + w]
                     for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)], axis=1)


def normal_equations(tiles, matrix, live, radius):
    """(G, r) of the least-squares taps: G over (component, tap) pairs, r their products with the error."""
    spectral = matrix[:, live]
    cross = spectral.T @ spectral
    taps = (2 * radius + 1) ** 2
    gram, rhs = np.zeros((live.size * taps,) * 2), np.zeros(live.size * taps)
    for tile in tiles:
        features = shifted(tile.images[live], radius).reshape(live.size * taps, -1)
        projected = spectral.T @ (tile.x - tile.x_hat).reshape(len(tile.x), -1)
        gram += (features @ features.T) * np.kron(cross, np.ones((taps, taps)))
        rhs += (features.reshape(live.size, taps, -1) * projected[:, None, :]).sum(axis=2).ravel()
    return gram, rhs


def mse(tiles, matrix, live=None, taps=None, radius=1):
    total = count = 0.0
    for tile in tiles:
        x_hat = tile.x_hat
        if taps is not None:
            correction = np.einsum('lt,lthw->lhw', taps.reshape(live.size, -1), shifted(tile.images[live], radius))
            x_hat = x_hat + np.einsum('bl,lhw->bhw', matrix[:, live], correction)
        total += float(((tile.x - x_hat) ** 2).sum())
        count += tile.x.size
    return total / count


def fitted(tiles, matrix, live, radius):
    gram, rhs = normal_equations(tiles, matrix, live, radius)
    return np.linalg.solve(gram + 1e-9 * np.trace(gram) / len(gram) * np.eye(len(gram)), rhs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--levels', default='2,3,4,6')
    parser.add_argument('--components', default='4,8,16,32')
    parser.add_argument('--radius', type=int, default=1)
    args = parser.parse_args(argv)
    print('| quality | latent bpppb | components filtered | in-sample dB | leave-one-out dB |')
    print('|---|---|---|---|---|')
    for level in (int(v) for v in args.levels.split(',')):
        tiles, matrix = decoded_tiles(level)
        bpppb = 8.0 * sum(t.nbytes for t in tiles) / sum(t.x[0].size * len(t.x) for t in tiles)
        before = mse(tiles, matrix)
        for count in (int(v) for v in args.components.split(',')):
            live = np.arange(count)
            inside = mse(tiles, matrix, live, fitted(tiles, matrix, live, args.radius), args.radius)
            left_out = np.mean([mse([tile], matrix, live, fitted(tiles[:i] + tiles[i + 1:], matrix, live,
                                                                   args.radius), args.radius)
                                for i, tile in enumerate(tiles)])
            print(f'| {level} | {bpppb:.3f} | {count} | {10 * np.log10(before / inside):+.3f} | '
                  f'{10 * np.log10(before / left_out):+.3f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Train the PCA transform codec (a global KLT basis) on the shared real EnMAP tiles and write models/pca.

usage: python -m training.train_pca [--out models/pca]
The held-out Potsdam tiles (training/shared_data.py) are never used for fitting; the card reports the codec measured on
them through the real pipeline (quantisation, entropy coding, bytes on disk).
"""
import argparse
import os

import numpy as np

from enmap_compress.plugin.core.bands import DN_PEAK, N_HYSPECNET
from training.measure import card_table, measure_package
from training.model_package import hyspecnet_input, write_model_package
from training.shared_data import HELD_OUT_TILES, PROJECT_ROOT, load_spectra, potsdam_tiles

# Quantiser steps on the [0, 1] reflectance scale, geometric from coarse (1) to fine (10).
STEPS = [float(s) for s in np.geomspace(0.06, 0.0025, 10)]
OPSET = 13


def fit_pca(spectra):
    mean = spectra.mean(axis=0, dtype=np.float64)
    centred = spectra.astype(np.float64) - mean
    covariance = centred.T @ centred / max(1, len(centred) - 1)
    eigenvalues, vectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    basis = vectors[:, order]
    basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])  # deterministic signs
    return mean.astype(np.float32), basis.astype(np.float32), eigenvalues[order]


def linear_graph(name, mean, matrix, encode):
    """y = (x - mean) @ matrix for the encoder; x = y @ matrix + mean for the decoder."""
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = matrix.shape  # input width, output width
    inputs = [helper.make_tensor_value_info('x' if encode else 'y', TensorProto.FLOAT, ['n', rows])]
    outputs = [helper.make_tensor_value_info('y' if encode else 'x_hat', TensorProto.FLOAT, ['n', cols])]
    inits = [numpy_helper.from_array(mean, 'mean'), numpy_helper.from_array(matrix, 'matrix')]
    if encode:
        nodes = [helper.make_node('Sub', ['x', 'mean'], ['centred']),
                 helper.make_node('MatMul', ['centred', 'matrix'], ['y'])]
    else:
        nodes = [helper.make_node('MatMul', ['y', 'matrix'], ['projected']),
                 helper.make_node('Add', ['projected', 'mean'], ['x_hat'])]
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='enmap_compress')
    model.ir_version = 7  # readable by onnxruntime >= 1.8
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default=os.path.join(PROJECT_ROOT, 'models', 'pca'))
    args = parser.parse_args()
    train = potsdam_tiles(held_out=False)
    spectra = load_spectra(train)
    mean, basis, eigenvalues = fit_pca(spectra)
    energy = np.cumsum(eigenvalues) / eigenvalues.sum()
    print(f'{len(spectra)} training spectra from {len(train)} tiles; components for 99.9% energy: '
          f'{int(np.searchsorted(energy, 0.999)) + 1}')
    meta = {
        'id': 'pca', 'name': 'PCA transform coding', 'kind': 'pixel', **hyspecnet_input(),
        'latent_channels': int(basis.shape[1]),
        'quality_levels': [{'level': i + 1, 'step': s} for i, s in enumerate(STEPS)],
        'training': {'tiles': [os.path.basename(p) for p in train], 'held_out': list(HELD_OUT_TILES),
                     'spectra': int(len(spectra))},
        'format_version': 1,
    }
    encoder = linear_graph('pca_encoder', mean, basis, encode=True)
    decoder = linear_graph('pca_decoder', mean, np.ascontiguousarray(basis.T), encode=False)
    write_model_package(args.out, encoder, decoder, meta, '# pca — PCA transform coding (measuring...)\n')
    rows = measure_package(args.out, potsdam_tiles(held_out=True))
    card = CARD.format(bands=N_HYSPECNET, dn_peak=int(DN_PEAK), spectra=len(spectra),
                       tiles=', '.join(os.path.basename(p) for p in train), held_out=', '.join(HELD_OUT_TILES),
                       table=card_table(rows))
    with open(os.path.join(args.out, 'card.md'), 'w', encoding='utf-8') as handle:
        handle.write(card)
    print(card)


CARD = """# pca — PCA transform coding (global KLT basis, classical anchor)

**What it is.** A classical transform codec: each spectrum (the {bands} HySpecNet bands, DN clipped to 0..{dn_peak} and
scaled to 0..1) is projected on a global orthonormal PCA basis (all {bands} components kept, so any spectrum is
representable), the coefficients are quantised with one uniform step per quality level, and every tile's
coefficients are spatially predicted (per component the cheapest of no prediction, differences along rows or
down columns) and entropy-coded per component (constriction ANS; per component the cheapest of a constant,
a discretised Laplace/Gaussian or an empirical histogram model). The transform itself is pixel-wise.

**Training data.** {spectra} valid spectra of the real EnMAP L2A Potsdam tiles (DT0000001867, 2022-07-24):
{tiles}. Trained with `python -m training.train_pca` (closed form: mean and covariance, eigen-decomposition).

**Validation.** Held-out real tiles never used for fitting: {held_out}. Measured through the real pipeline:
rate from the bytes of the `.ehc` file (bpppb = file bits / (valid pixels x {bands})), PSNR and mean spectral
angle in the HySpecNet convention. The paper's float "bpppc" does not apply (no float latent here).

{table}

**Licence.** Weights derived from DLR EnMAP data (EnMAP-Box test data); code GPL-2.0-or-later.
"""


if __name__ == '__main__':
    main()

"""Write the rdnet model package (ONNX encoder/decoder with metadata, card) from a training run.

Per quality level, the quantiser's dead zone and the threshold (scale / step) below which a latent channel is not
coded are chosen on the training tiles (never the held-out ones) by the same rate + lambda * distortion criterion.
The card's table is measured through the real codec on the held-out tiles.
"""
import itertools
import json
import os

import numpy as np
import torch

from enmap_compress.plugin.core.bands import N_HYSPECNET
from training.export_onnx import MethodGraph, export_module
from training.measure import card_table, measure_package
from training.model_package import hyspecnet_input
from training.rdnet_objective import (
    STEP_RANGE,
    initial_net,
    lagrangian,
    load_net,
    psnr_at,
    quality_steps,
    validate,
)
from training.shared_data import HELD_OUT_TILES, potsdam_cubes, potsdam_tiles

DEADZONES = (0.0, 0.05, 0.1, 0.15, 0.2)
SKIP_BELOW = (0.1, 0.2, 0.3, 0.45, 0.6)


def export_graphs(net):
    """(encoder, decoder) ModelProtos; the convolution weights are frozen as constants, shared filters stored once."""
    x = torch.rand(1, net.src_channels, 32, 40)
    with torch.no_grad():
        y = net.compress(x)
    dynamic = {2: 'height', 3: 'width'}
    graphs = []
    for method, weights, example, names in (('compress', net.analysis_weights(), x, ('x', 'y')),
                                            ('decompress', net.synthesis_weights(), y, ('y', 'x_hat'))):
        constants = {k: v.detach().clone() for k, v in weights.items()}
        model = export_module(MethodGraph(net, method, constants).eval(), example, *names, (dynamic, dynamic))
        graphs.append(compact_repeated_weights(model, net.latent_channels))
    return graphs


def compact_repeated_weights(model, repeats):
    """Store each grouped-convolution weight (the shared block filters repeated for every channel) once, followed by
    a Tile node that repeats it: the package shrinks about `repeats` times. Handles initializers and Constant nodes."""
    from onnx import helper, numpy_helper

    graph = model.graph
    tensors = [(init.name, numpy_helper.to_array(init), init) for init in graph.initializer]
    tensors += [(node.output[0], numpy_helper.to_array(node.attribute[0].t), node) for node in graph.node
                if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value']
    for name, array, origin in tensors:
        if array.ndim != 4 or array.shape[0] % repeats or array.shape[0] == repeats:
            continue
        base = array[:array.shape[0] // repeats]
        if not np.array_equal(np.tile(base, (repeats, 1, 1, 1)), array):
            continue
        (graph.initializer if origin in graph.initializer else graph.node).remove(origin)
        graph.initializer.append(numpy_helper.from_array(base, name + '_shared'))
        graph.initializer.append(numpy_helper.from_array(np.array([repeats, 1, 1, 1], np.int64), name + '_repeats'))
        graph.node.insert(0, helper.make_node('Tile', [name + '_shared', name + '_repeats'], [name],
                                              name='tile_' + name.strip('/')))
    return model


def _quantise(y, deadzone):
    return torch.sign(y) * torch.floor(torch.abs(y) + 0.5 - deadzone)


def rd_cost(net, cubes, step, deadzone, offset, skip_below, latent=None):
    """(bits per sample, MSE) of the real quantiser on `cubes` at `step` (prior bits; the file adds a header).
    latent: net.compress(cubes) when the caller has it already."""
    with torch.no_grad():
        x = torch.from_numpy(cubes)
        y = (net.compress(x) if latent is None else latent) / step
        beta = net.scales()[None, :, None, None] / step
        coded = (beta >= skip_below).float()
        q = _quantise(y, deadzone) * coded
        y_hat = torch.sign(q) * torch.clamp(torch.abs(q) - offset, min=0)
        mse = float(((net.decompress(y_hat * step) - x) ** 2).mean())
        size = torch.abs(q)
        zero = -torch.expm1(-(0.5 + deadzone) / beta)
        other = 0.5 * torch.exp(-(size - 0.5 + deadzone) / beta) * -torch.expm1(-1.0 / beta)
        mass = torch.where(size == 0, zero, other)
        bits = float((-torch.log2(mass.clamp(min=2.0 ** -24)) * coded).sum()) / x.numel()
    return bits, mse


def choose_quantiser(net, cubes, steps, log=print):
    """Per quality step, the (dead zone, skip threshold) with the lowest R + lambda D on the training tiles."""
    with torch.no_grad():
        latent = net.compress(torch.from_numpy(cubes))
    chosen = []
    for step in steps:
        costs = []
        for deadzone, skip in itertools.product(DEADZONES, SKIP_BELOW):
            bits, mse = rd_cost(net, cubes, step, deadzone, 0.0, skip, latent)
            costs.append((bits + lagrangian(step) * mse, deadzone, skip))
        chosen.append(min(costs)[1:])
    log('quantiser chosen on the training tiles (dead zone, skip below) per quality: ' + ', '.join(
        f'q{i + 1} {d}/{k}' for i, (d, k) in enumerate(chosen)))
    return chosen


def cached_quantiser(run_dir, trained_steps, choose):
    """The quantiser choice for this checkpoint, from RUN_DIR/quantiser.json when it was made for it already."""
    path = os.path.join(run_dir, 'quantiser.json')
    if os.path.isfile(path):
        with open(path, encoding='utf-8') as handle:
            saved = json.load(handle)
        if saved.get('steps') == trained_steps and saved.get('per_level'):
            return [tuple(q) for q in saved['per_level']]
    chosen = [tuple(q) for q in choose()]
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump({'steps': trained_steps, 'per_level': [list(q) for q in chosen]}, handle)
    return chosen


def package_meta(net, steps, quantiser, training):
    """quantiser: one (dead zone, skip threshold) per step."""
    return {
        'id': 'rdnet', 'name': 'rdnet: learned spatio-spectral transform coder', 'kind': 'spatial',
        **hyspecnet_input(), 'latent_channels': int(np.prod(net.latent_dims)),
        'latent_dims': [int(np.prod(net.latent_dims))], 'spatial_factor': int(net.spatial_factor),
        'tile_size': 256, 'tile_overlap': 0,
        'quality_levels': [{'level': i + 1, 'step': float(s), 'deadzone': float(q[0]), 'skip_below': float(q[1])}
                           for i, (s, q) in enumerate(zip(steps, quantiser))],
        'entropy_model': {'family': 'laplace', 'reconstruction_offset': 0.0,
                          'scales': [float(f'{v:.6g}') for v in net.scales().detach().tolist()]},
        'architecture': type(net).__name__, 'training': training, 'format_version': 1,
    }


def training_effect(net, rates=(0.1, 0.2, 0.4, 0.6)):
    """What end-to-end training changed: held-out PSNR (prior bits, no file) of the untrained start and of `net`."""
    val_cubes = potsdam_cubes(held_out=True)
    start = initial_net(potsdam_cubes(held_out=False), net.latent_channels)
    before, after = (psnr_at(validate(n, val_cubes, quality_steps()), rates) for n in (start, net))
    return ', '.join(f'{r} bpppb {b:.2f} -> {a:.2f} dB' for r, b, a in zip(rates, before, after))


def package(run_dir, out, log=print):
    """Write models/rdnet-style package `out` (its folder name must be the id, rdnet) from RUN_DIR/last.pt."""
    from training.model_package import write_model_package

    net, trained_steps, trained_tied = load_net(run_dir)
    steps = quality_steps()
    quantiser = cached_quantiser(run_dir, trained_steps, lambda: choose_quantiser(
        net, potsdam_cubes(held_out=False), steps, log))
    training = {'tiles': [os.path.basename(p) for p in potsdam_tiles(held_out=False)],
                'held_out': list(HELD_OUT_TILES), 'steps': trained_steps,
                'step_range': list(STEP_RANGE)}
    meta = package_meta(net, steps, quantiser, training)
    encoder, decoder = export_graphs(net)
    write_model_package(out, encoder, decoder, meta, '# rdnet (measuring...)\n')
    rows = measure_package(out, potsdam_tiles(held_out=True))
    synthesis = ('the exact inverse of the analysis, in training too' if trained_tied else
                 'the exact inverse of the analysis (this checkpoint was trained with a free learned synthesis, which '
                 'capped the reconstruction at about 70 dB on the held-out tiles and 59 dB on a synthetic scene; '
                 'the inverse loses under 0.1 dB at low rates and reconstructs any input at a fine step)')
    card = CARD.format(training_effect=training_effect(net), synthesis=synthesis, tiles=', '.join(training['tiles']),
                       held_out=', '.join(HELD_OUT_TILES),
                       steps=trained_steps, step_range=f'{STEP_RANGE[0]} to {STEP_RANGE[1]}',
                       lam_range=f'{lagrangian(STEP_RANGE[0]):.0f} to {lagrangian(STEP_RANGE[1]):.3g}',
                       quantiser=', '.join(f'q{i + 1} {d}/{k}' for i, (d, k) in enumerate(quantiser)),
                       channels=net.latent_channels, bands=N_HYSPECNET,
                       table=card_table(rows),
                       params=sum(p.numel() for p in net.parameters()))
    with open(os.path.join(out, 'card.md'), 'w', encoding='utf-8') as handle:
        handle.write(card)
    log(card)
    return rows


CARD = """# rdnet — learned spatio-spectral transform coder (rate-distortion trained, default)

**What it is.** A transform codec trained end to end for rate + lambda x distortion. Analysis: a learned spectral
matrix ({bands} HySpecNet bands -> {channels} channels, initialised with the training tiles' PCA basis), then a learned
8 x 8 block transform of every channel (64 filters, stride 8, shared by all channels, initialised as the three-level
Haar wavelet of the block). Synthesis: {synthesis}. Latent: {channels} x 64 channels at 1/8 resolution. Entropy
model: a factorised zero-mean Laplace prior with one learned scale per latent channel; the codec builds fixed ANS
tables from it for each quality step, so files carry no per-tile statistics. {params} parameters. Tiles of 256 x 256
pixels are coded independently (decodable tile by tile); every graph operation is a plain or grouped convolution. On
data unlike the training tiles the encoder may give a latent row its own scale (a nearly free flag per row plus one
byte), when the prior fits badly or a row it would skip is worth coding. Speed (docs/benchmarks.md, full 1200 x 1200
x 224 tile, 2 CPU threads, quality 5): 87 MB/s encode, 94 MB/s decode, peak RSS 815 MB.

**Training.** `python -m training.train_rdnet RUN_DIR --steps {steps}` (seed 10587, Adam, CPU), then `python
-m training.train_rdnet RUN_DIR --package models/rdnet`. Data: the real EnMAP L2A Potsdam tiles (DT0000001867,
2022-07-24) {tiles}, with random flips and 90 degree rotations. Quantisation: additive uniform noise of one step,
the step drawn log-uniformly from {step_range} ([0, 1] reflectance units) with lambda = 6 / (ln 2 step^2)
({lam_range}): one variable-rate model serves all ten quality levels (the level sets the step). Chosen on the
training tiles afterwards, per quality level (dead zone in steps / channels with scale / step below this are not
coded): {quantiser}. What the end-to-end training changed over its start (PCA basis + Haar blocks + fitted prior),
estimated on the held-out tiles from the prior's bits (no file header): {training_effect}. Most of the gain over the
PCA codec comes from the spatial block transform, the learned prior (no per-tile statistics in the file) and the
rate-distortion dead zone; with 9 real 32 x 32 training tiles the training itself adds little, and longer training
or more data (HySpecNet-11k) is where more would come from.

**Validation.** Held-out real tiles never used for training or for any choice: {held_out}. Measured through the real
pipeline: rate from the bytes of the `.ehc` file (bpppb = file bits / (valid pixels x {bands}), 32 x 32 pixel files
including their ~0.33 KB of header, index and framing), PSNR and mean spectral angle in the HySpecNet convention.
The paper's float "bpppc" does not apply (rdnet is not a paper model).

{table}

Against the PCA codec trained on the same tiles, see docs/benchmarks.md (rdnet vs PCA at equal real rate).

**Licence.** Weights derived from DLR EnMAP data (EnMAP-Box test data); code GPL-2.0-or-later.
"""

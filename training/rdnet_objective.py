"""rdnet's training objective and model setup, shared by training (train_rdnet.py) and export (export_rdnet.py):
the quality steps, the rate-distortion trade-off of a step, the loss terms, the held-out estimate, the untrained
start and loading a run. Neither script imports the other's module-level code through this one."""
import math
import os

import numpy as np
import torch

from enmap_compress.plugin.core.bands import N_HYSPECNET
from training.nets.rdnet import RDNet
from training.train_pca import fit_pca

# Quantiser steps (latent units = [0, 1] reflectance): coarse (quality 1, ~0.05 bpppb) to fine (10, ~1 bpppb).
STEP_RANGE = (0.2, 0.0025)
DEFAULTS = {'channels': N_HYSPECNET}


def quality_steps(coarse=STEP_RANGE[0], fine=STEP_RANGE[1]):
    return [float(s) for s in np.geomspace(coarse, fine, 10)]


def lagrangian(step):
    """lambda for a uniform quantiser of this step: -dR/dD = 6 / (ln 2 * step^2) (R in bits, D the MSE)."""
    return 6.0 / (math.log(2.0) * step ** 2)


def loss_terms(net, x, steps, noise=True):
    """(bits per sample, MSE) per batch item; steps (B,) tensor."""
    s = steps[:, None, None, None]
    y = net.compress(x) / s
    y_hat = y + (torch.rand_like(y) - 0.5) if noise else torch.round(y)
    x_hat = net.decompress(y_hat * s)
    bits = net.rate_bits(y_hat, s) / x[0].numel()
    mse = ((x_hat - x) ** 2).flatten(1).mean(1)
    return bits, mse


def validate(net, val, steps, header_bits=5600.0):
    """Held-out estimate at the given steps: rounded latents, prior bits plus a file header per tile, PSNR."""
    rows = []
    with torch.no_grad():
        device = net.mean.device
        x = torch.from_numpy(val).to(device)
        for step in steps:
            bits, mse = loss_terms(net, x, torch.full((len(x),), step, device=device), noise=False)
            rate = float(bits.mean()) + header_bits / x[0].numel()
            rows.append((step, rate, -10 * math.log10(float(mse.mean()))))
    return rows


def psnr_at(rows, rates):
    """PSNR interpolated (linear in log rate) at the given rates from (step, rate, psnr) rows."""
    log_rate = np.log([r[1] for r in rows])
    order = np.argsort(log_rate)
    return [float(np.interp(np.log(r), log_rate[order], np.array([p for _, _, p in rows])[order])) for r in rates]


def initial_net(train_cubes, channels=N_HYSPECNET, device='cpu'):
    """The untrained start: PCA basis and mean of the training tiles, Haar blocks, prior fitted to that latent."""
    mean, basis, _ = fit_pca(train_cubes.transpose(0, 2, 3, 1).reshape(-1, N_HYSPECNET))
    net = RDNet(N_HYSPECNET, channels, basis=basis, mean=mean).to(device)
    with torch.no_grad():
        y = net.compress(torch.from_numpy(train_cubes).to(device))
        net.log_scales.copy_(torch.log(y.abs().mean(dim=(0, 2, 3)).clamp(min=1e-6)))
    return net


def load_net(run_dir):
    """(net, trained steps, trained with the tied inverse synthesis); the net always synthesises with the exact
    inverse of its analysis (a checkpoint trained with a free synthesis keeps that synthesis unused)."""
    state = torch.load(os.path.join(run_dir, 'last.pt'), map_location='cpu', weights_only=True)
    config = {**DEFAULTS, **state.get('config', {})}
    net = RDNet(N_HYSPECNET, config['channels'])
    net.load_state_dict(state['model'])
    return net.eval(), int(state['step']), bool(config.get('tied', False))

"""Train rdnet (training/nets/rdnet.py) end to end for rate + lambda * distortion, resumably, on CPU or GPU.

usage: python -m training.train_rdnet RUN_DIR [--steps N] [--lr LR] [--seed S] [--threads T] [--channels K]
                                      [--package models/rdnet]
Data: the real Potsdam training tiles (never the held-out ones, training/shared_data.py), with random flips and 90
degree rotations (the held-out tiles touch some training tiles, so no windows across tile borders).
Every `--log-every` steps RUN_DIR/last.pt (plain state dicts, loaded with weights_only=True) is written and a row
is appended to RUN_DIR/log.csv with the held-out estimate (prior bits + header, PSNR) at three quantiser steps.
Run again to resume. `--package` writes the ONNX package from RUN_DIR/last.pt, measured through the real codec.
"""
import argparse
import csv
import math
import os
import time

import numpy as np
import torch

from enmap_compress.plugin.core.bands import N_HYSPECNET
from training.rdnet_objective import (
    DEFAULTS,
    STEP_RANGE,
    initial_net,
    lagrangian,
    loss_terms,
    psnr_at,
    quality_steps,
    validate,
)
from training.shared_data import potsdam_cubes


def augment(batch, rng):
    """Random flips and 90 degree rotations of every sample (the statistics do not depend on orientation)."""
    out = []
    for cube in batch:
        cube = np.rot90(cube, int(rng.integers(4)), axes=(1, 2))
        if rng.integers(2):
            cube = cube[:, :, ::-1]
        out.append(np.ascontiguousarray(cube))
    return np.stack(out)


def train(run_dir, steps=3000, lr=2e-4, seed=10587, threads=2, channels=N_HYSPECNET, batch=9, log_every=250, log=print,
          cubes=None):
    """cubes: optional (train, validation) arrays (N, 202, H, W) instead of the Potsdam tiles (tests)."""
    torch.set_num_threads(threads)
    os.makedirs(run_dir, exist_ok=True)
    train_cubes, val_cubes = cubes if cubes is not None else (potsdam_cubes(False), potsdam_cubes(True))
    torch.manual_seed(seed)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    net = initial_net(train_cubes, channels, device)
    spectral = [net.mean, net.analysis_matrix, net.synthesis_matrix]
    others = [p for p in net.parameters() if all(p is not q for q in spectral)]
    optimizer = torch.optim.Adam([{'params': spectral, 'lr': lr * 0.05}, {'params': others, 'lr': lr}])
    done = 0
    checkpoint = os.path.join(run_dir, 'last.pt')
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        net.load_state_dict(state['model'])
        optimizer.load_state_dict(state['optimizer'])
        done = int(state['step'])
        log(f'resumed from step {done}')
    log_path = os.path.join(run_dir, 'log.csv')
    lo, hi = math.log(STEP_RANGE[1]), math.log(STEP_RANGE[0])
    val_steps = quality_steps()
    val_rates = (0.1, 0.2, 0.4, 0.6)
    started = time.perf_counter()
    if not done:
        log('initial (PCA + Haar) held-out PSNR at ' + ', '.join(
            f'{r} bpppb {p:.2f} dB' for r, p in zip(val_rates, psnr_at(validate(net, val_cubes, val_steps),
                                                                         val_rates))))
    while done < steps:
        rng = np.random.default_rng([seed, done])
        x = torch.from_numpy(augment(train_cubes[rng.integers(0, len(train_cubes), batch)], rng)).to(device)
        step_sizes = torch.from_numpy(np.exp(rng.uniform(lo, hi, batch))).float().to(device)
        bits, mse = loss_terms(net, x, step_sizes)
        lam = torch.tensor([lagrangian(float(s)) for s in step_sizes], device=device)
        loss = (bits + lam * mse).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        optimizer.step()
        done += 1
        if done % log_every == 0 or done == steps:
            curve = psnr_at(validate(net, val_cubes, val_steps), val_rates)
            torch.save({'model': net.state_dict(), 'optimizer': optimizer.state_dict(), 'step': done,
                        'config': {'channels': channels, 'tied': net.tied}}, checkpoint)
            new = not os.path.exists(log_path)
            with open(log_path, 'a', newline='') as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(['step', 'loss'] + [f'psnr_at_{r}' for r in val_rates] + ['seconds'])
                writer.writerow([done, round(loss.item(), 5)] + [round(p, 3) for p in curve]
                                + [round(time.perf_counter() - started, 1)])
            log(f'step {done} loss {loss.item():.4f} held-out PSNR at ' +
                ', '.join(f'{r} bpppb {p:.2f} dB' for r, p in zip(val_rates, curve)))
    return net


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('run_dir')
    parser.add_argument('--steps', type=int, default=3000)
    parser.add_argument('--lr', type=float, default=2e-4)
    parser.add_argument('--seed', type=int, default=10587)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--channels', type=int, default=DEFAULTS['channels'])
    parser.add_argument('--log-every', type=int, default=250)
    parser.add_argument('--package', metavar='MODEL_FOLDER', default=None,
                        help='write the ONNX model package from RUN_DIR/last.pt instead of training')
    args = parser.parse_args()
    if args.package:
        from training.export_rdnet import package

        package(args.run_dir, args.package, log=lambda m: print(m, flush=True))
        return
    train(args.run_dir, args.steps, args.lr, args.seed, args.threads, args.channels, log_every=args.log_every,
          log=lambda m: print(m, flush=True))


if __name__ == '__main__':
    main()

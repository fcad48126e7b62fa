"""Train one learned compressor on the shared data, resumably, with quantisation-aware fine-tuning.

usage: python -m training.train_model VARIANT RUN_DIR [--epochs N] [--steps S] [--batch B] [--lr LR]
                                      [--qat-from E] [--minutes M] [--patch P] [--seed S] [--threads T]
                                      [--mix REAL OTHER SYNTHETIC] [--init smart] [--freeze-bn]
                                      [--schedule cosine] [--warmup W] [--bf16] [--compact PATH]
       python -m training.train_model VARIANT RUN_DIR --package MODEL_FOLDER [--fp16] [--card-note TEXT]
Every epoch writes RUN_DIR/last.pt (plain state dicts of model and optimizer, the latent channel scales and the
epoch; loaded back with torch.load(weights_only=True)) and appends a row to RUN_DIR/log.csv. Run again to resume.
Loss: MSE in the HySpecNet [0, 1] view. From epoch --qat-from on, uniform noise of one quantiser step
(log-uniform between the finest and coarsest quality step, times the per-channel scale) is added to the latent,
so that rounding the latent (what the codec does) loses little.
Validation: the held-out real Potsdam tiles (training.shared_data.HELD_OUT_TILES), never trained on.
Spatial models: --mix weights the patch sources (real Potsdam training tiles, other sensors, synthetic mixtures);
--init smart starts from a data-dependent map (training/smart_init.py); --freeze-bn trains with the BatchNorm running
statistics fixed (3D-CAE: per-batch statistics of a few patches make training and inference disagree);
--schedule cosine decays the learning rate from --lr to 2% of it over all steps after --warmup linear steps.
The options of the first run are stored in last.pt and the model card; a resumed run uses those given again.
--compact PATH (training/checkpoints/<id>.pt, committed) is a small copy of the run that a later session resumes
from on another machine when RUN_DIR is empty (training/checkpoint.py: float16 weights, no Adam moments).
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch

from enmap_compress.plugin.core.bands import N_HYSPECNET
from training import datasets
from training.nets import build

# Quality steps in units of each latent channel's scale (the std of the latent on training data): level 1 coarse.
STEP_RANGE = (0.6, 0.02)


def quality_steps(coarse=STEP_RANGE[0], fine=STEP_RANGE[1]):
    return [float(s) for s in np.geomspace(coarse, fine, 10)]


def psnr(mse):
    return -10.0 * math.log10(max(mse, 1e-12))


class Data:
    """Batches for pixel (spectra) or spatial (patches) models; validation on the held-out Potsdam tiles."""

    def __init__(self, kind, seed, patch=32, source=None, mix=None):
        self.kind = kind
        self.patch = patch
        if source is not None:  # tests: an in-memory (N, 202) array or a (B, 202, P, P) array
            self.train = np.asarray(source, np.float32)
            self.val = self.train[:64]
            self.sampler = None
            return
        if kind == 'pixel':
            self.train = datasets.pixel_training_set(seed=seed)
        else:
            weights = dict(zip(('real_weight', 'other_weight', 'synthetic_weight'), mix)) if mix else {}
            self.sampler = datasets.PatchSampler(size=patch, seed=seed, **weights)
        from training.shared_data import potsdam_cubes

        cubes = potsdam_cubes(held_out=True)
        self.val = cubes if kind == 'spatial' else np.concatenate([c.reshape(len(c), -1).T for c in cubes])

    def batch(self, rng, size):
        if self.kind == 'pixel' or getattr(self, 'sampler', None) is None:
            return torch.from_numpy(self.train[rng.integers(0, len(self.train), size)])
        return torch.from_numpy(self.sampler.sample(rng, size))


def encode(net, x):
    return net.encode_pixels(x) if net.kind == 'pixel' else net.compress(x)


def decode(net, y):
    return net.decode_pixels(y) if net.kind == 'pixel' else net.decompress(y)


def latent_scales(net, data, rng, device, batches=8, size=None):
    """Per latent channel std over training batches (one value per flattened latent channel)."""
    size = size or (2048 if net.kind == 'pixel' else 4)
    values = []
    with torch.no_grad():
        for _ in range(batches):
            y = encode(net, data.batch(rng, size).to(device))
            if net.kind == 'pixel':
                values.append(y.transpose(0, 1))
            else:  # (B, *latent_dims, h, w) -> (prod(latent_dims), B*h*w)
                values.append(y.flatten(1, -3).transpose(0, 1).flatten(1))
    stacked = torch.cat(values, dim=1)
    return stacked.std(dim=1).clamp_min(1e-4)


def scale_view(net, y, scale):
    """The flat per-channel scale shaped to broadcast over y (3D-CAE: channels are (C, 51), C-major)."""
    if net.kind == 'pixel':
        return scale.view(1, -1)
    return scale.view(1, *y.shape[1:-2], 1, 1)


def set_mode(net, training, freeze_bn=False):
    """train()/eval(); with freeze_bn the BatchNorm layers stay in eval mode (running statistics) while training."""
    net.train(training)
    if training and freeze_bn:
        from training.smart_init import freeze_batchnorm

        freeze_batchnorm(net)


def learning_rate(base, step, total, schedule='const', warmup=0, rewarm_from=None, floor=0.02, rewarm=100):
    """The learning rate of global step `step` of `total` (a pure function of the step: resumable); after a resume
    from a compact checkpoint at step `rewarm_from` (fresh Adam moments) it ramps up again over `rewarm` steps."""
    factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if rewarm_from is not None:
        factor *= min(1.0, (step - rewarm_from + 1) / rewarm)
    if schedule == 'cosine':
        factor *= floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return base * factor


def smart_init(net, data, rng, log=print):
    """Data-dependent initialisation (training/smart_init.py) from the training data only; returns the start PSNR."""
    from training.smart_init import init_cae3d, init_sscnet

    if net.kind == 'pixel':
        raise ValueError('--init smart is implemented for the spatial models (sscnet, cae3d)')
    if data.sampler is not None:
        cubes = np.stack(data.sampler.real)
    else:
        cubes = np.asarray(data.train, np.float32)
    if type(net).__name__ == 'SpectralSignalsCompressorNetwork':
        start = init_sscnet(net, cubes, k=min(16, net.latent_channels // 2))
    else:
        batches = [data.batch(rng, 4) for _ in range(4)]
        start = init_cae3d(net, batches)
    log(f'smart init: training PSNR {start:.2f} dB at the start')
    return start


def evaluate(net, data, device, scale=None, step=None, freeze_bn=False):
    net.eval()
    with torch.no_grad():
        val = torch.from_numpy(data.val)
        sq, count = 0.0, 0
        chunk = 4096 if net.kind == 'pixel' else 1
        for i in range(0, len(val), chunk):
            x = val[i:i + chunk].to(device)
            y = encode(net, x)
            if step is not None:
                s = step * scale_view(net, y, scale)
                y = torch.round(y / s) * s
            x_hat = decode(net, y)
            sq += float(((x_hat - x) ** 2).sum())
            count += x.numel()
    set_mode(net, True, freeze_bn)
    return psnr(sq / count)


def train(variant, run_dir, epochs=20, steps=200, batch=256, lr=1e-3, qat_from=None, minutes=None, patch=32,
          seed=10587, threads=2, source=None, log=print, mix=None, init='default', freeze_bn=False,
          schedule='const', warmup=0, bf16=False, compact=None):
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    os.makedirs(run_dir, exist_ok=True)
    net = build(variant).to(device)
    qat_from = epochs // 2 if qat_from is None else qat_from
    data = Data(net.kind, seed, patch, source, mix)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    config = {'batch': batch, 'steps': steps, 'epochs': epochs, 'lr': lr, 'patch': patch, 'seed': seed,
              'mix': list(mix) if mix else 'default', 'init': init, 'freeze_bn': bool(freeze_bn),
              'schedule': schedule, 'warmup': warmup, 'qat_from': qat_from, 'bf16': bool(bf16), 'threads': threads}
    ckpt_path = os.path.join(run_dir, 'last.pt')
    log_path = os.path.join(run_dir, 'log.csv')
    start, scale, rewarm_from = 0, None, None
    if not os.path.isfile(ckpt_path) and compact and os.path.isfile(compact):
        start, scale = resume_compact(net, compact, variant, log_path, log)
        rewarm_from = start * steps  # the Adam moments start from zero again: ramp the learning rate up
    elif os.path.isfile(ckpt_path):
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        net.load_state_dict(state['model'])
        opt.load_state_dict(state['optimizer'])
        for group in opt.param_groups:  # the learning rate of this run, not the saved one
            group['lr'] = lr
        start = int(state['epoch']) + 1
        scale = state.get('channel_scale')
        rewarm_from = start * steps  # a resume may change --lr or --epochs: ramp up instead of jumping
        log(f'resumed {variant} from epoch {start}')
    elif init == 'smart':
        smart_init(net, data, np.random.default_rng([seed, 999]), log)
    new_log = not os.path.isfile(log_path)
    steps_q = quality_steps()
    began = time.time()
    set_mode(net, True, freeze_bn)
    for epoch in range(start, epochs):
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        qat = epoch >= qat_from
        if qat and scale is None:
            scale = latent_scales(net, data, rng, device)
        total, t0 = 0.0, time.time()
        for i in range(steps):
            for group in opt.param_groups:
                group['lr'] = learning_rate(lr, epoch * steps + i, epochs * steps, schedule, warmup, rewarm_from)
            x = data.batch(rng, batch).to(device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bool(bf16)):
                y = encode(net, x)
                if qat:
                    step = math.exp(rng.uniform(math.log(steps_q[-1]), math.log(steps_q[0])))
                    y = y + (torch.rand_like(y) - 0.5) * (step * scale_view(net, y, scale.to(device)))
                x_hat = decode(net, y)
            loss = torch.mean((x_hat.float() - x) ** 2)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += float(loss.detach())
        train_psnr = psnr(total / steps)
        val_psnr = evaluate(net, data, device, freeze_bn=freeze_bn)
        val_q = (evaluate(net, data, device, scale.to(device), steps_q[-1], freeze_bn=freeze_bn)
                 if scale is not None else float('nan'))
        row = {'epoch': epoch, 'train_psnr': round(train_psnr, 3), 'val_psnr_float': round(val_psnr, 3),
               'val_psnr_q10': round(val_q, 3), 'qat': int(qat), 'seconds': round(time.time() - t0, 1)}
        # the checkpoint first: a row in log.csv always has its checkpoint (a run killed in between repeats it)
        state = {'model': net.state_dict(), 'optimizer': opt.state_dict(), 'epoch': epoch, 'variant': variant,
                 'config': json.dumps(config, sort_keys=True)}
        if scale is not None:
            state['channel_scale'] = scale.cpu()
        torch.save(state, ckpt_path + '.tmp')
        os.replace(ckpt_path + '.tmp', ckpt_path)
        with open(log_path, 'a', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new_log:
                writer.writeheader()
                new_log = False
            writer.writerow(row)
        if compact:
            write_compact(compact, state, log_path)
        log(f'{variant} epoch {epoch}: ' + ', '.join(f'{k} {v}' for k, v in row.items() if k != 'epoch'))
        if minutes and (time.time() - began) > minutes * 60 and epoch < epochs - 1:
            if not qat and qat_from < epochs:  # time is up: jump to quantisation-aware fine-tuning
                qat_from = epoch + 1
                log('time limit: starting quantisation-aware fine-tuning')
            elif qat:
                log('time limit reached')
                break
    if compact and start >= epochs and os.path.isfile(ckpt_path):  # a finished run: write its compact checkpoint
        write_compact(compact, torch.load(ckpt_path, map_location='cpu', weights_only=True), log_path)
    return net, scale


def resume_compact(net, path, variant, log_path, log=print):
    """Load a compact checkpoint (training/checkpoint.py) into net; restore log.csv; return (start epoch, scale)."""
    from training.checkpoint import load_compact

    state = load_compact(path)
    if state['variant'] != variant:
        raise ValueError(f'{path} holds a {state["variant"]} run, not {variant}')
    net.load_state_dict(state['model'])
    if state['log_csv'] and not os.path.isfile(log_path):
        with open(log_path, 'w', newline='', encoding='utf-8') as handle:
            handle.write(state['log_csv'])
    start = int(state['epoch']) + 1
    log(f'resumed {variant} from epoch {start} (compact checkpoint {path}; optimizer restarted)')
    return start, state.get('channel_scale')


def write_compact(path, state, log_path):
    from training.checkpoint import save_compact

    with open(log_path, encoding='utf-8') as handle:
        log_csv = handle.read()
    return save_compact(path, state['model'], state['variant'], state['epoch'], state.get('config', '{}'),
                        state.get('channel_scale'), log_csv)


# The floor the tests check: cae1d / hycot at quality 10 on a held-out tile; sscnet / cae3d pooled over the held-out
# tiles at quality 10 (tests/training/test_bundled_models.py).
MIN_PSNR = {'cae1d': 45.0, 'hycot': 45.0, 'sscnet': 35.0, 'cae3d': 35.0}
POOLED_FLOOR = ('sscnet', 'cae3d')
PUBLISHED = {  # reference-models.md §1: PSNR of the float latent on HySpecNet-11k (probably the easy split)
    'cae1d_cr4': '54.85 dB at 8.08 "bpppc"', 'hycot_cr4': '56.29 dB at 8.08 "bpppc"',
    'cae3d_cr32': '39.06 dB at 1.01 "bpppc"', 'sscnet_cr32': '43.24 dB at 1.00 "bpppc"',
    'cae3d_cr4': '39.94 dB at 8.08 "bpppc" (cae3d_8bpppc / cae3d_cr4)',
    'sscnet_cr051': ('none retrieved (cr051 is one of the HyCASS additions, whose tables were not retrieved); the '
                     'nearest published SSCNet variant, sscnet_cr32, reaches 43.24 dB at 1.00 "bpppc"'),
}
# Why a model is bundled, when it is not meant for compressing data (the card's first paragraph ends with it).
_SEED_COMPARISON = ('\n\n**Why it is here.** Offered to reproduce the seed\'s comparison of its three compressors '
                    '(1D-CAE, SSCNet, 3D-CAE; its conclusion: on EnMAP, spatial compression loses to spectral '
                    'compression), **not for production use**: its best quality is far below what `pca` and `rdnet` '
                    '(the default) reach at a lower rate (comparison below, docs/benchmarks.md).')
PURPOSE = {'sscnet': _SEED_COMPARISON, 'cae3d': _SEED_COMPARISON}
MACHINE = 'a shared 2-vCPU Debian 12 VM (Intel Xeon, no GPU)'
TITLES = {'cae1d': '1D-CAE (Kuester et al. 2021)', 'hycot': 'HyCoT (Fuchs et al. 2024)',
          'sscnet': 'SSCNet (La Grassa et al. 2022)', 'cae3d': '3D-CAE (Chong et al. 2021)'}


def package(variant, run_dir, out, fp16=False, steps=None, log=print, note=''):
    """Export a trained run to a package (id = folder name), measure it on the held-out tiles, write its card."""
    from training.export_onnx import package_meta, write_package
    from training.measure import card_table, measure_package
    from training.shared_data import HELD_OUT_TILES, potsdam_tiles

    state = torch.load(os.path.join(run_dir, 'last.pt'), map_location='cpu', weights_only=True)
    threads = json.loads(state.get('config', '{}')).get('threads', 2)
    net = build(variant)
    net.load_state_dict(state['model'])
    net.eval()
    model_id = os.path.basename(os.path.normpath(out))
    with open(os.path.join(run_dir, 'log.csv'), newline='') as handle:
        logged = list(csv.DictReader(handle))
    rows = list({r['epoch']: r for r in logged}.values())  # an epoch repeated after an interrupted run: the last
    steps = steps or quality_steps()
    training = {'variant': variant, 'epochs': len(rows), 'qat_epochs': sum(int(r['qat']) for r in rows),
                'held_out': list(HELD_OUT_TILES), 'seconds': round(sum(float(r['seconds']) for r in logged)),
                'tiles': [os.path.basename(p) for p in potsdam_tiles(held_out=False)]}
    scale = state.get('channel_scale')
    if scale is None:  # a run stopped before quantisation-aware training: measure the spreads now
        scale = latent_scales(net, Data(net.kind, 10587), np.random.default_rng(0), 'cpu')
    meta = package_meta(net, model_id, TITLES.get(model_id, variant), steps, scale.numpy(), training,
                        tile_size=128, tile_overlap=8)
    write_package(net, out, meta, f'# {model_id} — {TITLES.get(model_id, variant)} (measuring...)\n', fp16=fp16)
    measured = measure_package(out, potsdam_tiles(held_out=True))
    size = sum(os.path.getsize(os.path.join(out, f)) for f in ('encoder.onnx', 'decoder.onnx'))
    card = CARD.format(id=model_id, title=TITLES.get(model_id, variant), variant=variant, cls=type(net).__name__,
                       latent=net.latent_channels, dims=getattr(net, 'latent_dims', [net.latent_channels]),
                       bpppc=net.bpppc, cr=net.compression_ratio, params=sum(p.numel() for p in net.parameters()),
                       size=size / 1e6, dtype='float16 weights (computed in float32)' if fp16 else 'float32 weights',
                       epochs=training['epochs'], qat=training['qat_epochs'], minutes=training['seconds'] / 60,
                       machine=f"{MACHINE}, {threads} thread{'s' if threads != 1 else ''}",
                       purpose=PURPOSE.get(model_id, ''), comparison=bundled_comparison(model_id),
                       floor=floor_sentence(model_id),
                       tiles=', '.join(training['tiles']), held_out=', '.join(HELD_OUT_TILES),
                       val=rows[-1]['val_psnr_float'], val_q=rows[-1]['val_psnr_q10'],
                       table=card_table(measured, net.bpppc),
                       kind=net.kind, run=variant, bands=N_HYSPECNET,
                       published=PUBLISHED.get(variant, 'no per-variant number retrieved'),
                       **training_text(state, training['tiles'],
                                       next((int(r['epoch']) for r in rows if int(r['qat'])), len(rows))))
    if note:
        card = card.replace('\n\n**Validation.**', f'\n{note.strip()}\n\n**Validation.**', 1)
    with open(os.path.join(out, 'card.md'), 'w', encoding='utf-8') as handle:
        handle.write(card)
    log(card)
    return measured


def floor_sentence(model_id):
    if model_id not in MIN_PSNR:
        return 'No quality floor is checked by the tests for this package.'
    where = 'pooled over the held-out tiles' if model_id in POOLED_FLOOR else 'on a held-out tile'
    return f'Minimum PSNR checked by the tests at quality 10 {where}: {MIN_PSNR[model_id]:.0f} dB.'


def bundled_comparison(model_id, models_dir=None):
    """A sentence with the quality 1 and 10 rows of every other bundled model, read from its card (measured on the
    same held-out tiles by the same measure_package)."""
    import re

    from training.shared_data import PROJECT_ROOT

    models_dir = models_dir or os.path.join(PROJECT_ROOT, 'models')
    parts = []
    for other in sorted(os.listdir(models_dir)) if os.path.isdir(models_dir) else []:
        card = os.path.join(models_dir, other, 'card.md')
        if other == model_id or not os.path.isfile(card):
            continue
        with open(card, encoding='utf-8') as handle:
            found = re.findall(r'^\| (1|10) \| ([0-9.]+) \| ([0-9.]+) \|', handle.read(), re.MULTILINE)
        rows = {level: (rate, db) for level, rate, db in found}
        if {'1', '10'} <= set(rows):
            parts.append(f"`{other}` {rows['1'][1]} dB at {rows['1'][0]} to {rows['10'][1]} dB at {rows['10'][0]}")
    if not parts:
        return ''
    return ('Other bundled models on the same held-out tiles (from their cards, measured the same way; quality 1 to '
            '10, real bpppb): ' + '; '.join(parts) + '.')


def training_text(state, tiles, qat_from=None):
    """The card's command line, recipe and data sentences, from the options stored in last.pt."""
    default_data = ('Data: the real EnMAP L2A Potsdam training tiles ({}), other sensors resampled to the EnMAP bands '
                    'with Gaussian SRFs (HyMap and simulated EnMAP Berlin, Hyperion Gamsberg, AVIRIS Jasper Ridge) and '
                    'synthetic mixtures of spectral-library spectra (earthlib, USGS splib07, Roberts 2017 AVIRIS).'
                    ).format(', '.join(tiles))
    if 'config' not in state:
        return {'command': '...', 'recipe': ', seed 10587', 'data': default_data}
    c = json.loads(state['config'])
    command = (f"--epochs {c['epochs']} --steps {c['steps']} --batch {c['batch']} --patch {c['patch']} "
               f"--lr {c['lr']:g} "
               f"--qat-from {c.get('qat_from', qat_from)} --seed {c['seed']}")
    recipe = [f", seed {c['seed']}, batches of {c['batch']}, {c['steps']} steps per epoch"]
    if c['mix'] != 'default':
        command += ' --mix ' + ' '.join(f'{w:g}' for w in c['mix'])
    if c['init'] == 'smart':
        command += ' --init smart'
        recipe.append('a data-dependent start (training/smart_init.py: SSCNet as a block-wise spectral-PCA code, '
                      '3D-CAE with identity residual blocks and BatchNorm statistics from training batches)')
    if c['freeze_bn']:
        command += ' --freeze-bn'
        recipe.append('BatchNorm running statistics frozen during training (training and inference agree)')
    if c['schedule'] == 'cosine':
        command += f" --schedule cosine --warmup {c['warmup']}"
        recipe.append(f"learning rate {c['lr']:g} with {c['warmup']} warm-up steps and a cosine decay to 2% of it")
    else:
        recipe.append(f"learning rate {c['lr']:g}")
    if c.get('bf16'):
        command += ' --bf16'
        recipe.append('bfloat16 autocast in the training steps (float32 weights and optimizer)')
    mix = [0.6, 0.2, 0.2] if c['mix'] == 'default' else c['mix']
    if state.get('variant', '').startswith(('cae1d', 'hycot')):
        data = default_data
    else:
        total = sum(mix)
        parts = [f"{mix[0] / total:.0%} from the real EnMAP L2A Potsdam training tiles ({', '.join(tiles)})"]
        if mix[1]:
            small = '; the Hyperion Gamsberg cube is smaller than a patch' if c['patch'] > 10 else ''
            parts.append(f'{mix[1] / total:.0%} from other sensors resampled to the EnMAP bands with Gaussian SRFs '
                         '(HyMap and '
                         f'simulated EnMAP Berlin, AVIRIS Jasper Ridge{small})')
        if mix[2]:
            parts.append(f'{mix[2] / total:.0%} from synthetic mixtures of spectral-library spectra')
        data = (f"Data: random {c['patch']}x{c['patch']}-pixel crops with random flips and 90-degree rotations, drawn "
                + ', '.join(parts) + '.')
    return {'command': command, 'recipe': '; '.join(recipe), 'data': data}


CARD = """# {id} — {title}

**What it is.** The published architecture `{cls}` (reference-models.md), variant `{variant}`: {latent} latent values
per {kind} unit (latent dims {dims}), i.e. the paper's float rate {bpppc:.4f} "bpppc" (= 32/CR, CR = {cr:.2f}, a float32
latent without entropy coding). {params:,} parameters; the package (encoder.onnx + decoder.onnx) is {size:.2f} MB with
{dtype}. Here the latent is quantised with one uniform step per quality level (times a per-channel scale, the
channel's spread on training data) and entropy-coded per channel by the plugin's coder: the table gives the real rate
from the bytes of the `.ehc` files, next to which the paper's float "bpppc" is not comparable.{purpose}

**Training.** Trained here from scratch on CPU (`python -m training.train_model {run} RUN_DIR {command}`,
Adam, MSE in the HySpecNet [0, 1] view, gradient clipping 1.0{recipe}): {epochs} epochs ({minutes:.0f} min of training
wall time on {machine}), the last {qat} with quantisation-aware noise (uniform noise of one quantiser step added to the
latent). {data} No HySpecNet-11k data (not available here). This is a short CPU training: expect it to be well below
the published numbers.

**Validation.** Held-out real tiles never trained on: {held_out}. Last epoch: PSNR {val} dB with the float latent,
{val_q} dB with the latent rounded at quality 10. Measured through the real pipeline (rate from the `.ehc` bytes,
bpppb = file bits / (valid pixels x {bands}); PSNR and mean spectral angle in the HySpecNet convention):

{table}

The paper's float rate of this variant is {bpppc:.2f} "bpppc" at every quality level (no quantisation, no entropy
coding); published result of the variant on HySpecNet-11k (float latent, probably the easy split): {published}.
Those numbers come from the authors' full trainings and 128x128 HySpecNet-11k test patches; the figures above from
three 32x32 Potsdam tiles after the short CPU training described above: not directly comparable.
{comparison}

{floor}

**Licence.** Architecture from the cited paper (re-implemented, no code or weights of the authors); weights trained
here on DLR EnMAP data (EnMAP-Box test data) and the shared libraries listed above; code GPL-2.0-or-later.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('variant')
    parser.add_argument('run_dir')
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--steps', type=int, default=200)
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--qat-from', type=int, default=None)
    parser.add_argument('--minutes', type=float, default=None, help='soft time limit (switches to QAT, then stops)')
    parser.add_argument('--patch', type=int, default=32)
    parser.add_argument('--seed', type=int, default=10587)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--mix', nargs=3, type=float, metavar=('REAL', 'OTHER', 'SYNTHETIC'), default=None,
                        help='spatial models: weights of the patch sources (default 0.6 0.2 0.2)')
    parser.add_argument('--init', choices=('default', 'smart'), default='default',
                        help='smart: data-dependent start (training/smart_init.py; spatial models)')
    parser.add_argument('--freeze-bn', action='store_true', help='train with fixed BatchNorm running statistics')
    parser.add_argument('--schedule', choices=('const', 'cosine'), default='const')
    parser.add_argument('--warmup', type=int, default=0, help='linear learning-rate warm-up steps')
    parser.add_argument('--bf16', action='store_true',
                        help='bfloat16 autocast for the training steps (about 2x faster on CPUs with AMX); '
                             'weights, optimizer and validation stay float32')
    parser.add_argument('--compact', metavar='PATH', default=None,
                        help='compact checkpoint (float16 weights, <= 8 MB, training/checkpoints/<id>.pt): resumed '
                             'from when RUN_DIR has no last.pt, rewritten after every epoch (and written for a '
                             'finished run)')
    parser.add_argument('--package', metavar='MODEL_FOLDER', default=None,
                        help='export the trained run to this package folder (id = folder name), measure it, write card')
    parser.add_argument('--fp16', action='store_true', help='with --package: store weights as float16')
    parser.add_argument('--card-note', default='', help='with --package: a sentence added to the Training paragraph '
                        '(e.g. how a resumed run changed its options)')
    parser.add_argument('--step-range', nargs=2, type=float, metavar=('COARSE', 'FINE'), default=STEP_RANGE,
                        help='with --package: quality-1 and quality-10 steps in units of the channel scale')
    args = parser.parse_args()
    if args.package:
        package(args.variant, args.run_dir, args.package, args.fp16, quality_steps(*args.step_range),
                note=args.card_note)
        return
    try:
        train(args.variant, args.run_dir, args.epochs, args.steps, args.batch, args.lr, args.qat_from, args.minutes,
              args.patch, args.seed, args.threads, log=lambda m: print(m, flush=True), mix=args.mix, init=args.init,
              freeze_bn=args.freeze_bn, schedule=args.schedule, warmup=args.warmup, bf16=args.bf16,
              compact=args.compact)
    except datasets.SharedDataMissingError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == '__main__':
    main()

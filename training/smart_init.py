"""Data-dependent initialisation of the spatial compressors (train_model.py --init smart).

The layers, shapes and state_dict keys stay exactly those of the published architectures; only the starting values
change, so that training starts from a useful map instead of noise:

* SSCNet: a block-wise spectral-PCA code. conv0 projects every pixel onto the first k principal components of the
  training spectra (and their negatives), the following convolutions pass these 2k channels on unchanged (identity
  centre taps, PReLU slope 1), so the max-pools deliver the block maximum and minus the block minimum of every
  component. The transposed convolutions copy them to every pixel of the 8x8 block and the last layer is fitted
  by least squares (a logit-space start, refined by L-BFGS in the MSE sense through the sigmoid) to the training
  pixels' own PCA coefficients. The remaining channels keep their default random initialisation, with zero weight
  into the PCA path and into the output, so they start silent.
* 3D-CAE: residual blocks start as identities (the second BatchNorm's weight is 0) and every BatchNorm's running
  statistics are set from training batches, the output BatchNorm is rescaled to the data's mean and spread. Trained
  with the BatchNorm statistics frozen (--freeze-bn), the net is an ordinary conv net whose training and
  inference behaviour are the same.
"""
import numpy as np
import torch
from torch import nn


def pca_basis(cubes, k):
    """(mean (202,), components (k, 202), coefficient spread (k,)) of the pixels of (N, 202, H, W) cubes."""
    x = np.asarray(cubes, np.float64).transpose(0, 2, 3, 1).reshape(-1, cubes.shape[1])
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    spread = s[:k] / np.sqrt(len(x))
    return mean, vt[:k], np.maximum(spread, 1e-6)


def _identity_into(conv, n, transposed=False):
    """Zero the weights into the first n output channels and make them copy the first n inputs (centre tap)."""
    w = conv.weight.data  # Conv: (out, in, kh, kw); ConvTranspose: (in, out, kh, kw)
    if transposed:
        w[:, :n] = 0.0
        if w.shape[-1] == 3:
            w[torch.arange(n), torch.arange(n), 1, 1] = 1.0
        else:  # k2 s2: every sub-position gets a copy
            w[torch.arange(n), torch.arange(n)] = 1.0
    else:
        w[:n] = 0.0
        w[torch.arange(n), torch.arange(n), w.shape[2] // 2, w.shape[3] // 2] = 1.0
    conv.bias.data[:n] = 0.0


def _fit_sigmoid(f, target, sol, iterations=150):
    """Refine sigmoid(f @ sol) ~ target in the MSE sense (the logit fit over-weights dark pixels)."""
    sol = sol.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([sol], max_iter=iterations, line_search_fn='strong_wolfe')

    def closure():
        opt.zero_grad()
        loss = ((torch.sigmoid(f @ sol) - target) ** 2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return sol.detach()


def init_sscnet(net, cubes, k=16, eps=1e-3):
    """Initialise an SSCNet as the block-wise PCA code described above; returns the PSNR of the init on `cubes`."""
    cubes = np.asarray(cubes, np.float32)
    mean, comps, spread = pca_basis(cubes, k)
    n = 2 * k
    enc, dec = net.encoder, net.decoder
    if n > min(enc[11].out_channels, 256):
        raise ValueError(f'k={k} needs {n} latent channels')
    with torch.no_grad():
        proj = torch.from_numpy((comps / spread[:, None]).astype(np.float32))  # (k, 202)
        bias = -(proj.double() @ torch.from_numpy(mean)).float()
        w0 = enc[0].weight.data
        w0[:n] = 0.0
        w0[0:n:2, :, 1, 1] = proj
        w0[1:n:2, :, 1, 1] = -proj
        enc[0].bias.data[0:n:2] = bias
        enc[0].bias.data[1:n:2] = -bias
        for i in (2, 5, 8, 11):
            _identity_into(enc[i], n)
        for i in (1, 3, 6, 9, 12):
            enc[i].weight.data[:n] = 1.0
        _identity_into(dec[0], n, transposed=True)
        for i in (2, 4, 6):
            _identity_into(dec[i], n, transposed=True)
        for i in (1, 3, 5, 7):
            dec[i].weight.data[:n] = 1.0
        # output layer: logit(x) ~ A c + b fitted by least squares on the pixels' own PCA coefficients c (9216
        # distinct samples rather than a few hundred block values); the decoder sees the block midrange
        # (max c - (-min c)) / 2, so channel 2j gets A_j / 2 and channel 2j + 1 gets -A_j / 2.
        pixels = torch.from_numpy(cubes).permute(0, 2, 3, 1).reshape(-1, cubes.shape[1]).double()
        c = pixels @ proj.double().T + bias.double()
        f = torch.cat([c, torch.ones(len(c), 1, dtype=torch.float64)], dim=1)
        logit = torch.logit(pixels.clamp(eps, 1 - eps))
        sol = torch.linalg.lstsq(f, logit).solution.contiguous()  # (k + 1, 202): start for the MSE fit
    sol = _fit_sigmoid(f, pixels, sol)
    with torch.no_grad():
        w8 = dec[8].weight.data  # (256, 202, 3, 3)
        w8.zero_()
        w8[0:n:2, :, 1, 1] = 0.5 * sol[:k].float()
        w8[1:n:2, :, 1, 1] = -0.5 * sol[:k].float()
        dec[8].bias.data[:] = sol[k].float()
        x = torch.from_numpy(cubes)
        mse = float(((net(x) - x) ** 2).mean())
    return -10 * np.log10(max(mse, 1e-12))


def _batchnorms(net):
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def init_cae3d(net, batches):
    """Zero-init residual branches and set all BatchNorm statistics from `batches` (list of (B, 202, H, W) tensors).

    Statistics are set layer by layer (each BatchNorm sees inputs normalised by the already-set ones)."""
    from training.nets.cae3d import _ResBlock

    with torch.no_grad():
        for block in net.modules():
            if isinstance(block, _ResBlock):
                block.block[4].weight.data.zero_()
        norms = _batchnorms(net)
        net.eval()
        for bn in norms:  # in forward order (registration order is forward order in this net)
            sums = []

            def hook(module, inputs, _sums=sums):
                v = inputs[0].transpose(0, 1).flatten(1)
                _sums.append((v.mean(1), (v * v).mean(1)))

            handle = bn.register_forward_pre_hook(hook)
            for x in batches:
                net(x)
            handle.remove()
            mean = torch.stack([s[0] for s in sums]).mean(0)
            var = (torch.stack([s[1] for s in sums]).mean(0) - mean ** 2).clamp_min(1e-8)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        out = norms[-1]  # the output BatchNorm3d(1): map to the data's mean and spread
        data = torch.cat([x.flatten() for x in batches])
        out.weight.data.fill_(float(data.std()))
        out.bias.data.fill_(float(data.mean()))
        mse = float(np.mean([float(((net(x) - x) ** 2).mean()) for x in batches]))
    net.train()
    return -10 * np.log10(max(mse, 1e-12))


def freeze_batchnorm(net):
    """BatchNorm layers use (and keep) their running statistics while the rest of the net trains."""
    for bn in _batchnorms(net):
        bn.eval()

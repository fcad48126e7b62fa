"""Export the torch compressors to the plugin's ONNX package interface.

kind 'pixel' (1D-CAE, HyCoT): encoder x [n, 202] -> y [n, C]; decoder y [n, C] -> x_hat [n, 202].
kind 'spatial' (SSCNet, 3D-CAE): encoder x [1, 202, H, W] -> y [1, *latent_dims, H/8, W/8]; decoder the inverse.
The wrappers do the permutes, padding and cropping, so the graphs have exactly this interface (dynamic n / H, W).
"""
import io

import numpy as np
import torch
from torch import nn

from training.model_package import hyspecnet_input, write_model_package

OPSET = 17


class MethodGraph(nn.Module):
    """One method of a net as the module to export: forward(x) = net.<method>(x, *extra) (extra: constants)."""

    def __init__(self, net, method, *extra):
        super().__init__()
        self.net = net
        self.method = method
        self.extra = extra

    def forward(self, x):
        return getattr(self.net, self.method)(x, *self.extra)


def wrappers(net):
    methods = ('encode_pixels', 'decode_pixels') if net.kind == 'pixel' else ('compress', 'decompress')
    return tuple(MethodGraph(net, method).eval() for method in methods)


def example_inputs(net, size=16, n=8):
    """(x, y) examples for tracing: pixel n spectra, spatial one size x size patch (multiple of 8)."""
    with torch.no_grad():
        if net.kind == 'pixel':
            x = torch.rand(n, net.src_channels)
            return x, net.eval().encode_pixels(x)
        x = torch.rand(1, net.src_channels, size, size)
        return x, net.eval().compress(x)


def export_module(module, example, in_name, out_name, dynamic):
    import onnx

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, (example,), buffer, input_names=[in_name], output_names=[out_name],
                          dynamic_axes={in_name: dynamic[0], out_name: dynamic[1]}, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    model.producer_name = 'enmap_compress'
    return model


def export_onnx(net, fp16=False):
    """(encoder ModelProto, decoder ModelProto) for a torch net; fp16 stores large weights as float16."""
    net = net.eval()
    enc, dec = wrappers(net)
    x, y = example_inputs(net)
    if net.kind == 'pixel':
        dyn_x, dyn_y = {0: 'n'}, {0: 'n'}
    else:
        dyn_x = {2: 'height', 3: 'width'}
        dyn_y = {y.dim() - 2: 'h', y.dim() - 1: 'w'}
    encoder = export_module(enc, x, 'x', 'y', (dyn_x, dyn_y))
    decoder = export_module(dec, y, 'y', 'x_hat', (dyn_y, dyn_x))
    if fp16:
        encoder, decoder = weights_to_fp16(encoder), weights_to_fp16(decoder)
    return encoder, decoder


def weights_to_fp16(model, min_elements=1024):
    """Store float32 initializers with >= min_elements values as float16, cast back to float32 in the graph.

    Computation stays float32 (ONNX Runtime CPU has few fp16 kernels); only the file halves.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts = []
    for init in list(graph.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        array = numpy_helper.to_array(init)
        if array.size < min_elements:
            continue
        name = init.name
        half = numpy_helper.from_array(array.astype(np.float16), name + '_fp16')
        graph.initializer.remove(init)
        graph.initializer.append(half)
        casts.append(helper.make_node('Cast', [name + '_fp16'], [name], to=TensorProto.FLOAT, name='cast_' + name))
    for node in reversed(casts):
        graph.node.insert(0, node)
    return model


def run_onnx(model, array):
    """Run a ModelProto on one input array with ONNX Runtime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return session.run(None, {session.get_inputs()[0].name: np.asarray(array, np.float32)})[0]


# --- model packages -------------------------------------------------------------------------------------------

def package_meta(net, model_id, name, steps, channel_scale=None, training=None, tile_size=128, tile_overlap=8):
    """The 'enmap_compress' metadata of a package for a torch net (see the package contract)."""
    meta = {
        'id': model_id, 'name': name, 'kind': net.kind, **hyspecnet_input(),
        'latent_channels': int(net.latent_channels),
        'quality_levels': [{'level': i + 1, 'step': float(s)} for i, s in enumerate(steps)],
        'architecture': type(net).__name__, 'paper_bpppc': round(float(net.bpppc), 4),
        'paper_compression_ratio': round(float(net.compression_ratio), 4),
        'format_version': 1,
    }
    if channel_scale is not None:
        meta['channel_step_scale'] = [float(v) for v in np.asarray(channel_scale, np.float64).ravel()]
        if len(meta['channel_step_scale']) != meta['latent_channels']:
            raise ValueError('channel_step_scale needs one value per latent channel')
    if net.kind == 'spatial':
        meta.update({'spatial_factor': int(net.spatial_factor), 'latent_dims': [int(d) for d in net.latent_dims],
                     'tile_size': int(tile_size), 'tile_overlap': int(tile_overlap)})
    if training is not None:
        meta['training'] = training
    return meta


def write_package(net, folder, meta, card, fp16=False):
    """Export `net` and write the package folder (encoder.onnx, decoder.onnx, card.md)."""
    encoder, decoder = export_onnx(net, fp16=fp16)
    write_model_package(folder, encoder, decoder, meta, card)
    return folder

"""rdnet's synthesis with the tile's rotation folded into its spectral map, on the live components only.

rdnet's decoder graph is x = W · B^T(y) + b: B^T the 8 x 8 block synthesis of every component (a grouped
ConvTranspose with one shared 64 x 64 basis), W (bands x K) the spectral map, b its bias. A context-v2 tile's
latent y = T z is its coded latent z rotated by the tile's T (latent_basis.TileRotation), which mixes components
only, so x = (W T) · B^T(z) + b. A coded z has 100-124 of its 202 components live on a rotated full synthetic tile
at quality 5 (a real Potsdam training tile, not rotated: 11 / 35 / 106 at quality 2 / 5 / 9): the folded synthesis
runs B^T on those components and W T on their columns, about 55 % of the graph's multiply-adds on that synthetic
tile, with no rotation of the latent (0.5.4's TileRotation.back_at) before it. Measured on a rotated 256 px tile, 2
threads: 78 ms cpu against the graph's 133.

Its arithmetic differs from the graph's in the last bits of the reconstruction, so it decodes only the files that
name it (latent coder `context-v3`, written since 0.6.0); context-v2 files keep the graph and their pixels.
The bits of a context-v3 file: both products run in onnxruntime's CPU MatMul (MLAS), each output a sum over the
live components (or coefficients) in one order; they do not depend on the thread count nor on which blocks of the
tile are decoded, from two blocks on (tests/core/test_synthesis.py checks both; one block alone takes a vector path,
and decode_tile_folded never runs fewer than SpatialTransform.decodes_alone's count). W T is made in float64 from
T's float32 factors and rounded once.
"""
import functools
import threading

import numpy as np

from .errors import FormatError
from .onnxproto import model, node, read_graph, tensor_info
from .products import blocked_products

FACTOR = 8
BLOCK_COEFFICIENTS = FACTOR * FACTOR
BLOCK_ROW = np.dtype((np.void, FACTOR * 4))  # a block's row of 8 float32 pixels, moved as one item (its bytes): the
# copy into raster order took 2.6 times as long in float32 items, 8 to a row


def block_graph():
    """The serialised ONNX model of the block synthesis: blocks (L, cells, 64) = z (L, cells, J) @ basis (J, 64),
    the pixels of every cell's block (raster order inside the block) of the L live components. 0.6.0 ran it as
    basis (64, J) @ z (L, J, cells) (one_block_graph): the same bits from two cells on, on MLAS's AVX-512, AVX2 and
    SSE kernels (each value is the sum over the J coefficients in their order either way; checked at 1 to 64
    coefficients and 2 to 1024 cells, the last two under qemu), and this order puts a block's 8 pixels of a row
    side by side, so the blocks reach raster order in copies of whole rows of a block (BLOCK_ROW)."""
    return model('folded_blocks', [node('MatMul', ['z', 'basis'], ['blocks'])],
                 [tensor_info('z', ['L', 'cells', 'J']), tensor_info('basis', ['J', BLOCK_COEFFICIENTS])],
                 [tensor_info('blocks', ['L', 'cells', BLOCK_COEFFICIENTS])])


def one_block_graph():
    """The block synthesis of one cell as 0.6.0 ran it: blocks (L, 64, 1) = basis (64, J) @ z (L, J, 1). A single
    cell takes MLAS's vector path, whose bits differ between the two orders."""
    return model('folded_block', [node('MatMul', ['basis', 'z'], ['blocks'])],
                 [tensor_info('z', ['L', 'J', 1]), tensor_info('basis', [BLOCK_COEFFICIENTS, 'J'])],
                 [tensor_info('blocks', ['L', BLOCK_COEFFICIENTS, 1])])


def spectral_graph():
    """The serialised ONNX model of the spectral map: x (bands, pixels) = matrix (bands, L) @ images (L, pixels)
    + bias (bands, 1)."""
    return model('folded_spectral', [node('MatMul', ['matrix', 'images'], ['mapped']),
                                     node('Add', ['mapped', 'bias'], ['x'])],
                 [tensor_info('images', ['L', 'pixels']), tensor_info('matrix', ['bands', 'L']),
                  tensor_info('bias', ['bands', 1])], [tensor_info('x', ['bands', 'pixels'])])


GRAPHS = {'blocks': block_graph, 'block': one_block_graph, 'spectral': spectral_graph}


@functools.lru_cache(maxsize=8)
def _session(which, threads, providers):
    from .runtime import onnxruntime

    ort = onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')  # (as runtime.OnnxRunner's)
    return ort.InferenceSession(GRAPHS[which](), options, providers=list(providers))


_IMAGES = threading.local()  # each thread's reused (L, pixels) array between the two graphs


def _images(shape):
    size = shape[0] * shape[1]
    held = getattr(_IMAGES, 'array', None)
    if held is None or held.size < size:
        held = _IMAGES.array = np.empty(size, np.float32)
    return held[:size].reshape(shape)


class FoldedSynthesis:
    """The folded synthesis of one rdnet decoder graph (of_decoder), run with `threads` onnxruntime threads."""

    def __init__(self, basis, matrix, bias, threads=1, providers=('CPUExecutionProvider',)):
        self.basis = basis  # (64 coefficients, 64 pixels of a block, raster order)
        self.matrix = matrix  # (bands, K) float32
        self.matrix64 = matrix.astype(np.float64)
        self.bias = np.ascontiguousarray(bias.reshape(-1, 1))
        self.threads, self.providers = threads, tuple(providers)

    @classmethod
    def of_decoder(cls, data, threads=1, providers=('CPUExecutionProvider',)):
        """The FoldedSynthesis of a serialised decoder graph, or None when it is not rdnet's: exactly a grouped
        8 x 8 stride-8 ConvTranspose of the graph's input with one basis shared by every group, then a 1 x 1
        Conv with a bias, giving the graph's output."""
        try:
            graph = read_graph(data, 'the decoder graph')
        except FormatError:
            return None
        weights = _rdnet_weights(graph)
        return None if weights is None else cls(*weights, threads=threads, providers=providers)

    def spectral_map(self, components, rotation=None):
        """(bands, L) float32: W's columns of `components`, or with a rotation those of W T, made in float64."""
        if rotation is None:
            return np.ascontiguousarray(self.matrix[:, components])
        vectors, factor, signs = (a.astype(np.float64) for a in rotation.factors())
        axes = vectors.shape[1]
        columns = np.zeros((self.matrix.shape[1], len(components)))  # T's columns: I - V S V^T, then signed
        columns[components, np.arange(len(components))] = 1.0
        vs = np.empty((vectors.shape[0], axes))
        blocked_products(vectors, factor, vs)
        update = np.empty_like(columns)
        blocked_products(vs, np.ascontiguousarray(vectors[components].T), update)
        columns -= update
        signed = components < axes
        columns[:, signed] *= signs[components[signed]]
        out = np.empty((self.matrix.shape[0], len(components)), np.float32)
        blocked_products(self.matrix64, columns, out)
        return out

    def run(self, z, coefficients, matrix, rows, columns):
        """The reconstruction (bands, rows x 8, columns x 8) on [0, 1] of a grid of latent cells from z
        (L, rows x columns, J) float32, the values of the live components at the live `coefficients` (J, in
        ascending order), and the spectral map of those components (bands, L). The blocks are put in raster order
        between the two graphs by numpy (onnxruntime's Transpose took 3 times as long)."""
        shape = (self.matrix.shape[0], rows * FACTOR, columns * FACTOR)
        if not z.size:  # no live coefficient: the bias alone, as the graph gives it (0 + b)
            return np.broadcast_to(self.bias.reshape(-1, 1, 1), shape).copy()
        live, cells, _coefficients = z.shape
        if cells == 1:  # (L, 1, J) and (L, J, 1) are the same array, as are the two outputs
            blocks = self._run('block', {'z': z.reshape(live, -1, 1),
                                         'basis': np.ascontiguousarray(self.basis[coefficients].T)})
        else:
            blocks = self._run('blocks', {'z': z, 'basis': np.ascontiguousarray(self.basis[coefficients])})
        images = _images((live, shape[1] * shape[2]))
        np.copyto(images.view(BLOCK_ROW).reshape(live, rows, FACTOR, columns),
                  blocks.reshape(live, -1).view(BLOCK_ROW).reshape(live, rows, columns, FACTOR).transpose(0, 1, 3, 2))
        return self._run('spectral', {'images': images, 'matrix': matrix, 'bias': self.bias}).reshape(shape)

    @property
    def provider(self):
        """The onnxruntime provider the synthesis runs on."""
        return _session('spectral', self.threads, self.providers).get_providers()[0]

    def _run(self, which, feeds):
        return _session(which, self.threads, self.providers).run(None, feeds)[0]


def _rdnet_weights(graph):
    """(basis (64, 64), matrix (bands, K), bias (bands,)) of an rdnet decoder Graph, or None."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return None
    producers = {out: n for n in graph.nodes for out in n.outputs}
    conv = producers.get(graph.outputs[0])
    if conv is None or conv.op_type != 'Conv' or len(conv.inputs) != 3:
        return None
    transposed = producers.get(conv.inputs[0])
    matrix, bias = graph.tensors.get(conv.inputs[1]), graph.tensors.get(conv.inputs[2])
    if transposed is None or transposed.op_type != 'ConvTranspose' or len(transposed.inputs) != 2 or \
            transposed.inputs[0] != graph.inputs[0] or matrix is None or bias is None:
        return None
    if matrix.dtype != np.float32 or matrix.ndim != 4 or matrix.shape[2:] != (1, 1) or \
            bias.shape != matrix.shape[:1] or not _attributes(conv, (1, 1), 1, 1):
        return None
    components = matrix.shape[1]
    basis = _shared_basis(graph, producers, transposed.inputs[1], components)
    if basis is None or not _attributes(transposed, (FACTOR, FACTOR), FACTOR, components) or \
            transposed.ints.get('output_padding', [0, 0]) != [0, 0] or 'output_shape' in transposed.ints:
        return None
    if not all(np.isfinite(weights).all() for weights in (basis, matrix, bias)):
        return None  # (a NaN bias decoded every pixel of a lossy file to noise: onnxruntime's output is checked)
    return basis, matrix.reshape(matrix.shape[:2]), bias


def _attributes(conv, kernel, stride, group):
    ints = conv.ints
    return ints.get('kernel_shape') == list(kernel) and ints.get('strides', [1, 1]) == [stride, stride] and \
        ints.get('group', [1]) == [group] and ints.get('pads', [0] * 4) == [0] * 4 and \
        ints.get('dilations', [1, 1]) == [1, 1] and not set(ints) - {'kernel_shape', 'strides', 'group', 'pads',
                                                                     'dilations', 'output_padding'}


def _shared_basis(graph, producers, name, components):
    """The (64, 64) block basis of the ConvTranspose weight `name`: a Tile of one (64, 1, 8, 8) basis over the
    components, or a constant whose groups all hold the same basis; None otherwise."""
    weight = graph.tensors.get(name)
    if weight is None:
        tile = producers.get(name)
        if tile is None or tile.op_type != 'Tile' or len(tile.inputs) != 2:
            return None
        weight, repeats = graph.tensors.get(tile.inputs[0]), graph.tensors.get(tile.inputs[1])
        if weight is None or repeats is None or repeats.tolist() != [components, 1, 1, 1]:
            return None
        weight = np.tile(weight, (components, 1, 1, 1)) if weight.ndim == 4 else None
    if weight is None or weight.dtype != np.float32 or weight.shape != (components * BLOCK_COEFFICIENTS, 1, FACTOR,
                                                                        FACTOR):
        return None
    groups = weight.reshape(components, BLOCK_COEFFICIENTS, BLOCK_COEFFICIENTS)
    return groups[0].copy() if (groups == groups[:1]).all() else None


# --- the exact synthesis (latent coders `context-v4` and `model-exact-v1`: error-bounded and lossless rdnet and pca
# files since 0.7.0) ------------------------------------------------------------------------------------------------
# Every product is a sum of integer products whose magnitudes add up to less than 2**53, so float64 holds each partial
# sum exactly, whatever the summation order, the BLAS kernel or a fused multiply-add: the reconstruction has the same
# bits on every CPU (an error-bounded file's checksum needs them; a float32 graph's bits differ between CPUs with and
# without FMA3). The limits below keep the sums exact; EXACT_BASIS_LIMIT and EXACT_MAP_LIMIT are the weights' bounds a
# model must meet (rdnet 0.49 and 0.71).
EXACT_LATENT_BITS = 20  # the latent in units of 2**-20, clipped to +-EXACT_LATENT_LIMIT
EXACT_LATENT_LIMIT = 2 ** 26  # |latent| < 64
EXACT_BASIS_BITS = 20  # the block basis in units of 2**-20 (|basis| <= 1)
EXACT_IMAGE_BITS = 20  # the component images in units of 2**-20, clipped to +-EXACT_IMAGE_LIMIT
EXACT_IMAGE_LIMIT = 2 ** 25  # |image| < 32 (rdnet's reach 2.7 on the training tiles and the synthetic scene)
EXACT_MAP_BITS = 19  # the spectral map in units of 2**-19: one product (rdnet's reconstruction within 1.3e-6 of the
# graph's on tile-like latents; two parts at 2**-24 took another product as long, a third more time per file)
EXACT_BASIS_LIMIT, EXACT_MAP_LIMIT = 1.0, 1.0
EXACT_PROVIDER = 'CPU (exact synthesis, numpy)'  # what a decompress of such a file reports it ran on


class ExactSynthesis:
    """rdnet's synthesis x = W B^T(y) + b in exact integer arithmetic (docs/format.md, "Exact synthesis"):
    y -> Y = clip(rint(y 2^20)); the block product P = Y @ Bq (Bq = rint(basis 2^20)); the images
    I = clip(rint(P 2^-20)); the spectral map S = Wq @ I (Wq = rint(W 2^19)); x = S 2^-39 + b in float64, then
    float32. Each product's terms add up to less than 2**53 (64 x 2^20 x 2^26 and 256 x 2^19 x 2^25): exact in
    float64 on any CPU and with any BLAS."""

    def __init__(self, basis, matrix, bias):
        self.basis = np.rint(basis.astype(np.float64) * 2.0 ** EXACT_BASIS_BITS)  # (coefficients, 64 pixels)
        self.matrix = exact_weights(matrix)
        self.bias = bias.astype(np.float64).reshape(-1, 1)

    @classmethod
    def of_decoder(cls, data):
        """The ExactSynthesis of a serialised rdnet decoder graph, or None when it is not one or its weights exceed
        the limits that keep the sums exact."""
        folded = FoldedSynthesis.of_decoder(data)
        if folded is None or not np.isfinite(folded.basis).all() or np.abs(folded.basis).max() > EXACT_BASIS_LIMIT \
                or exact_weights(folded.matrix) is None or not np.isfinite(folded.bias).all():
            return None
        return cls(folded.basis, folded.matrix, folded.bias)

    def run(self, latent, rows, columns):
        """The reconstruction (bands, rows x 8, columns x 8) float32 on [0, 1] of a grid of latent cells: latent
        (components x 64, rows x columns) float32, row 64 c + j the coefficient j of component c (the decoder
        graph's input order)."""
        bands = self.matrix.shape[0]
        live = np.flatnonzero(latent.any(axis=1))
        if not live.size:  # the bias alone
            return np.broadcast_to(self.bias.astype(np.float32).reshape(-1, 1, 1),
                                   (bands, rows * FACTOR, columns * FACTOR)).copy()
        component, coefficient = np.divmod(live, BLOCK_COEFFICIENTS)
        components, coefficients = np.unique(component), np.unique(coefficient)
        z = np.zeros((len(components), rows * columns, len(coefficients)))
        z[np.searchsorted(components, component), :, np.searchsorted(coefficients, coefficient)] = \
            exact_values(latent[live], EXACT_LATENT_BITS, EXACT_LATENT_LIMIT)
        blocks = np.empty((len(components), rows * columns, BLOCK_COEFFICIENTS))  # exact integers
        blocked_products(z.reshape(-1, len(coefficients)), self.basis[coefficients],
                         blocks.reshape(-1, BLOCK_COEFFICIENTS))  # (one BLAS thread: no pool woken per tile)
        blocks *= 2.0 ** (EXACT_IMAGE_BITS - EXACT_LATENT_BITS - EXACT_BASIS_BITS)  # (a power of two: exact)
        np.rint(blocks, out=blocks)
        np.clip(blocks, -EXACT_IMAGE_LIMIT, EXACT_IMAGE_LIMIT, out=blocks)
        images = blocks.reshape(len(components), rows, columns, FACTOR, FACTOR).transpose(0, 1, 3, 2, 4).reshape(
            len(components), -1)
        unit = exact_map(self.matrix[:, components], images, self.bias)
        return unit.reshape(bands, rows * FACTOR, columns * FACTOR)


def exact_weights(matrix):
    """A spectral map (bands, components) in the exact synthesis' fixed point, or None beyond its limits."""
    if not np.isfinite(matrix).all() or np.abs(matrix).max(initial=0.0) > EXACT_MAP_LIMIT or matrix.shape[1] > 2 ** 8:
        return None
    return np.rint(matrix.astype(np.float64) * 2.0 ** EXACT_MAP_BITS)


def exact_map(weights, images, bias):
    """float32 (bands, pixels) = weights (exact_weights) @ images (integers within EXACT_IMAGE_LIMIT, in units of
    2**-EXACT_IMAGE_BITS) 2**-39 + bias (bands, 1): one binary64 product whose partial sums are exact integers, then
    one rounded addition."""
    unit = np.empty((weights.shape[0], images.shape[1]))
    blocked_products(np.ascontiguousarray(weights), images, unit)
    unit *= 2.0 ** -(EXACT_MAP_BITS + EXACT_IMAGE_BITS)  # (a power of two: exact)
    unit += bias
    return unit.astype(np.float32)


def exact_values(values, bits, limit):
    """Float values in units of 2**-bits as binary64 integers: rint, clipped to +-limit."""
    return np.clip(np.rint(values.astype(np.float64) * 2.0 ** bits), -limit, limit)


class ExactSpectralMap:
    """pca's decoder x = y @ matrix + mean in the exact synthesis' arithmetic (docs/format.md, "The exact
    spectral map"): Y = clip(rint(y 2^20), -2^25, 2^25), x = (Wq @ Y) 2^-39 + mean, Wq = rint(matrix^T 2^19)."""

    def __init__(self, weights, mean):
        self.weights, self.mean = weights, mean.astype(np.float64).reshape(-1, 1)

    @classmethod
    def of_decoder(cls, data):
        """The ExactSpectralMap of a serialised decoder graph that is exactly y @ matrix + mean (constants), or None
        (another graph, or weights beyond the limits)."""
        try:
            graph = read_graph(data, 'the decoder graph')
        except FormatError:
            return None
        if len(graph.inputs) != 1 or len(graph.outputs) != 1 or len(graph.nodes) != 2:
            return None
        product, shift = graph.nodes
        if len(product.inputs) != 2 or len(shift.inputs) != 2:
            return None
        matrix, mean = graph.tensors.get(product.inputs[1]), graph.tensors.get(shift.inputs[1])
        if product.op_type != 'MatMul' or shift.op_type != 'Add' or product.inputs[0] != graph.inputs[0] or \
                shift.inputs[0] != product.outputs[0] or shift.outputs[0] != graph.outputs[0] or matrix is None or \
                mean is None or matrix.ndim != 2 or mean.shape != matrix.shape[1:] or not np.isfinite(mean).all():
            return None
        weights = exact_weights(matrix.T)
        return None if weights is None else cls(weights, mean)

    def run(self, latent):
        """The reconstruction (bands, pixels) float32 of a latent (components, pixels) float32."""
        return exact_map(self.weights, exact_values(latent, EXACT_IMAGE_BITS, EXACT_IMAGE_LIMIT), self.mean)

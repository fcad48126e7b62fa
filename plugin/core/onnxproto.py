"""The few ONNX protobuf messages the codec writes and reads itself (no `onnx` package in the plugin).

Writing: small graphs built at run time (products.gram_graph, synthesis.block_graph / spectral_graph), IR 8,
opset 13.
Reading: the nodes, initializers and constant tensors of a model package's graph, so that the codec can check a
decoder's structure and take its weights (synthesis.FoldedSynthesis). Every read is bounded by the data: a cut or
malformed message is a FormatError naming what was read, never an IndexError or a huge allocation.

Field numbers (onnx.proto): ModelProto graph 7, opset_import 8, ir_version 1; GraphProto node 1, initializer 5,
input 11, output 12; NodeProto input 1, output 2, op_type 4, attribute 5; AttributeProto name 1, i 3, t 5, ints 8,
type 20; TensorProto dims 1, data_type 2, float_data 4, int64_data 7, name 8, raw_data 9.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError
from .varint import read_uvarint, uvarint

FLOAT, INT64 = 1, 7  # TensorProto.DataType
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
PROTOBUF_VARINT_BYTES = 10  # an int64's varint, negative ones included


# --- writing ----------------------------------------------------------------------------------------------------

def key(number, wire):
    return uvarint(number << 3 | wire)


def text(number, value):
    """A length-delimited field (a string, bytes or an embedded message)."""
    data = value.encode() if isinstance(value, str) else value
    return key(number, _BYTES) + uvarint(len(data)) + data


def integer(number, value):
    return key(number, _VARINT) + uvarint(value)


def tensor_info(name, dims, elem_type=FLOAT):
    """A ValueInfoProto: a tensor of `elem_type` whose dims are names (symbolic) or sizes."""
    shape = b''.join(text(1, text(2, d) if isinstance(d, str) else integer(1, d)) for d in dims)
    tensor = integer(1, elem_type) + text(2, shape)  # TypeProto.Tensor: elem_type, shape
    return text(1, name) + text(2, text(1, tensor))  # name, type: TypeProto.tensor_type


def node(op_type, inputs, outputs):
    """A NodeProto without attributes."""
    return b''.join(text(1, i) for i in inputs) + b''.join(text(2, o) for o in outputs) + text(4, op_type)


def model(name, nodes, inputs, outputs):
    """The serialised ModelProto (IR 8, opset 13) of a graph of these nodes and ValueInfoProtos."""
    graph = b''.join(text(1, n) for n in nodes) + text(2, name) + b''.join(text(11, i) for i in inputs) + \
        b''.join(text(12, o) for o in outputs)
    return integer(1, 8) + text(7, graph) + text(8, integer(2, 13))  # ir_version, graph, opset_import


# --- reading ----------------------------------------------------------------------------------------------------

def _varint(data, pos, what):
    return read_uvarint(data, pos, what, PROTOBUF_VARINT_BYTES)


def fields(data, what):
    """(field number, wire type, value) of each field of a message: ints for varints and fixed fields, bytes
    (a view of `data`) for length-delimited ones."""
    data, pos = memoryview(data), 0
    while pos < len(data):
        tag, pos = _varint(data, pos, what)
        number, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos, what)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if pos + size > len(data):
                raise FormatError(f'{what} is cut short')
            value, pos = int.from_bytes(data[pos:pos + size], 'little'), pos + size
        elif wire == _BYTES:
            size, pos = _varint(data, pos, what)
            if pos + size > len(data):
                raise FormatError(f'{what} is cut short (a field runs past its end)')
            value, pos = data[pos:pos + size], pos + size
        else:
            raise FormatError(f'{what} holds a field of unknown wire type {wire}')
        yield number, wire, value


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _ints(wire, value, what):
    """A repeated int64 field's entries: one varint, or a packed run of them."""
    if wire == _VARINT:
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        number, pos = _varint(value, pos, what)
        out.append(_signed(number))
    return out


@dataclass
class Node:
    op_type: str
    inputs: list
    outputs: list
    ints: dict = field(default_factory=dict)  # attribute name: list of ints (an INT attribute as a list of one)
    tensor: np.ndarray = None  # a Constant's value


@dataclass
class Graph:
    nodes: list
    tensors: dict  # name: array, of the initializers and of the Constant nodes' outputs
    inputs: list
    outputs: list


def read_tensor(data, what):
    """The array of a TensorProto of floats or int64s (FormatError for another type or a size that disagrees)."""
    dims, dtype, raw, floats, ints = [], None, None, [], []
    for number, wire, value in fields(data, what):
        if number == 1:
            dims += _ints(wire, value, what)
        elif number == 2:
            dtype = value
        elif number == 4 and wire == _BYTES:
            floats.append(bytes(value))
        elif number == 7:
            ints += _ints(wire, value, what)
        elif number == 9:
            raw = bytes(value)
    kinds = {FLOAT: np.dtype('<f4'), INT64: np.dtype('<i8')}
    if dtype not in kinds or any(d < 0 for d in dims):
        raise FormatError(f'{what}: a tensor of type {dtype} or shape {dims} is not read here')
    count = math.prod(dims)  # Python integers: numpy's int64 product wrapped ([2**32, 2**32] gave 0 elements)
    if raw is None:
        raw = b''.join(floats) if dtype == FLOAT else np.asarray(ints, '<i8').tobytes()
    if len(raw) != count * kinds[dtype].itemsize:
        raise FormatError(f'{what}: a tensor of shape {dims} holds {len(raw)} bytes')
    return np.frombuffer(raw, kinds[dtype]).reshape(dims).astype(kinds[dtype].newbyteorder('='))


def _name(value):
    return bytes(value).decode('utf-8', 'replace')


def _node(data, what):
    out = Node('', [], [])
    for number, wire, value in fields(data, what):
        if number in (1, 2) and wire == _BYTES:
            (out.inputs if number == 1 else out.outputs).append(_name(value))
        elif number == 4 and wire == _BYTES:
            out.op_type = _name(value)
        elif number == 5 and wire == _BYTES:
            name, ints, tensor = '', [], None
            for n, w, v in fields(value, what):
                if n == 1 and w == _BYTES:
                    name = _name(v)
                elif n in (3, 8):
                    ints += _ints(w, v, what)
                elif n == 5 and w == _BYTES:
                    tensor = read_tensor(v, what)
            if tensor is not None and name == 'value':
                out.tensor = tensor
            else:
                out.ints[name] = ints
    return out


def _value_name(data, what):
    for number, wire, value in fields(data, what):
        if number == 1 and wire == _BYTES:
            return _name(value)
    return ''


def read_graph(data, what='the ONNX model'):
    """The Graph of a serialised ModelProto."""
    graphs = [value for number, wire, value in fields(data, what) if number == 7 and wire == _BYTES]
    if len(graphs) != 1:
        raise FormatError(f'{what} holds {len(graphs)} graphs')
    nodes, tensors, inputs, outputs = [], {}, [], []
    for number, wire, value in fields(graphs[0], what):
        if wire != _BYTES:
            continue
        if number == 1:
            nodes.append(_node(value, what))
        elif number == 5:
            names = [_name(v) for n, w, v in fields(value, what) if n == 8 and w == _BYTES]
            tensors[names[0] if names else ''] = read_tensor(value, what)
        elif number in (11, 12):
            (inputs if number == 11 else outputs).append(_value_name(value, what))
    for n in nodes:
        if n.op_type == 'Constant' and n.tensor is not None and len(n.outputs) == 1:
            tensors[n.outputs[0]] = n.tensor
    inputs = [name for name in inputs if name not in tensors]  # (IR < 4 lists initializers as inputs too)
    return Graph(nodes, tensors, inputs, outputs)


# the messages that hold tensors, and where (field number: message kind): ModelProto, TrainingInfoProto,
# FunctionProto, GraphProto, NodeProto, AttributeProto, SparseTensorProto
_HOLDS_TENSORS = {
    'model': {7: 'graph', 20: 'training', 25: 'function'}, 'training': {1: 'graph', 2: 'graph'},
    'function': {7: 'node'}, 'graph': {1: 'node', 5: 'tensor', 15: 'sparse'}, 'node': {5: 'attribute'},
    'attribute': {5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph', 22: 'sparse', 23: 'sparse'},
    'sparse': {1: 'tensor', 2: 'tensor'}}
MAX_NESTING = 64  # messages inside each other (subgraphs of subgraphs); onnxruntime's protobuf stops at 100
_EXTERNAL = 1  # TensorProto.DataLocation EXTERNAL


def external_tensors(data, what='the ONNX model'):
    """The names of the tensors of a serialised ModelProto, subgraphs and functions included, whose values lie in
    another file (external data: a TensorProto's external_data entries or data_location EXTERNAL), read without
    recursion; FormatError for a malformed message or one nested deeper than MAX_NESTING."""
    found, stack = [], [('model', data, 0)]
    while stack:
        kind, message, depth = stack.pop()
        if depth > MAX_NESTING:
            raise FormatError(f'{what} nests its messages more than {MAX_NESTING} deep')
        if kind == 'tensor':
            name, external = '', False
            for number, wire, value in fields(message, what):
                if number == 8 and wire == _BYTES:
                    name = _name(value)
                elif number == 13 or (number == 14 and wire == _VARINT and value == _EXTERNAL):
                    external = True
            if external:
                found.append(name)
            continue
        inner = _HOLDS_TENSORS[kind]
        for number, wire, value in fields(message, what):
            if number in inner and wire == _BYTES:
                stack.append((inner[number], value, depth + 1))
    return found

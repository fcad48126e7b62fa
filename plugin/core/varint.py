"""Unsigned LEB128 varints for the compact framing of tiles and streams (docs/format.md, "Compact framing"):
7 bits a byte, least significant group first, the high bit set on all but the last byte, at most 5 bytes."""
from .errors import FormatError

MAX_BYTES = 5  # 35 bits: every length a chunk can hold
_LIMIT = 1 << (7 * MAX_BYTES)


def uvarint(value: int) -> bytes:
    """The varint of 0 <= value < 2^35 (the entropy stream's side info uses it too: its reader takes 5 bytes)."""
    if value < 0 or value >= _LIMIT:
        raise ValueError(f'a varint holds 0 ... 2^{7 * MAX_BYTES} - 1, not {value}')
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(data: bytes, pos: int, what: str, max_bytes: int = MAX_BYTES) -> tuple:
    """(value, position after it) of the varint at `pos`; FormatError naming `what` when it is cut or longer than
    `max_bytes` (protobuf's varints take up to 10)."""
    value = 0
    for shift in range(0, 7 * max_bytes, 7):
        if pos >= len(data):
            raise FormatError(f'{what} is truncated (a length runs past its end)')
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise FormatError(f'{what} has an over-long length field')

"""Entropy coding of quantised channels: exact round trips, mode choice, rate, corruption and the frozen format."""
import base64
import hashlib
import subprocess
import sys
import zlib

import numpy as np
import pytest

from enmap_compress.plugin.core import entropy
from enmap_compress.plugin.core.entropy import channel_modes, decode_channels, empirical_entropy_bits, encode_channels
from enmap_compress.plugin.core.errors import FormatError

RNG = np.random.default_rng(7)
I32 = np.iinfo(np.int32)


def _round_trip(symbols):
    data = encode_channels(symbols)
    out = decode_channels(data, np.shape(symbols))
    assert out.dtype == np.int32 and out.shape == np.shape(symbols)
    np.testing.assert_array_equal(out, symbols)
    return data


EDGE_CASES = {
    'all_zeros': np.zeros((3, 500), np.int32),
    'constant_channels': np.array([[5] * 40, [-9] * 40, [I32.max] * 40, [I32.min] * 40]),
    'empty_samples': np.zeros((4, 0), np.int32),
    'no_channels': np.zeros((0, 9), np.int32),
    'one_sample': RNG.integers(-50, 50, (6, 1)),
    'one_channel': RNG.integers(-3, 4, (1, 3000)),
    'two_samples': np.array([[1, 2], [-4, -4], [0, 7]]),
    'negative_values': RNG.integers(-1000, -990, (3, 800)),
    'huge_outlier': np.where(np.arange(5000) == 1234, 1_000_000_000, RNG.integers(-2, 3, 5000))[None],
    'int32_extremes': np.array([[I32.min, I32.max, 0, -1, 1] * 30]),
    'near_2_pow_30': RNG.integers(-2 ** 30, 2 ** 30, (2, 700)),
    'uniform_bytes': RNG.integers(0, 256, (2, 4000)),
    'bimodal': np.concatenate([RNG.normal(-30, 2, 2000), RNG.normal(40, 3, 2000)]).round()[None],
    'binary': RNG.integers(0, 2, (3, 1001)),
    'mostly_zero': np.where(RNG.random((4, 3003)) < 0.02, RNG.integers(-3, 4, (4, 3003)), 0),
    'wide_laplace': np.round(RNG.laplace(7.3, 150, (2, 5000))),
    'narrow_gauss': np.round(RNG.normal(-0.4, 0.3, (2, 5000))),
}
EDGE_CASES = {name: np.asarray(values).astype(np.int32) for name, values in EDGE_CASES.items()}


@pytest.mark.parametrize('name', sorted(EDGE_CASES))
def test_round_trip_is_exact(name):
    _round_trip(EDGE_CASES[name])


@pytest.mark.parametrize('dtype', [np.int8, np.uint8, np.int16, np.uint16, np.int64, np.uint32])
def test_any_integer_dtype_within_int32_is_accepted(dtype):
    symbols = RNG.integers(0, 100, (3, 257)).astype(dtype)
    np.testing.assert_array_equal(decode_channels(encode_channels(symbols)), symbols.astype(np.int32))


def test_transposed_input_and_buffer_types():
    pixels_by_channel = RNG.integers(-4, 5, (3000, 5)).astype(np.int32)  # as a model outputs it
    data = encode_channels(pixels_by_channel.T)
    np.testing.assert_array_equal(decode_channels(bytearray(data)), pixels_by_channel.T)
    np.testing.assert_array_equal(decode_channels(memoryview(data)), pixels_by_channel.T)


def test_bad_inputs_are_rejected_clearly():
    with pytest.raises(TypeError, match='integer'):
        encode_channels(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match='2-D'):
        encode_channels(np.zeros(5, np.int32))
    with pytest.raises(ValueError, match='int32 range'):
        encode_channels(np.array([[0, 2 ** 31]], np.int64))


def test_each_mode_is_chosen_where_it_is_cheapest():
    expectations = {
        'all_zeros': {'const'}, 'int32_extremes': {'raw'}, 'near_2_pow_30': {'raw'}, 'uniform_bytes': {'raw'},
        'huge_outlier': {'hist+escape'}, 'mostly_zero': {'hist+split'}, 'bimodal': {'hist'},
        'wide_laplace': {'laplace'},
    }
    for name, modes in expectations.items():
        assert set(channel_modes(encode_channels(EDGE_CASES[name]))) == modes, name


def test_rate_is_close_to_the_empirical_entropy():
    std = np.geomspace(0.5, 200, 12)[:, None]
    latent = np.round(RNG.normal(0, 1, (12, 65536)) * std).astype(np.int32)
    residual = np.where(RNG.random((12, 65536)) < 0.05, RNG.integers(-2, 3, (12, 65536)), 0).astype(np.int32)
    for symbols in (latent, residual):
        bits = 8 * len(_round_trip(symbols))
        assert bits <= 1.01 * empirical_entropy_bits(symbols) + 800  # 1 %, plus headers


def test_an_outlier_costs_little_thanks_to_the_escape():
    base = np.round(RNG.normal(0, 2, (1, 20000))).astype(np.int32)
    spiked = base.copy()
    spiked[0, 999] = 2_000_000_000
    assert len(encode_channels(spiked)) < len(encode_channels(base)) + 200


def test_empirical_entropy_bits():
    assert empirical_entropy_bits(np.array([[0, 1, 0, 1], [3, 3, 3, 3]])) == pytest.approx(4.0)
    assert empirical_entropy_bits(np.zeros((2, 0), np.int32)) == 0.0


def test_encoding_is_deterministic():
    symbols = EDGE_CASES['mostly_zero']
    assert encode_channels(symbols) == encode_channels(symbols.copy())


def test_shape_mismatch_is_a_format_error():
    data = encode_channels(np.zeros((2, 10), np.int32))
    with pytest.raises(FormatError, match=r'holds 2x10 symbols, expected \(3, 10\)'):
        decode_channels(data, (3, 10))


def test_every_truncation_and_bit_flip_is_a_format_error():
    data = encode_channels(EDGE_CASES['mostly_zero'][:, :400])
    for size in range(len(data)):
        with pytest.raises(FormatError):
            decode_channels(data[:size])
    for pos in range(len(data)):
        corrupt = bytearray(data)
        corrupt[pos] ^= 1 << (pos % 8)
        with pytest.raises(FormatError):
            decode_channels(bytes(corrupt))
    with pytest.raises(FormatError):
        decode_channels(data + b'\0')


def test_unknown_version_is_a_format_error_naming_it():
    data = bytearray(encode_channels(np.zeros((1, 3), np.int32)))
    data[2] = 9
    with pytest.raises(FormatError, match='version 9 is not supported'):
        decode_channels(bytes(data))


@pytest.mark.parametrize('name', ['wide_laplace', 'mostly_zero', 'huge_outlier', 'bimodal', 'near_2_pow_30'])
def test_damage_behind_a_valid_checksum_never_crashes(name):
    # Damage re-sealed with a fresh CRC (so only the decoder's own checks see it): FormatError or the right shape.
    symbols = EDGE_CASES[name]
    data = encode_channels(symbols)
    for pos in range(2, len(data) - 4, max(1, len(data) // 300)):
        corrupt = bytearray(data[:-4])
        corrupt[pos] ^= 0x5A
        try:
            out = decode_channels(bytes(corrupt) + entropy._CRC.pack(zlib.crc32(corrupt)), symbols.shape)
        except FormatError:
            continue
        assert out.shape == symbols.shape and out.dtype == np.int32  # ANS cannot notice every wrong bit


def test_module_imports_without_constriction():
    code = ('import sys; sys.modules["constriction"] = None; '
            'import enmap_compress.plugin.core.entropy as e; print(e.MAGIC)')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# A version-1 stream. Decoding it must never change: the format is frozen (docs/format.md); a new layout gets a new
# version number and this stream still decodes.
GOLDEN_MODES = ['const', 'raw', 'hist', 'laplace', 'gauss', 'hist+split', 'hist+escape']
GOLDEN_SHA256 = 'fd009f160e3d84f5ec2edebcfec3d30bcac6dd80cfdf32453d1ed483f5a2e91b'  # of the int32 LE samples
GOLDEN_STREAM = (
    'RUMBAAcAAADoAwAARgAAAFgBAAB7AQAAAA0ByAEDAgAGA2xMLgAAGwMnKwEXo+hJP4eBJT9OmjM/gUYsPwRhFAIJGY9yP/stgD8iAwUFAggIBdQH'
    'BAMSAQMFW1hNAcrfR+70L4LVKUPGLpJRlahI2NOpFsuYPnyt3b4ANxZU3VzD46syG+dEmRdKwg2kTSUnWQyiUz2EaUmjiPPqfDUJs5Ok9MxcU0Ui'
    '8fCSH+2zMzMMzyLFcPseJ2BNKl1ioZ7BOtyO1luoHVpC8M1uomS3U6EfASx25lyowBrJsAkXWKMn/Ta211vOznQJDbydGa/Z04iZJhm+cKgJD/5C'
    'pvYHZ0kswwFaNLcgwjO7q0UxuLuYL9899drQrJbjyI8n+aWV6VjufRadFkqt1cSgG3liiYJWgBJhgpL/Ick6Kh+8gfFPz104dvPl/NpdkI6mDHQC'
    'tYTewBUj0aBkPDcc57rKDDESLtbLy4V+JvjWBj4T458gXDYzB0fibXcUu8esjIjSA587B1mZenLG1yL90fec40PlCRVfdcp8uPnvbRzD5JISCv+x'
    '+rr9zlLA4MnTzFl6TDgU1Kno9GFHtR45Gbs7INLSKfnuC9RXAEhch1isQcoYSRBBdul1MDwALpYyP3QrPOmHxs/3MH+IRGuSjz75BL72JZ5/1+A/'
    'Vhk5HeZ+rugiiNVkxj4Kq4Iitq/RvyyshetRIfJem2kUy5bRHdAh/IFC/y2wvH5S+WhsXBWSiX3aIDSf/h/eg+z+LT5kSuJIJkLovQ1LTAV0FdCy'
    'f6K5FrPTnJARXeTmGPuKZ+ibidjzojQigInmyFssy0ZA5d5JOPbwkqHHPFJNPEkxZo85vBMcVO6sh1IHC1HlFfX4MiKX2sM1O63kJIviB5rPdixJ'
    'RsVIbrWjEK3plbVwLB1Y3RemEBFzx030enpWZn0TZTcwWPyd1gGTf+iBdhWRkjlMLkIx4PRq9d2qlqsrQFC+lqu0D4VPxP12Hv5qQ9RZeckLFkjX'
    'dxGfuYNqiz1EO5SgN/te815gw5jA66CA6zhfa/qSXBLo3dfMJBDmjrXmm1lP7M9L4syFDiI3P6liiHkc/Ujaw68tKYybmT8atY04dQsksbJqvxCu'
    'g1qDsWWHSg0OPq1oRbAX/MiW4hX5PkiWK4sAaU/ghaX7aAmePQ02tAfSBbRsPg3xnKYQJRKUcAiiekvs0H/c/TIY9uIDBrbx1nueoyHQpiahpEv6'
    'jQZ3FqAtoiMV4g9diNCE47/HMcCnimkbr+ouplocx19cTfyrBpjnXZUiyLP20wXpSK7MbbfjnzFnk4aMfTF03PemTYMN2y9ptL4zphAF66MsDbAo'
    'HJzXbHLpR83RUvco/MrITQ0ZWrlouMpvWcfEn9qCDTAUrjbPCXslNBTlDvlDuWms1br76iTJgJDXY5rezz4cQgSl9mYNqgvusdej+dt7Od+Czipt'
    'HuXGwOp6tHUYi3RfCN+/gIP4G198cNlJmH2UEKuDpTGvMf81NtBKEP0HpnGsN6Fh6WB6h/Ysr2NXR41R4km24dAlNoaaLmuNbr0hIZlGLHYeac5b'
    '9cJQ6kisraHbu4WyH9fQy+265PcZQVA1Ao8hUhEMBsp8vB5RZ5UvqRGvSw+V0n5quU3WypatWiXQDFde58X9ynRQ98cfrc4luzX6HMC2dTHgl5sW'
    'GaN9oWCd6oLtVBGnVXe3jdC6dsNJJ2zF/Dgutg6+Mh+gJQ2iD+md/1uXOY0EdAetqX3ys97oHOETG3cLUpVlOrHM3usQVCxsIQ68PBQCTGHy5grk'
    'dHxOSAHdysxks8iGInpbpfLdqxGbySLrNDNumLtq/vkY1HYbFrt9TTfhNJdUCAjdJ/iTAhbf99/2+w9qktMDLnhnIz9KL6v101oxOCSYC4nHBG9I'
    'dFif3Didpe4AT6pNdB30x8nQ+oSG7VYNle3C+SjMfdgSkf2PtQFFJAAATffBLQFaX0cb76OFng78DnvDOdm6JMG52eXsa+kt+IvgrGdZoLZausUf'
    '7la6OFXoNswkqPgSN29g39PWFXaUCy1wY6wP3PqUhB5f3j2FOWBBv7ypG5hjcjhrf4K2JsJKzhtD7qLg+CrJX37AixiUolsXUrbOJQgkY5zYor0e'
    'ozvfw4hfmSpR1KwPRYPPStA6CT7duzxQJFTZJ0A2LAIOt6JTIG6NzJum/PAZHGI+xadGKNxMwZuhSIUBi2IWEVuaWw2d2GdsOmks/O0HPMsuY5uY'
    '1Le7YeRIzUmvKiFgdDor5D4leboNL6cVqnGDvOJGOc5/gJpXkA0Ux02e/YKUo/9HCDkA7WVjDzdvo6AzHYqAcMSkIaOqhYqMgME2Eeqt6t4ahFcD'
    'ndTRRFSpRLzTgTaQ/f30sI0AIeLdxZ2UJLrQlCGirudwuwco4n7LBl2D/baiTQW7lDDfEktsezFgoRULoDxZjt3uo1xEyWF3+TxP+kTe1UA5AAAA'
    'QBG5q+o='
)


def test_golden_stream_still_decodes_to_the_same_samples():
    data = base64.b64decode(''.join(GOLDEN_STREAM))
    assert channel_modes(data) == GOLDEN_MODES
    out = decode_channels(data, (7, 1000))
    assert hashlib.sha256(out.astype('<i4').tobytes()).hexdigest() == GOLDEN_SHA256

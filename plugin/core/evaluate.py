"""Evaluate: compress, decompress, and measure what the compression did, tile by tile.

The input is opened once (a product ZIP is unpacked once) and read twice: by the compressor and by the comparison
(compare.StreamedComparison), which measures each tile of the reconstruction as decompress writes it, so the
reconstruction is never read back; it yields every metric, the error raster and the report's data."""
import os
from dataclasses import asdict, dataclass

from .codec import DEFAULT_TILE, compress, decompress
from .compare import StreamedComparison, compare
from .enmap import open_spectral
from .outputs import OutputClaim, check_distinct, check_named, check_writable, commit_all, scratch_claim
from .report import write_report
from .tiling import Progress

# Shares of the bar, from measured times (1000 x 1000, rdnet): compress 36 %, decompress and measure 62 %.
COMPRESS_END, DECOMPRESS_END = 0.36, 0.98


@dataclass
class Evaluation:
    psnr: float
    sa_deg: float
    ssim: float
    rmse_dn: float
    max_abs_error_dn: float
    bpppb: float
    compression_ratio: float
    file_bytes: int
    valid_pixels: int
    model: str
    quality: int
    device: str
    provider: str
    compress_seconds: float
    decompress_seconds: float
    compressed: str
    reconstructed: str
    error: str
    report: str
    max_error: object = None
    error_bound: str = ''  # bounds.ErrorBound.describe() of the guaranteed bound ('' lossy)
    # whether the input stores EnMAP DN (gain 1e-4, offset 0): else the metrics are of it converted to that scale,
    # while the error bound stays in its own units
    enmap_scale: bool = True

    def as_dict(self):
        return asdict(self)


def measure(original_path, reconstructed_path, error_path=None, progress=None, is_cancelled=None,
            tile_size=DEFAULT_TILE, max_error=None):
    """Image-wide metrics of a reconstruction against its original, and optionally the per-pixel error raster."""
    return compare(original_path, reconstructed_path, error_path, progress, is_cancelled, tile_size,
                   max_error).metrics


def _evaluation(metrics, packed, unpacked, compressed, reconstructed, error, report, max_error, enmap_scale):
    return Evaluation(
        psnr=metrics['psnr'], sa_deg=metrics['sa_deg'], ssim=metrics['ssim'], rmse_dn=metrics['rmse_dn'],
        max_abs_error_dn=metrics['max_abs_error_dn'], bpppb=packed.bpppb,
        compression_ratio=packed.compression_ratio, file_bytes=packed.file_bytes, valid_pixels=packed.valid_pixels,
        model=packed.model, quality=packed.quality, device=packed.device, provider=packed.provider,
        compress_seconds=packed.seconds, decompress_seconds=unpacked.seconds, compressed=compressed,
        reconstructed=reconstructed, error=error or '', report=report or '', max_error=max_error,
        error_bound=packed.error_bound.describe() if packed.error_bound is not None else '', enmap_scale=enmap_scale)


class _StagedOutputs:
    """An evaluation's outputs, each written in its claim (outputs.OutputClaim: the final file is held from the
    start, as every writer holds its output) and moved into place together once all are made: a failed or
    cancelled run leaves the files it would have replaced as they were (writing each in place as it was ready
    replaced the compressed file, and the cleanup after a later failure then deleted it)."""

    def __init__(self):
        self.claims, self.scratch_folder = [], None

    def claim(self, path):
        """The path to write instead of `path`."""
        self.claims.append(OutputClaim(path))
        return self.claims[-1].temp

    def scratch(self, name):
        """A path for an intermediate file, in a private folder of the system's temporary folder."""
        self.scratch_folder = scratch_claim()
        return os.path.join(self.scratch_folder.folder, name)

    def commit(self):
        commit_all(self.claims)  # all or none: a failed move leaves every earlier output as it was

    def abandon(self):
        for claim in self.claims + ([self.scratch_folder] if self.scratch_folder else []):
            claim.abandon()


def evaluate(source, reconstructed, model=None, quality=5, device='auto', threads=None, compressed=None,
             error=None, report=None, progress=None, is_cancelled=None, tile_size=None, max_error=None,
             band_max_errors=None, relative_error=None, relative_floor=None, code_all_bands=False):
    """Compress `source`, decompress it to `reconstructed`, and measure; returns an Evaluation.
    The error-bound arguments and code_all_bands are those of codec.compress (bounds.error_bound); the metrics
    are those of the HySpecNet bands either way, the rate counts every byte of the file."""
    check_distinct((reconstructed, error, report, compressed), (source,))
    for path in (reconstructed, error):
        if path:
            check_named(path, 'geotiff')
    if report:
        check_named(report, 'report')
    if compressed:  # (compress checked it only on evaluate's staged name: its message named .c.tif...part/part.tif)
        check_named(compressed, 'ehc')
    for path in (compressed, reconstructed, error, report):
        if path:
            check_writable(path)
    compressed = compressed or None
    staged = _StagedOutputs()
    try:
        stage_of = {path: staged.claim(path) for path in (compressed, reconstructed, error, report) if path}
        if not compressed:  # removed below, and after a killed run by the next run that makes one
            stage_of[None] = staged.scratch('evaluate.ehc')
        for path in stage_of.values():  # each writer claims its staged file again, one folder deeper (its paths
            check_writable(path)  # may be too long for Windows): told now, not after the compress
        root = Progress(1, progress, is_cancelled)
        with open_spectral(source) as original:
            # (a product folder or its METADATA.XML names the image it reads only now: an output over it would
            # replace the original with its reconstruction)
            check_distinct((reconstructed, error, report, compressed), (original,))
            packed = compress(original, stage_of[compressed], model, quality, device, threads,
                              progress=root.sub(1, 0.0, COMPRESS_END), tile_size=tile_size, max_error=max_error,
                              band_max_errors=band_max_errors, relative_error=relative_error,
                              relative_floor=relative_floor, code_all_bands=code_all_bands)
            max_error = packed.max_error
            stated = (max_error if packed.error_bound is None or max_error is not None
                      else packed.error_bound.describe())
            stage = root.sub(1, COMPRESS_END, DECOMPRESS_END)
            with StreamedComparison(original, stage_of.get(error), bool(report), threads, stage) as streamed:
                unpacked = decompress(stage_of[compressed], stage_of[reconstructed], device, threads,
                                      progress=stage, on_tile=streamed.add)
                comparison = streamed.result(stated)
            enmap_scale = original.canonical_radiometry.is_enmap
        result = _evaluation(comparison.metrics, packed, unpacked, compressed or '', reconstructed, error, report,
                             max_error, enmap_scale)
        if report:
            root.check()
            root.say('writing the report')
            write_report(stage_of[report], result.as_dict(), source, data=comparison.report)
        staged.commit()
        root.report(1.0)
    finally:
        staged.abandon()  # a failed or cancelled evaluation leaves nothing behind, and the files it would have
        # replaced as they were
    return result

"""What the compute devices are on this machine, in words for the dialog and the diagnostics."""
import functools
import shutil
import subprocess  # noqa: S404 (only nvidia-smi, found on PATH, with fixed arguments)
import sys
from dataclasses import dataclass

from ..core import runtime
from ..core.errors import EnmapCompressError

NVIDIA_SMI_TIMEOUT_S = 5


@dataclass(frozen=True)
class DeviceOption:
    device: str  # 'auto' | 'cpu' | 'cuda' (the DEVICE enum order of the algorithms)
    label: str
    enabled: bool
    tooltip: str


def providers():
    """onnxruntime's execution providers, or None when onnxruntime cannot be imported."""
    try:
        return list(runtime.onnxruntime().get_available_providers())
    except EnmapCompressError:
        return None


@functools.lru_cache(maxsize=1)
def gpu_names():
    """NVIDIA GPU names from nvidia-smi when it is installed; [] otherwise (never raises)."""
    binary = shutil.which('nvidia-smi')
    if not binary:
        return []
    flags = getattr(subprocess, 'CREATE_NO_WINDOW', 0) if sys.platform.startswith('win') else 0
    try:
        proc = subprocess.run([binary, '--query-gpu=name', '--format=csv,noheader'],  # noqa: S603
                              capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False,
                              creationflags=flags)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()] if proc.returncode == 0 else []


def _gpu_label():
    names = gpu_names()
    return ', '.join(names) if names else 'CUDA GPU'


def cpu_only_reason(available):
    if available is None:
        return 'onnxruntime is not installed'
    return ('onnxruntime has no CUDA provider (install onnxruntime-gpu with a matching CUDA to use a GPU; '
            f'providers: {", ".join(available)})')


def device_options():
    """The three DEVICE choices with labels that say what will really run."""
    available = providers()
    has_cuda = available is not None and 'CUDAExecutionProvider' in available
    if has_cuda:
        auto = DeviceOption('auto', f'auto — GPU: {_gpu_label()}', True, 'CUDA provider available; '
                            'falls back to the CPU only with a clear error, never silently.')
        cuda = DeviceOption('cuda', f'cuda — {_gpu_label()}', True, 'Run on the GPU.')
    else:
        reason = cpu_only_reason(available)
        auto = DeviceOption('auto', 'auto — CPU only', True, f'CPU only: {reason}.')
        cuda = DeviceOption('cuda', 'cuda — not available', False, f'No GPU: {reason}.')
    cpu = DeviceOption('cpu', f'cpu — {runtime.default_threads()} threads', True,
                       'Run on the CPU (one core is left free for QGIS).')
    return [auto, cpu, cuda]

"""Where the benchmarks write and what they record: the project's folders, scratch space, the machine and commit a
table was measured on, and the marked doc sections the tables replace."""
import os
import platform
import subprocess
import tempfile

import numpy as np
from osgeo import gdal

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.path.join(PROJECT_ROOT, 'build', 'bench')
DOCS_DIR = os.path.join(PROJECT_ROOT, 'docs')


def machine():
    cpu = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as handle:
            for line in handle:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    debian = ''
    try:
        with open('/etc/debian_version', encoding='utf-8') as handle:
            debian = f'Debian {handle.read().strip()}'
    except OSError:
        pass
    mem = ''
    try:
        pages = os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
        mem = f'{pages / 2 ** 30:.0f} GiB RAM'
    except (ValueError, OSError):
        pass
    return (f'{os.cpu_count()} vCPU {cpu}, {mem}, {debian or platform.platform()}, '
            f'Python {platform.python_version()}, numpy {np.__version__}, GDAL {gdal.__version__}')


def git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, check=False).stdout.strip() or 'unknown'
    except OSError:
        return 'unknown'


def scratch_dir(prefix):
    os.makedirs(BUILD_DIR, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=BUILD_DIR)


def replace_section(path, marker, text):
    """Replace the text between `<!-- marker:start -->` and `<!-- marker:end -->` in a markdown file."""
    start, end = f'<!-- {marker}:start -->', f'<!-- {marker}:end -->'
    block = f'{start}\n{text.rstrip()}\n{end}'
    content = ''
    if os.path.exists(path):
        with open(path, encoding='utf-8') as handle:
            content = handle.read()
    if start in content and end in content:
        head, rest = content.split(start, 1)
        tail = rest.split(end, 1)[1]
        content = head + block + tail
    else:
        content = content.rstrip() + '\n\n' + block + '\n'
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(content)

"""`python -m enmap_compress.plugin.cli` is `enmap-compress`."""
import sys

try:
    from .main import main
except KeyboardInterrupt:  # Ctrl+C while numpy and the core load: nothing started, and no traceback
    sys.stderr.write('enmap-compress: error: interrupted before the command started\n')
    sys.exit(130)

sys.exit(main())

"""`python -m enmap_compress.plugin.cli` is `enmap-compress`."""
import sys

from .main import main

sys.exit(main())

"""``python -m xcf train CONFIG.yaml`` / ``python -m xcf measure RUN_DIR``: see :mod:`xcf.cli`."""
import sys

from .cli import main

sys.exit(main())

"""``python -m xcf train CONFIG.yaml`` / ``python -m xcf measure RUN_DIR``: see :mod:`xcf.cli.main`."""
import sys

from xcf.cli.main import main

sys.exit(main())

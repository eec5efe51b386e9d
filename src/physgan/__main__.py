"""``python -m physgan`` runs the CLI (``torchrun -m physgan`` too, once per rank)."""

import sys

from physgan.cli import main

sys.exit(main())

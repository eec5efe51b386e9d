"""``python -m physgan`` runs the CLI (and ``torchrun -m physgan`` will, later)."""

import sys

from physgan.cli import main

sys.exit(main())

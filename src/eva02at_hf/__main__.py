"""``python -m eva02at_hf ...`` (also under ``torchrun -m`` / ``accelerate launch -m``) is the `eva02at` command."""

import sys

from .apps.cli import main

sys.exit(main())

"""``python -m seal_core ...`` is ``seal-run ...`` (for launchers that start a module, e.g. ``torchrun -m``)."""

import sys

from seal_core.commands.main import main

sys.exit(main())

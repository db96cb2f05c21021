"""`python -m fewshot_gui.cli` runs the `fewshot` command."""

import sys

from . import main

sys.exit(main())

"""Entry script of the bundle's `fewshot` command."""

import sys

from fewshot_gui.cli import main

sys.exit(main())

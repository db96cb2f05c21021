"""Entry script of the bundle's `fewshot-gui` app."""

import sys

from fewshot_gui.gui.app import main

sys.exit(main())

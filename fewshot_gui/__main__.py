"""`python -m fewshot_gui` opens the desktop app."""

import sys

from fewshot_gui.gui.app import main

sys.exit(main())

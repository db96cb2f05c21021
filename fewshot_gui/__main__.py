"""`python -m fewshot_gui` opens the desktop app."""

import sys

from fewshot_gui.gui.launcher import main

sys.exit(main())

"""The architecture holds: the core and the CLI run without Qt, and imports flow one way."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_and_cli_never_import_qt() -> None:
    code = (
        "import sys, pkgutil, importlib, fewshot_gui.core, fewshot_gui.cli\n"
        "for m in pkgutil.walk_packages(fewshot_gui.core.__path__, 'fewshot_gui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "leaked = sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken6')))\n"
        "print(leaked)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert result.stdout.strip() == "[]"


def test_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout

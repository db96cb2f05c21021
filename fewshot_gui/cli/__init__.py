"""The headless command `fewshot`: train, evaluate, list models, label and undo."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.errors import FewShotError
from . import discover, duplicates, label, train
from . import map as map_command
from .progress import say


class _NoticeLine(logging.Handler):
    """The core's notices (a damaged cache rebuilt, say) as one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        say(f"fewshot: note: {record.getMessage()}")


def _show_core_notices() -> None:
    core = logging.getLogger("fewshot_gui")
    if not any(isinstance(handler, _NoticeLine) for handler in core.handlers):
        core.addHandler(_NoticeLine())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fewshot", description="Few-shot image labeling with ProtoNet and MAML."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    train.add_commands(commands)
    label.add_commands(commands)
    duplicates.add_commands(commands)
    map_command.add_commands(commands)
    discover.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # recorded on model cards as the command that made them
    _show_core_notices()
    try:
        return args.run(args)
    except FewShotError as error:
        print(f"fewshot: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

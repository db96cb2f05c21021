"""`fewshot discover`: candidate classes in a folder's unknown pile, as folders of links."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.checkpoint import DEFAULT_MODEL
from ..core.errors import ConfigError
from .label import add_model_options, add_support_options, check_batch_size, open_labeler
from .progress import ProgressBar, drive_with, interrupt_cancels, say

if TYPE_CHECKING:
    from ..core.discover import Discovery, Pile, Proposal
    from ..core.labeling import Labeler
    from ..core.support import SupportSet

PROPOSALS_FILE = "proposals.json"


def add_commands(commands: argparse._SubParsersAction) -> None:
    from ..core.discover import Discovery

    defaults = Discovery()
    command = commands.add_parser(
        "discover",
        help="propose new classes: groups of similar images among those no class explains",
        description="Label the images under --images from the examples (--support, --class or "
        "--session), cluster those left unknown, and write each dense cluster to --out as a "
        "folder of links, with proposals.json (each proposal's size, typical images and "
        "members). Without examples every image is clustered.",
    )
    add_support_options(command, required=False)
    command.add_argument(
        "--out", type=Path, required=True, help="a new or empty folder; nothing is overwritten"
    )
    command.add_argument(
        "--min-cluster-size",
        type=int,
        default=defaults.min_cluster_size,
        help=f"the fewest images a proposal may have (default {defaults.min_cluster_size})",
    )
    command.add_argument(
        "--typical",
        type=int,
        default=defaults.typical,
        help=f"typical images per proposal, the examples it would start from "
        f"(default {defaults.typical})",
    )
    add_model_options(command)
    command.set_defaults(run=run_discover)


def check_out(out: Path) -> None:
    """--out must be a new or empty folder in a folder that can be written."""
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; give a new or empty folder")
    existing = out if out.is_dir() else out.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: the folder {existing} does not exist")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {existing} (read-only or no access)")


def run_discover(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..core.discover import Discovery, propose
    from ..core.images import iter_image_files

    settings = replace(Discovery(), min_cluster_size=args.min_cluster_size, typical=args.typical)
    check_batch_size(args)
    check_out(args.out)
    given = args.support or args.classes or args.session
    if given:
        from .label import resolve_inputs

        support, images, corrections, unknown, model = resolve_inputs(args)
    elif args.images is None:
        raise ConfigError("give --images, the folder to look through")
    else:
        images, model = args.images, args.model
    files = list(iter_image_files(images))
    labeler = open_labeler(args, model or DEFAULT_MODEL)
    if labeler is None:
        say("stopped before discovering: nothing was written")
        return 130
    if given:
        labeler.set_unknown(unknown)
        pile = _labeled_pile(labeler, support, corrections, files, settings)
    else:
        pile = _embedded(labeler, files)
    if pile is None:
        say("stopped early: nothing was written")
        return 130
    paths, points, origin = pile if given else (*pile, None)
    proposals = drive_with(propose(paths, points, settings, origin=origin), {})
    args.out.mkdir(parents=True, exist_ok=True)
    write_proposals(proposals, args.out)
    say(
        f"{len(proposals)} proposals among {len(paths)} of {len(files)} images "
        f"({'unknown' if given else 'all'}): {args.out / PROPOSALS_FILE}"
    )
    return 0


def _embedded(labeler: Labeler, files: list[Path]) -> tuple[list[Path], Any] | None:
    """Every readable file of the folder and its points; None when Ctrl-C stopped it."""
    from ..core.discover import Embedding, embed_points
    from ..core.jobs import CancelToken

    token = CancelToken()
    bar = ProgressBar("embed", len(files))
    with interrupt_cancels(token.cancel):
        found = drive_with(
            embed_points(labeler, files, token), {Embedding: lambda e: bar.update(e.done)}
        )
    return None if token.cancelled else found


def _labeled_pile(
    labeler: Labeler,
    support: SupportSet,
    corrections: dict[Path, str],
    files: list[Path],
    settings: Discovery,
) -> Pile | None:
    """The folder labeled from the examples, then its unknown pile (`unknown_pile`)."""
    from ..core.discover import unknown_pile
    from ..core.jobs import CancelToken
    from ..core.labeling import LabelProgress

    report = drive_with(labeler.set_support(support), {})
    for _path, error in report.errors:
        say(f"example skipped: {error}")
    labeler.set_corrections(corrections)
    token = CancelToken()
    bar = ProgressBar("label", len(files))
    with interrupt_cancels(token.cancel):
        summary = drive_with(
            labeler.label(files, token), {LabelProgress: lambda e: bar.update(e.done)}
        )
    if summary.cancelled:
        return None
    return unknown_pile(labeler, settings)


def write_proposals(proposals: list[Proposal], out: Path) -> None:
    """One folder of links per proposal (`proposal-01`, ...) and `proposals.json`, in `out`
    (empty): symbolic links where the system allows them, else hard links, else copies."""
    from ..core.atomic import atomic_write

    made: set[str] = set()
    entries = []
    for number, proposal in enumerate(proposals, 1):
        folder = out / f"proposal-{number:02d}"
        folder.mkdir()
        for source in proposal.members:
            made.add(_place(source, _free_name(folder, source.name)))
        entries.append({"folder": folder.name, **proposal.to_json()})
    if made - {"symlink"}:
        say(f"note: symbolic links are not allowed in {out}; made {' and '.join(sorted(made))}")
    with atomic_write(out / PROPOSALS_FILE, errors="surrogateescape") as stream:
        json.dump(entries, stream, indent=2, ensure_ascii=False)
        stream.write("\n")


def _free_name(folder: Path, name: str) -> Path:
    """`folder / name`, or with a number before the suffix where two members share a name."""
    target, number = folder / name, 1
    while os.path.lexists(target):
        number += 1
        target = folder / f"{Path(name).stem}-{number}{Path(name).suffix}"
    return target


def _place(source: Path, target: Path) -> str:
    """Link `target` to `source` as the system allows; returns how."""
    try:
        os.symlink(os.path.abspath(source), target)
        return "symlink"
    except OSError:
        pass
    try:
        os.link(source, target)
        return "hard link"
    except OSError:
        shutil.copy2(source, target)
        return "copy"

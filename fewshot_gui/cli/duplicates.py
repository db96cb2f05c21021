"""`fewshot duplicates`: exact and near copies in a folder, written as groups to a CSV."""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from ..core.checkpoint import DEFAULT_MODEL
from ..core.errors import ConfigError, ExportError
from .label import MAX_BATCH_SIZE, add_model_options, open_labeler
from .progress import ProgressBar, drive_with, interrupt_cancels, say

CSV_FIELDS = ("group", "path")


def add_commands(commands: argparse._SubParsersAction) -> None:
    from ..core import duplicates

    command = commands.add_parser(
        "duplicates",
        help="find exact and near copies among the images of a folder",
        description="Group the images under --images that are copies of each other: the same "
        "bytes, or the same picture resized, recompressed, cropped a little, turned slightly "
        "or made gray. Writes one row (group, path) per file in a group of two or more.",
    )
    command.add_argument("--images", type=Path, required=True, help="folder to search (recursive)")
    command.add_argument(
        "--out", type=Path, required=True, help="the CSV to write, with columns group,path"
    )
    command.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (default: refuse)"
    )
    command.add_argument(
        "--min-cosine",
        type=float,
        default=duplicates.MIN_COSINE,
        help="features at least this similar are compared as thumbnails "
        f"(default {duplicates.MIN_COSINE})",
    )
    command.add_argument(
        "--min-match",
        type=float,
        default=duplicates.MIN_MATCH,
        help="aligned gray thumbnails correlating at least this are copies "
        f"(default {duplicates.MIN_MATCH}); lower finds harder edits and more false copies",
    )
    add_model_options(command)  # the embeddings `fewshot label` cached with --model serve
    command.set_defaults(run=run_duplicates)


def check_out(out: Path, overwrite: bool) -> None:
    """--out must be a new .csv (or --overwrite) in a folder that exists and can be written."""
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out}: name the file with .csv")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name")
    if os.path.lexists(out) and not overwrite:
        raise ConfigError(f"--out {out} exists; choose another name, or pass --overwrite")
    folder = out.parent
    if not folder.is_dir():
        raise ConfigError(f"--out {out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {folder} (read-only or no access)")


def write_groups(groups: list[list[Path]], out: Path) -> None:
    """One row (group number, path) per file, groups numbered from 1; replaces `out`
    atomically, so a failed write leaves no half file."""
    from ..core.atomic import atomic_write

    try:
        with atomic_write(out, newline="", errors="surrogateescape") as stream:
            writer = csv.writer(stream)
            writer.writerow(CSV_FIELDS)
            for number, members in enumerate(groups, 1):
                writer.writerows((number, str(path)) for path in members)
    except OSError as error:
        raise ExportError(f"could not write {out}: {error.strerror or error}") from error


def run_duplicates(args: argparse.Namespace) -> int:
    from ..core.duplicates import DuplicateProgress, find_duplicates, pipeline_embed
    from ..core.images import iter_image_files
    from ..core.jobs import CancelToken

    check_out(args.out, args.overwrite)
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be 1 to {MAX_BATCH_SIZE}, not {args.batch_size}")
    files = list(iter_image_files(args.images))
    labeler = open_labeler(args, args.model or DEFAULT_MODEL)
    if labeler is None:
        say("stopped before searching: nothing was written")
        return 130
    bars: dict[str, ProgressBar] = {}

    def on_progress(event: DuplicateProgress) -> None:
        if event.stage not in bars:
            bars[event.stage] = ProgressBar(event.stage, event.total)
        bars[event.stage].update(event.done)

    token = CancelToken()
    job = find_duplicates(
        files, pipeline_embed(labeler), token, min_cosine=args.min_cosine, min_match=args.min_match
    )
    with interrupt_cancels(token.cancel):
        result = drive_with(job, {DuplicateProgress: on_progress})
    for _path, reason in result.errors:
        say(f"unreadable: {reason}")
    if result.cancelled:
        say(f"stopped early: nothing was written to {args.out}")
        return 130
    groups = result.groups()
    write_groups(groups, args.out)
    say(
        f"{len(groups)} groups holding {sum(map(len, groups))} of {len(files)} files "
        f"({result.exact_pairs} exact and {result.near_pairs} near copy pairs), "
        f"{len(result.errors)} unreadable; wrote {args.out}"
    )
    return 0

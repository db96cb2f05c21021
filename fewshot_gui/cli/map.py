"""`fewshot map`: the folder map the app shows, drawn headless as a picture file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError
from .label import (
    add_model_options,
    add_support_options,
    check_batch_size,
    open_labeler,
    resolve_inputs,
)
from .progress import ProgressBar, drive_with, interrupt_cancels, say

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def add_commands(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "map",
        help="draw a map of a folder: similar images lie together, coloured by label",
        description="Label the images under --images from the examples, lay every image and "
        "example out in 2-D by its embedding (t-SNE), and draw the map to --out: one point per "
        "image coloured by its label, unknown grey, examples as outlined diamonds.",
    )
    add_support_options(command, required=True)
    command.add_argument("--out", type=Path, required=True, help="the picture: .png, .jpg, .webp")
    command.add_argument("--size", type=int, default=1600, help="width in pixels (default 1600)")
    add_model_options(command)
    command.set_defaults(run=run_map)


def check_out(out: Path, size: int) -> None:
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {out}: name the picture with one of {', '.join(IMAGE_SUFFIXES)}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {out.parent}")
    if not 400 <= size <= 10_000:
        raise ConfigError(f"--size must be 400 to 10000 pixels, not {size}")


def run_map(args: argparse.Namespace) -> int:
    from ..core.duplicates import pipeline_embed
    from ..core.folder_map import LAYOUT_STEPS, MapProgress, gather_features, layout
    from ..core.images import iter_image_files
    from ..core.jobs import CancelToken
    from ..core.labeling import LabelProgress
    from ..core.map_image import render_map
    from ..core.predictions import ERROR_INDEX

    check_out(args.out, args.size)
    check_batch_size(args)
    support, images, corrections, unknown, model = resolve_inputs(args)
    files = list(iter_image_files(images))
    labeler = open_labeler(args, model)
    if labeler is None:
        return 130
    labeler.set_unknown(unknown)
    drive_with(labeler.set_support(support), {})
    labeler.set_corrections(corrections)
    token = CancelToken()
    bar = ProgressBar("label", len(files))
    with interrupt_cancels(token.cancel):
        summary = drive_with(
            labeler.label(files, token), {LabelProgress: lambda e: bar.update(e.done)}
        )
    if summary.cancelled:
        say("stopped early: no map was drawn")
        return 130
    final = labeler.relabel()
    readable = np.flatnonzero(final.label != ERROR_INDEX)
    index = {name: i for i, name in enumerate(final.class_names)}
    example_of = {p: c.name for c in support.classes for p in c.examples}
    wanted = list(dict.fromkeys([*(final.paths[i] for i in readable), *example_of]))
    # The embeddings as the app's map reads them: through the disk cache labeling just
    # filled (with --no-cache the images are read and embedded a second time).
    with interrupt_cancels(token.cancel):
        found = drive_with(gather_features(wanted, pipeline_embed(labeler), token), {})
    if found is None:
        say("stopped early: no map was drawn")
        return 130
    paths, features = found
    bar = ProgressBar("map", LAYOUT_STEPS)
    with interrupt_cancels(token.cancel):
        folder_map = drive_with(
            layout(paths, features, token), {MapProgress: lambda e: bar.update(e.done, e.stage)}
        )
    if folder_map is None:
        say("stopped early: no map was drawn")
        return 130
    label_of = {final.paths[i]: int(final.label[i]) for i in readable}
    codes = np.array(
        [index.get(example_of.get(p, ""), label_of.get(p, -1)) for p in folder_map.paths],
        np.int64,
    )
    examples = np.array([p in example_of for p in folder_map.paths], bool)
    picture = render_map(folder_map.xy, codes, final.class_names, examples, size=args.size)
    picture.save(args.out)
    say(
        f"map of {len(folder_map)} images ({int(examples.sum())} examples) in "
        f"{len(final.class_names)} classes: {args.out}"
    )
    return 0

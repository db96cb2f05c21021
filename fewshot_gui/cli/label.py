"""`fewshot label` and `fewshot undo`: the labeling engine, headless."""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.checkpoint import DEFAULT_MODEL
from ..core.devices import DEVICE_CHOICES
from ..core.engines import ENGINE_CHOICES
from ..core.errors import ConfigError
from .progress import ProgressBar, drive_with, interrupt_cancels, say

if TYPE_CHECKING:
    from ..core.checkpoint import LoadedModel
    from ..core.cluster import RaySession
    from ..core.engine_choice import EngineChoice
    from ..core.labeling import Labeler
    from ..core.support import SupportSet

PAST = {"copy": "copied", "move": "moved", "link": "linked"}
MAX_BATCH_SIZE = 4096  # 64 is the default on a GPU; far more only exhausts memory
UNKNOWN_HELP = (
    "auto (default): calibrate from the examples themselves. Each example is left out and "
    "its distance to the rest is measured (how far a known class's image lies); each class "
    "is left out whole and its examples' distance to the other classes measured (how far an "
    "image of a missing class lies); the threshold separates the two. off: never unknown. "
    "A number: your own threshold on the same distance (the summary prints the auto one)."
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    label = commands.add_parser(
        "label",
        help="label every image in a folder from a few examples per class",
        description="Label every image under --images from the examples in --support, "
        "--class or a saved --session.",
    )
    add_support_options(label, required=True)
    label.add_argument("--out", type=Path, default=Path("labels.csv"), help=".csv, .json or .jsonl")
    label.add_argument(
        "--restart", action="store_true", help="ignore an existing --out instead of continuing it"
    )
    label.add_argument(
        "--inductive",
        action="store_true",
        help="label each image on its own; by default the model also learns from the whole "
        "folder (soft k-means over the unlabeled images, Ren et al. 2018) before the final labels",
    )
    add_model_options(label)
    label.add_argument(
        "--cluster",
        metavar="ray[=ADDRESS]",
        help="embed on a Ray cluster (pip install 'fewshot-gui[cluster]'): ray starts a local "
        "instance for this run, ray=ADDRESS joins one; every node must see the images at the "
        "same path (docs/scale.md)",
    )
    label.add_argument("--export", choices=("copy", "move", "link"), help="sort files into --dest")
    label.add_argument("--dest", type=Path, help="destination of --export: DEST/CLASS/FILE")
    label.add_argument(
        "--include-unknown", action="store_true", help="export unknown images to DEST/unknown"
    )
    label.add_argument(
        "--dry-run", action="store_true", help="print what --export would do; change nothing"
    )
    label.set_defaults(run=run_label)

    undo = commands.add_parser("undo", help="undo an export from its journal")
    undo.add_argument("journal", type=Path, help="the .journal.jsonl file an export wrote")
    undo.set_defaults(run=run_undo)


def add_support_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--support, --class or --session, with --images, --corrections and --unknown: what
    `resolve_inputs` reads."""
    support = parser.add_mutually_exclusive_group(required=required)
    support.add_argument("--support", type=Path, help="one subfolder of examples per class")
    support.add_argument(
        "--class",
        dest="classes",
        action="append",
        metavar="NAME=FILE,FILE",
        help="a class and its example files (repeat for each class)",
    )
    support.add_argument(
        "--session",
        type=Path,
        help="a session the app saved (.fewshot.json, see docs/session-format.md): its classes, "
        "corrections, threshold, model and folder, each unless given here",
    )
    parser.add_argument(
        "--images", type=Path, help="folder to label (recursive); default: the session's"
    )
    parser.add_argument(
        "--corrections",
        type=Path,
        help="CSV with columns path,label (a class or unknown): each image is pinned to its "
        "label, and a class correction is also an example of its class, as in the app",
    )
    parser.add_argument("--unknown", help=UNKNOWN_HELP + " Default: the session's, else auto.")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --device, --engine, --batch-size and --no-cache: what `open_labeler` reads."""
    parser.add_argument("--model", help=f"default: the session's, else {DEFAULT_MODEL}")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="what runs the model: auto (default) times the float32 engines once per model "
        "and device and keeps the fastest; the -bf16/-fp16 ones trade exactness for speed",
    )
    parser.add_argument(
        "--batch-size", type=int, help="images per batch (default 16 on the CPU, 64 on a GPU)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="do not cache embeddings or engine exports on disk"
    )


def open_labeler(
    args: argparse.Namespace, model: str, *, transductive: bool = True, measure: bool = True
) -> Labeler | None:
    """The Labeler of `model` the flags of `add_model_options` ask for; a first run on this
    machine measures the engines (`measure_in_child`) unless `measure` is off. None when
    Ctrl-C stopped the measurement."""
    from ..core.checkpoint import load_model
    from ..core.labeling import Labeler
    from ..core.paths import cache_dir

    loaded = load_model(model)
    labeler = Labeler(
        loaded,
        device=args.device,
        cache_dir=None if args.no_cache else cache_dir(),
        batch_size=args.batch_size,
        engine=args.engine,
        transductive=transductive,
    )
    if labeler.engine_choice.measure_later and measure:
        measured = measure_in_child(loaded, args, labeler.batch_size)
        if measured is None:
            return None
        labeler.use_engine(measured)
    say(f"model {loaded.name} on {labeler.device_name}, engine {labeler.engine_reason}")
    return labeler


def parse_unknown(value: str | float) -> str | float:
    """--unknown (or a session's threshold): auto, off or a finite number."""
    if value in ("auto", "off"):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ConfigError(
            f"--unknown (or a session's threshold) must be auto, off or a finite number, "
            f"not {value!r}"
        )
    return number


def check_batch_size(args: argparse.Namespace) -> None:
    """--batch-size, as `add_model_options` adds it, within its bounds."""
    if args.batch_size is not None and not 1 <= args.batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be 1 to {MAX_BATCH_SIZE}, not {args.batch_size}")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse a bad flag value before anything is read, not after a whole run."""
    from ..core.manifest import MANIFEST_SUFFIXES

    check_batch_size(args)
    if args.out.suffix.lower() not in MANIFEST_SUFFIXES:
        raise ConfigError(
            f"--out {args.out}: name the manifest with one of {', '.join(MANIFEST_SUFFIXES)}"
        )
    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a folder; give a file name")
    folder = args.out.parent
    if not folder.is_dir():
        raise ConfigError(f"--out {args.out}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {args.out}: cannot write in {folder} (read-only or no access)")
    if args.export and args.dest is None:
        raise ConfigError("--export needs --dest, the folder to sort files into")


def check_dest(dest: Path, images: Path, *, export: bool) -> None:
    """--dest must lie outside --images (files under it are skipped as already sorted, so
    --images itself or a folder above it would leave nothing to label), and with --export
    it must be a folder that exists or can be made."""
    real_dest, real_images = Path(os.path.realpath(dest)), Path(os.path.realpath(images))
    if real_images.is_relative_to(real_dest):
        where = "is" if real_dest == real_images else "contains"
        raise ConfigError(
            f"--dest {dest} {where} --images {images}: files already under --dest are "
            "skipped, so nothing would be labeled; choose a --dest outside --images"
        )
    if not export:
        return
    existing = real_dest
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--dest {dest}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--dest {dest}: cannot write in {existing} (read-only or no access)")


def parse_classes(specs: list[str]) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, files = spec.partition("=")
        if not sep or not name or not files:
            raise ConfigError(f"--class takes NAME=FILE,FILE; got {spec!r}")
        classes.setdefault(name, []).extend(Path(f) for f in files.split(","))
    return classes


def measure_in_child(
    loaded: LoadedModel, args: argparse.Namespace, batch_size: int
) -> EngineChoice | None:
    """The first run of a model on this machine times the engines, in a child process with a
    time cap, so that no engine can hang this one and Ctrl-C always works; None after Ctrl-C."""
    from ..core.engine_choice import EngineProbe, measure_engines
    from ..core.jobs import CancelToken
    from ..core.paths import cache_dir

    engines_dir = None if args.no_cache else cache_dir() / "engines"
    probe = EngineProbe(loaded, cache_dir=engines_dir, batch_size=batch_size)
    token = CancelToken()
    with interrupt_cancels(token.cancel):
        return drive_with(measure_engines(probe, token), {})


def resolve_inputs(
    args: argparse.Namespace,
) -> tuple[SupportSet, Path, dict[Path, str], str | float, str]:
    """(support set, folder, corrections, unknown, model) from the flags and a --session.

    Corrections come from the session, then --corrections (which wins); the support set
    holds each class correction as an example of its class, as the app sends it.
    """
    from ..core.corrections import apply_corrections, read_corrections
    from ..core.session import load_session
    from ..core.support import SupportSet, hidden_folders

    session = load_session(args.session) if args.session else None
    if session is not None:
        classes = {name: examples for name, examples in session.classes if examples}
        if not classes:
            raise ConfigError(f"the session {args.session} has no class with examples")
        support = SupportSet.from_mapping(classes)
    elif args.support:
        support = SupportSet.from_folder(args.support)
        hidden = hidden_folders(args.support)
        if hidden:
            say(f"note: hidden folders are not classes; skipped {', '.join(hidden)}")
    else:
        support = SupportSet.from_mapping(parse_classes(args.classes))
    images = args.images or (session.folder if session else None)
    if images is None:
        raise ConfigError("give --images, the folder to label (the session names none)")
    corrections = dict(session.corrections) if session else {}
    if args.corrections:
        corrections.update(read_corrections(args.corrections))
    if args.unknown is not None:
        unknown = parse_unknown(args.unknown)
    else:
        unknown = parse_unknown(session.threshold) if session else "auto"
    model = args.model or (session.model if session and session.model else DEFAULT_MODEL)
    return apply_corrections(support, corrections), images, corrections, unknown, model


def run_label(args: argparse.Namespace) -> int:
    if args.cluster is None:
        return _run_label(args, None)
    from ..core.cluster import parse_cluster, ray_session

    address = parse_cluster(args.cluster)
    check_flags(args)
    with ray_session(address, say) as cluster:
        return _run_label(args, cluster)


def _run_label(args: argparse.Namespace, cluster: RaySession | None) -> int:
    from ..core.images import iter_image_files
    from ..core.jobs import CancelToken
    from ..core.labeling import LabelProgress
    from ..core.manifest import read_manifest, write_manifest
    from ..core.support import SupportClass, SupportSet

    check_flags(args)
    support, images, corrections, unknown, model = resolve_inputs(args)
    if args.dest is not None:
        check_dest(args.dest, images, export=bool(args.export))
    dest = args.dest.resolve() if args.dest else None
    # realpath, not resolve: a file link loop is that file's error, not the end of the run.
    files = [
        p
        for p in iter_image_files(images)
        if not (dest and Path(os.path.realpath(p)).is_relative_to(dest))
    ]
    # A correction names a file of the folder however it is spelled (relative, absolute).
    listed = {os.path.abspath(p): p for p in files}
    corrections = {listed.get(os.path.abspath(p), p): c for p, c in corrections.items()}
    support = SupportSet(
        tuple(
            SupportClass(c.name, tuple(listed.get(os.path.abspath(p), p) for p in c.examples))
            for c in support.classes
        )
    )
    # A cluster's workers measure their own engines.
    labeler = open_labeler(args, model, transductive=not args.inductive, measure=cluster is None)
    if labeler is None:
        say("stopped before labeling: nothing was written")
        return 130
    loaded = labeler.loaded
    labeler.set_unknown(unknown)
    report = drive_with(labeler.set_support(support), {})
    labeler.set_corrections(corrections)
    for _path, error in report.errors:
        say(f"example skipped: {error}")
    if cluster is not None:
        engine = labeler.engine
        labeler.embed_through(
            lambda base: cluster.pipeline(
                base, loaded, engine, args.engine, keep_exports=not args.no_cache
            )
        )
    if report.mismatch:
        say(f"note: {report.mismatch}")
    for cls in report.classes:
        loo = "n/a" if cls.loo_accuracy is None else f"{100 * cls.loo_accuracy:.0f}%"
        notes = "; ".join(cls.warnings)
        say(f"  {cls.name}: {cls.examples} examples, leave-one-out {loo} {notes}")
    auto = "none (add more examples)" if report.threshold is None else f"{report.threshold:.4g}"
    say(f"unknown: {unknown} (auto threshold {auto})")
    if corrections:
        pinned = sum(p in listed.values() for p in corrections)
        say(f"corrections: {len(corrections)}, {pinned} of them on files in {images}")

    rows = {}
    if args.out.exists() and not args.restart:
        rows = {row.path: row for row in read_manifest(args.out)}
        say(
            f"continuing {args.out}: {len(rows)} files already labeled; they are read again "
            "(from the cache if on) since the final labels learn from the whole folder"
        )
    meta = {
        "model": loaded.name,
        "support": [c.name for c in support.classes],
        "unknown": unknown,
        "corrections": len(corrections),
    }
    token = CancelToken()
    bar = ProgressBar("label", len(files))
    last_write = time.perf_counter()

    def on_progress(event: LabelProgress) -> None:
        nonlocal last_write
        for prediction in event.new:
            rows[str(prediction.path)] = prediction.manifest_row()
        bar.update(event.done, f"{event.images_per_second:.0f} img/s")
        if time.perf_counter() - last_write > 5:
            write_manifest(rows.values(), args.out, meta=meta)
            last_write = time.perf_counter()

    # Every file, in the folder's order, also those a stopped run labeled: the final labels
    # are a function of the whole folder, so a continued run ends as an uninterrupted one.
    with interrupt_cancels(token.cancel):
        summary = drive_with(labeler.label(files, token), {LabelProgress: on_progress})
    final = labeler.relabel()  # the final, transductive word on the folder
    if not summary.cancelled:
        rows = {}  # exactly the folder's files: rows of files gone since are dropped
    for prediction in final:
        rows[str(prediction.path)] = prediction.manifest_row()
    write_manifest(rows.values(), args.out, meta=meta)
    if cluster is not None:
        for line in cluster.summary():
            say(line)
    labeled, unknown, unreadable = final.counts()
    say(
        f"{labeled} labeled, {unknown} unknown, {unreadable} unreadable "
        f"in {summary.seconds:.1f}s; manifest {args.out}"
    )
    if summary.cancelled:
        say("stopped early; run the same command again to continue")
        return 130
    if args.export:
        return _export(args, [(Path(r.path), r.label) for r in rows.values() if r.label])
    return 0


def _export(args: argparse.Namespace, items: list[tuple[Path, str]]) -> int:
    from ..core.errors import ExportError
    from ..core.export import (
        DiskFullError,
        default_journal_path,
        execute_export,
        missing_sources,
        plan_export,
    )
    from ..core.jobs import CancelToken

    plan = plan_export(items, args.dest, include_unknown=args.include_unknown)
    if args.dry_run:
        missing = {op.source for op in missing_sources(plan)}
        for op in plan:
            if op.source in missing:
                print(f"missing {op.source} (no longer there)")
            else:
                print(f"{args.export} {op.source} -> {op.target}")
        gone = f"; {len(missing)} listed files no longer exist, not counted" if missing else ""
        count = len(plan) - len(missing)
        say(f"dry run: {count} files would be {PAST[args.export]} into {args.dest}{gone}")
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    journal = default_journal_path(args.dest)
    token = CancelToken()
    bar = ProgressBar(args.export, len(plan))
    failures: list[str] = []

    def on_file(event: object) -> None:
        bar.update(event.index)
        if not event.ok:
            failures.append(f"{event.op.source}: {event.error}")

    from ..core.export import ExportEvent

    try:
        with interrupt_cancels(token.cancel):
            summary = drive_with(
                execute_export(plan, args.export, journal, cancel=token), {ExportEvent: on_file}
            )
    except DiskFullError as error:
        raise ExportError(f"{error}\nundo with: fewshot undo {error.journal}") from error
    for failure in failures:
        say(f"not exported: {failure}")
    say(
        f"{summary.done} files {PAST[args.export]} into {args.dest}, {summary.failed} failed; "
        f"undo with: fewshot undo {journal}"
    )
    return 130 if summary.cancelled else (1 if summary.failed else 0)


def run_undo(args: argparse.Namespace) -> int:
    from ..core.export_undo import UndoEvent, undo_export

    problems: list[str] = []

    def on_event(event: UndoEvent) -> None:
        elsewhere = event.restored_to not in (None, event.source)
        if event.action in ("failed", "refused", "kept") or elsewhere:
            problems.append(f"{event.target}: {event.action} {event.message}")

    summary = drive_with(undo_export(args.journal), {UndoEvent: on_event})
    for problem in problems:
        say(problem)
    if summary.already_undone:
        say(f"{args.journal} was already undone; nothing to do")
    else:
        refused = (
            f", {summary.refused} refused (left alone: the journal cannot show its export "
            "made them)"
            if summary.refused
            else ""
        )
        say(f"undone: {args.journal}, {summary.failed - summary.refused} failed{refused}")
    return 1 if summary.failed else 0

"""Labeling speed: our pipeline beside a plain reference and the engine's model-only bound.

Prints, each against its baseline measured in the same run:
  throughput  images/s labeling a folder with the default photo model, beside a plain
              reference (PIL open, convert, resize, one batch at a time, torch float32, no
              overlap) and beside the model-only bound of the engine in use (the same
              forward pass on ready pixels);
  relabel     milliseconds for relabel() and set_support() + relabel() over 100,000 cached
              embeddings (the folder's own, repeated with noise), through half-precision
              copies of the points beside float32 in torch's default matrix product, with
              how far their results differ;
  memory      peak RSS labeling 20,000 images (copies of the folder's files), sampled as
              it goes, in a fresh process;
  cost        with --compare MODEL..., the model-only bound of each model in turn (three
              rounds, the best of each), and each one's cost relative to the first.

    python benchmarks/label_speed.py --data ../shared/data/caltech101-dev
    python benchmarks/label_speed.py --data ../shared/data/caltech101-dev --only throughput
    python benchmarks/label_speed.py --data ../shared/data/caltech101-dev --only cost \
        --engine onnxruntime --compare photo-lite0-protonet photo-lite2-protonet
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, LoadedModel, load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.devices import describe_machine
from fewshot_gui.core.engines import embed_stream
from fewshot_gui.core.evaluation import pool_inputs
from fewshot_gui.core.images import iter_image_files
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet, _Embedded
from fewshot_gui.core.paths import cache_dir
from fewshot_gui.core.transforms import pixels_for, to_tensor

REFERENCE_BATCH = 32  # the plain reference's batch, as the issue measured it


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def support_set(root: Path, classes: int = 5, shots: int = 5) -> SupportSet:
    folders = sorted(p for p in root.iterdir() if p.is_dir())[:classes]
    return SupportSet.from_mapping({f.name: sorted(iter_image_files(f))[:shots] for f in folders})


def labeler_without_embedding_cache(
    loaded: LoadedModel, scratch: Path, engine: str, batch_size: int | None
) -> Labeler:
    """A Labeler whose embedding cache starts empty but whose engine export is the user's."""
    engines = cache_dir() / "engines"
    engines.mkdir(parents=True, exist_ok=True)
    (scratch / "engines").symlink_to(engines)
    return Labeler(loaded, device="cpu", cache_dir=scratch, engine=engine, batch_size=batch_size)


@torch.no_grad()
def reference_rate(loaded: LoadedModel, paths: list[Path], batch_size: int) -> float:
    """PIL open, convert, resize; torch float32; one batch at a time, nothing overlapped."""
    spec, model = loaded.spec, loaded.model.cpu().eval()
    started = time.perf_counter()
    for start in range(0, len(paths), batch_size):
        pixels = []
        for path in paths[start : start + batch_size]:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((spec.input_size, spec.input_size))
            pixels.append(np.asarray(rgb))
        model.embed(to_tensor(np.stack(pixels), spec))
    return len(paths) / (time.perf_counter() - started)


def bound_rate(labeler: Labeler, paths: list[Path], seconds: float) -> float:
    """The engine alone on decoded pixels: what labeling could reach with free decoding.

    Two ways, the faster counts: each batch split over all streams at once (`embed`), and
    batches streamed whole, one per stream, as labeling feeds them (`embed_stream`). Passes
    over the same pixels repeat for at least `seconds` each, to average out the load.
    """
    pixels = np.stack([pixels_for(p, labeler.spec) for p in paths])
    size = labeler.batch_size
    batches = [pixels[start : start + size] for start in range(0, len(pixels), size)]
    engine = labeler.engine
    engine.embed(batches[0])

    def split() -> int:
        return sum(len(engine.embed(batch)) for batch in batches)

    def streamed() -> int:
        return sum(len(batch) for batch, _ in embed_stream(engine, batches, lambda b: b))

    rates = []
    for run in (split, streamed):
        done, started = 0, time.perf_counter()
        while done == 0 or time.perf_counter() - started < seconds:
            done += run()
        rates.append(done / (time.perf_counter() - started))
    return max(rates)


def throughput(args: argparse.Namespace) -> None:
    loaded = load_model(args.model)
    paths = list(iter_image_files(args.data))
    if args.images:
        paths = random.Random(0).sample(paths, min(args.images, len(paths)))
    sample = random.Random(1).sample(paths, min(args.reference_images, len(paths)))
    with tempfile.TemporaryDirectory() as scratch:
        labeler = labeler_without_embedding_cache(
            loaded, Path(scratch), args.engine, args.batch_size
        )
        print(f"engine {labeler.engine_name}, batch {labeler.batch_size}: {labeler.engine_reason}")
        drive(labeler.set_support(support_set(args.data)))
        print(f"load before: {load()}")
        reference = reference_rate(loaded, sample, REFERENCE_BATCH)
        bound_before = bound_rate(labeler, sample, args.bound_seconds)
        summary = drive(labeler.label(paths))
        ours = summary.total / summary.seconds
        bound_after = bound_rate(labeler, sample, args.bound_seconds)
        print(f"load after:  {load()}")
    bound = max(bound_before, bound_after)
    print(
        f"labeling {summary.total} images ({summary.errors} unreadable): ours {ours:6.1f} img/s"
        f" | reference {reference:5.1f} img/s ({len(sample)} images), x{ours / reference:.1f}"
        f" | {labeler.engine_name} model-only bound {bound_before:.1f} before,"
        f" {bound_after:.1f} after: {100 * ours / bound:.0f}% of the higher"
    )


def relabel(args: argparse.Namespace) -> None:
    """Re-labeling `--relabel-rows` cached embeddings after a support change.

    The rows are the folder's real embeddings (its images' cached backbone features through
    the model's neck: 1,280 per image for Lite0 or Lite2, 2,560 for the two together),
    repeated with 1% noise up to the count, so margins between classes and clutter are as a
    real folder has them. The baseline, same run: the same scoring in float32 on torch's
    default matrix product instead of FBGEMM's half-precision one.
    """
    loaded = load_model(args.model)
    # Every image, read as `fewshot train --val-holdout K` splits them, so the features that
    # training cached serve here too.
    pools = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)
    features = torch.cat(
        [drive(pool_inputs(loaded.model, loaded.spec, pool, cache_dir())) for pool in pools]
    )
    with torch.no_grad():
        real = loaded.model.encoder.neck(features).numpy()
    rng = np.random.default_rng(0)
    count = args.relabel_rows
    rows = real[np.arange(count) % len(real)]
    rows = rows + 0.01 * rows.std() * rng.standard_normal(rows.shape, dtype=np.float32)
    paths = [Path(f"/synthetic/{i:06d}.jpg") for i in range(count)]
    labelers = {}
    for name, half in (("half copies", True), ("float32", False)):
        labeler = Labeler(load_model(args.model), device="cpu", engine="torch", half=half)
        drive(labeler.set_support(support_set(args.data, classes=5)))
        for start in range(0, count, 10_000):
            stop = min(start + 10_000, count)
            labeler._store(
                _Embedded(paths[start:stop], list(rows[start:stop]), [""] * (stop - start))
            )
        labelers[name] = labeler

    def best_ms(job, repeats: int = 7) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            job()
            times.append(time.perf_counter() - started)
        return 1000 * min(times)

    changed = support_set(args.data, classes=6)
    print(f"load before: {load()}")
    results = {}
    for name, labeler in labelers.items():
        labeler.transductive = True
        relabel_ms = best_ms(labeler.relabel)
        both_ms = best_ms(lambda: (drive(labeler.set_support(changed)), labeler.relabel()))  # noqa: B023
        labeler.transductive = False
        scoring_ms = best_ms(labeler.relabel)
        results[name] = (relabel_ms, both_ms, scoring_ms)
        print(
            f"relabel {count} cached embeddings, {name}: relabel() {relabel_ms:.1f} ms "
            f"(of which scoring {scoring_ms:.1f} ms, transductive refinement the rest), "
            f"set_support + relabel {both_ms:.1f} ms (best of 7)"
        )
    print(f"load after:  {load()}")
    for labeler in labelers.values():
        labeler.transductive = False
    fast, exact = labelers["half copies"].relabel(), labelers["float32"].relabel()
    print(
        f"half copies vs float32: same label {int((fast.label == exact.label).sum())}/{count}, "
        f"same runner-up {int((fast.runner_up == exact.runner_up).sum())}/{count}, "
        f"max confidence difference {np.abs(fast.confidence - exact.confidence).max():.1e}, "
        f"unknown {int((exact.label == -1).sum())}; relabel() x"
        f"{results['float32'][0] / results['half copies'][0]:.2f} faster"
    )


def memory(args: argparse.Namespace) -> None:
    """Label `--memory-images` copies of the folder's images in a child process."""
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        folder = Path(scratch) / "images"
        sources = list(iter_image_files(args.data))
        for i in range(args.memory_images):
            source = sources[i % len(sources)]
            target = folder / f"copy{i // len(sources)}" / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        command = [sys.executable, __file__, "--data", str(args.data), "--model", args.model]
        command += ["--engine", args.engine, "--memory-child", str(folder)]
        subprocess.run(command, check=True)


def memory_child(args: argparse.Namespace) -> None:
    loaded = load_model(args.model)
    paths = list(iter_image_files(args.memory_child))
    with tempfile.TemporaryDirectory() as scratch:
        labeler = labeler_without_embedding_cache(
            loaded, Path(scratch), args.engine, args.batch_size
        )
        drive(labeler.set_support(support_set(args.data)))
        samples: list[tuple[int, float]] = []
        peaks: list[tuple[int, float]] = []  # (images done, peak so far) where the peak rose
        done = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                samples.append((done[0], rss_mb()))
                if not peaks or peak_rss_mb() > peaks[-1][1] + 20:
                    peaks.append((done[0], peak_rss_mb()))

        before = rss_mb()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        print(f"load before: {load()}")
        summary = drive(labeler.label(paths), lambda e: done.__setitem__(0, e.done))
        stop.set()
        sampler.join()
        print(f"load after:  {load()}")
    marks = [samples[int(f * (len(samples) - 1))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)]
    growth = ", ".join(f"{n} images {mb:.0f} MB" for n, mb in marks)
    per_image = (marks[-1][1] - marks[0][1]) / max(1, marks[-1][0] - marks[0][0]) * 1024
    print(
        f"memory labeling {summary.total} images at {summary.total / summary.seconds:.0f} "
        f"img/s: RSS {before:.0f} MB after loading, peak {peak_rss_mb():.0f} MB | {growth} "
        f"| growth {per_image:.1f} KB per image (the kept embeddings)"
    )
    print("peak rose at: " + ", ".join(f"{n} images {mb:.0f} MB" for n, mb in peaks))


def cost(args: argparse.Namespace) -> None:
    """The model-only bound of each `--compare` model, measured in turn so that the load
    falls on all alike; the best of three rounds, and its cost relative to the first model."""
    paths = random.Random(1).sample(list(iter_image_files(args.data)), args.reference_images)
    rates: dict[str, list[float]] = {name: [] for name in args.compare}
    with tempfile.TemporaryDirectory() as scratch:
        labelers = {}
        for name in args.compare:
            (Path(scratch) / name).mkdir()
            labelers[name] = labeler_without_embedding_cache(
                load_model(name), Path(scratch) / name, args.engine, args.batch_size
            )
        print(f"engine {labelers[args.compare[0]].engine_name}; load before: {load()}")
        for _ in range(3):
            for name, labeler in labelers.items():
                rates[name].append(bound_rate(labeler, paths, args.bound_seconds / 2))
        print(f"load after:  {load()}")
    first = max(rates[args.compare[0]])
    for name, found in rates.items():
        print(
            f"{name}: model-only {', '.join(f'{r:.1f}' for r in found)} images/s, best "
            f"{max(found):.1f}: cost {first / max(found):.2f} x {args.compare[0]}'s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder of class folders")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--batch-size", type=int, help="default: the labeler's")
    parser.add_argument("--images", type=int, default=0, help="label only N (default all)")
    parser.add_argument("--reference-images", type=int, default=320)
    parser.add_argument("--bound-seconds", type=float, default=8.0)
    parser.add_argument("--relabel-rows", type=int, default=100_000)
    parser.add_argument("--holdout", type=int, default=20, help="relabel: features cached as split")
    parser.add_argument("--memory-images", type=int, default=20_000)
    parser.add_argument("--scratch", type=Path, default=None, help="where to copy images")
    parser.add_argument("--only", choices=("throughput", "relabel", "memory", "cost"))
    parser.add_argument("--compare", nargs="+", default=[], metavar="MODEL", help="for cost")
    parser.add_argument("--memory-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args)
        return
    print(f"{describe_machine()}, {torch.get_num_threads()} threads")
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')}, load {load()}")
    for part, run in (("throughput", throughput), ("relabel", relabel), ("memory", memory)):
        if args.only in (None, part):
            run(args)
    if args.only == "cost":
        cost(args)


if __name__ == "__main__":
    main()

"""Does discovery find the classes hidden in the unknown pile? Seeded draws on caltech101-dev.

Each draw takes 10 of the classes the model never trained on (the `--holdout` split, as
training made it): 5 are given as classes of `--shot` examples, 5 are hidden, `--per-class`
photos each, among the images to label together with every other photo of the 5 given
classes. The folder is labeled as the app does (`Labeler.relabel`, transductive), the images
called `unknown` are clustered (`core.discover.propose`), and a hidden class counts as found
when one proposal holds at least `--need` of its photos at a purity of at least `--purity`.
Target: at least 4 of the 5 found in every draw.

Embeddings come from the Labeler's disk cache (`--cache`), so only the first run reads photos.
`--sample`, `--min-cluster-size`, `--min-samples` override the shipped `Discovery()` settings:
compare them on other seeds (`--seed 100`) than those you report.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/discover_quality.py --draws 10 --speed-rows 100000
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.discover import (
    Discovery,
    Proposal,
    find_clusters,
    propose,
    unknown_pile,
)
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import Labeler, SupportSet

GIVEN, HIDDEN = 5, 5


def draw(
    held: ImagePool, seed: int, shot: int, per_class: int
) -> tuple[dict[str, list[Path]], list[Path], dict[Path, str]]:
    """(examples per given class, the folder to label, the hidden class of each hidden photo)."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Path]] = {n: [] for n in held.class_names}
    for path, label in zip(held.paths, held.labels, strict=True):
        by_class[held.class_names[label]].append(path)
    eligible = sorted(n for n, ps in by_class.items() if len(ps) >= max(per_class, shot + 5))
    chosen = rng.choice(eligible, GIVEN + HIDDEN, replace=False).tolist()
    examples: dict[str, list[Path]] = {}
    folder: list[Path] = []
    hidden: dict[Path, str] = {}
    for name in chosen[:GIVEN]:
        photos = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
        examples[name] = photos[:shot]
        folder += photos[shot:]
    for name in chosen[GIVEN:]:
        photos = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
        folder += photos[:per_class]
        hidden.update(dict.fromkeys(photos[:per_class], name))
    return examples, sorted(folder), hidden


def found(proposals: list[Proposal], hidden: dict[Path, str], need: int, purity: float) -> set[str]:
    """The hidden classes some proposal holds at least `need` photos of at `purity`."""
    names = set()
    for proposal in proposals:
        counts: dict[str, int] = {}
        for path in proposal.members:
            if path in hidden:
                counts[hidden[path]] = counts.get(hidden[path], 0) + 1
        for name, count in counts.items():
            if count >= need and count >= purity * proposal.size:
                names.add(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/caltech101-dev"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--holdout", type=int, default=20, help="as the model was trained")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--need", type=int, default=20)
    parser.add_argument("--purity", type=float, default=0.9)
    parser.add_argument("--margin", type=float, help="share of the threshold (see unknown_pile)")
    parser.add_argument("--sample", type=int, help="most points HDBSCAN reads")
    parser.add_argument("--min-cluster-size", type=int)
    parser.add_argument("--min-samples", type=int, help="0: as min-cluster-size")
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fewshot-discover-cache"))
    parser.add_argument("--verbose", action="store_true", help="print every draw's proposals")
    parser.add_argument(
        "--speed-rows", type=int, default=0, help="also time find_clusters on N faked points"
    )
    args = parser.parse_args()

    settings = Discovery()
    if args.margin is not None:
        settings = replace(settings, margin=args.margin)
    if args.sample is not None:
        settings = replace(settings, sample=args.sample)
    if args.min_cluster_size is not None:
        settings = replace(settings, min_cluster_size=args.min_cluster_size)
    if args.min_samples is not None:
        settings = replace(settings, min_samples=args.min_samples or None)
    _, held = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)
    labeler = Labeler(load_model(args.model), cache_dir=args.cache, engine=args.engine)
    print(f"{settings}; {args.draws} draws from seed {args.seed}")
    scores, label_s, discover_s, piles, counts = [], [], [], [], []
    for seed in range(args.seed, args.seed + args.draws):
        examples, folder, hidden = draw(held, seed, args.shot, args.per_class)
        labeler.forget()
        started = time.perf_counter()
        drive(labeler.set_support(SupportSet.from_mapping(examples)))
        drive(labeler.label(folder))
        paths, points, origin = unknown_pile(labeler, settings)
        label_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        proposals = drive(propose(paths, points, settings, origin=origin))
        discover_s.append(time.perf_counter() - started)
        names = found(proposals, hidden, args.need, args.purity)
        in_pile = sum(p in hidden for p in paths)
        scores.append(len(names))
        piles.append(len(paths))
        counts.append(len(proposals))
        print(
            f"draw {seed}: found {len(names)}/{HIDDEN} ({', '.join(sorted(names)) or '-'}); "
            f"pile {len(paths)} of {len(folder)} images, {in_pile} of {len(hidden)} hidden "
            f"photos in it; {len(proposals)} proposals; cluster {discover_s[-1]:.2f} s"
        )
        if args.verbose:
            missed = sorted(set(hidden.values()) - names)
            print(f"  given {sorted(examples)}; missed {missed}")
            for proposal in proposals:
                tally: dict[str, int] = {}
                for path in proposal.members:
                    name = hidden.get(path, "given:" + path.parent.name)
                    tally[name] = tally.get(name, 0) + 1
                top = sorted(tally.items(), key=lambda item: -item[1])[:3]
                print(f"    {proposal.size:4d} {proposal.cohesion:.2f} {top}")
    found_mean, worst = float(np.mean(scores)), int(np.min(scores))
    print(
        f"\nfound {found_mean:.1f}/{HIDDEN} on average, worst draw {worst}/{HIDDEN} "
        f"(target >= 4 in every draw: {'met' if worst >= 4 else 'NOT met'}); "
        f"draws at >= 4: {sum(s >= 4 for s in scores)}/{len(scores)}; "
        f"pile {np.mean(piles):.0f} images, {np.mean(counts):.1f} proposals on average; "
        f"clustering {np.mean(discover_s):.2f} s mean, {np.max(discover_s):.2f} s max; "
        f"labeling (cached embeddings) {np.mean(label_s):.2f} s mean"
    )
    if args.speed_rows:
        clustering_speed(labeler, held, args.speed_rows, settings)


def clustering_speed(labeler: Labeler, held: ImagePool, rows: int, settings: Discovery) -> None:
    """Seconds of `find_clusters` over `rows` points: the held-out photos' points repeated
    with 1% noise (as label_speed.py fakes rows), best of 3."""
    drive(labeler.set_support(SupportSet.from_mapping({"any": [held.paths[0]]})))
    labeler.forget()
    drive(labeler.label(list(held.paths)))
    points = labeler.stored_points(np.arange(len(held.paths)))
    rng = np.random.default_rng(0)
    faked = points[np.arange(rows) % len(points)]
    faked = faked + 0.01 * faked.std() * rng.standard_normal(faked.shape, dtype=np.float32)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        clusters = find_clusters(faked, settings)
        times.append(time.perf_counter() - started)
    print(
        f"find_clusters over {rows} points of {faked.shape[1]} dimensions: best of 3 "
        f"{min(times):.2f} s ({len(clusters.members)} clusters)"
    )


if __name__ == "__main__":
    main()

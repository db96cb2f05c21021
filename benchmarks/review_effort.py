"""How much a person's corrections fix: a simulated reviewer on held-out caltech101-dev tasks.

Each task: 5 classes of 5 examples, about 40 images per class to label and 40 clutter photos
of other held-out classes, all in one folder. The reviewer walks the labels least sure first
and corrects the first wrong one it meets (to its class, or to `unknown` for clutter); the
folder is labeled again after each correction. Two arms run on the same tasks:

- today: a correction only becomes an example of its class (nothing pinned, and clutter
  cannot be corrected, so the reviewer passes over wrong clutter labels);
- pinned: the same examples, plus `Labeler.set_corrections` (pinned labels, `unknown` too).

Accuracy counts every image in the folder: in-class images right, clutter `unknown`.
Embeddings come from the Labeler's disk cache (`--cache`), so only the first run reads photos.

    .venv/bin/python benchmarks/review_effort.py --tasks 5 --corrections 12
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet

ARMS = ("today", "pinned")


@dataclass(frozen=True)
class Task:
    examples: dict[str, list[Path]]
    truth: dict[Path, str]  # every image of the folder: its class, or unknown for clutter


def make_task(
    held: ImagePool,
    seed: int,
    way: int,
    shot: int,
    per_class: int,
    clutter: int,
    means: dict[str, np.ndarray] | None = None,
) -> Task:
    """Seeded classes and images from the held-out pool (the model never trained on them).

    With class `means`, the task is hard: a seeded class and the `way - 1` classes nearest
    to it, the look-alikes a person ends up correcting.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Path]] = {n: [] for n in held.class_names}
    for path, label in zip(held.paths, held.labels, strict=True):
        by_class[held.class_names[label]].append(path)
    eligible = sorted(n for n, ps in by_class.items() if len(ps) >= shot + per_class)
    if means is None:
        chosen = sorted(rng.choice(eligible, way, replace=False).tolist())
    else:
        first = eligible[rng.integers(len(eligible))]
        near = sorted(eligible, key=lambda n: -float(means[n] @ means[first]))
        chosen = sorted(near[:way])
    examples: dict[str, list[Path]] = {}
    truth: dict[Path, str] = {}
    for name in chosen:
        photos = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
        examples[name] = photos[:shot]
        truth.update(dict.fromkeys(photos[shot : shot + per_class], name))
    others = sorted(p for n, ps in by_class.items() if n not in chosen for p in ps)
    picked = rng.choice(len(others), clutter, replace=False)
    truth.update(dict.fromkeys((others[i] for i in picked), UNKNOWN))
    return Task(examples, truth)


def class_means(labeler: Labeler, held: ImagePool) -> dict[str, np.ndarray]:
    """Each held-out class's mean direction in the model's point space (for `--hard`)."""
    drive(labeler.set_support(SupportSet.from_mapping({"any": [held.paths[0]]})))
    labeler.forget()
    drive(labeler.label(list(held.paths)))
    points = labeler._exact_points().numpy()  # in row order: the pool's
    means = {}
    for c, name in enumerate(held.class_names):
        mean = points[held.labels == c].mean(0)
        means[name] = mean / np.linalg.norm(mean)
    return means


def review(labeler: Labeler, task: Task, arm: str, corrections: int) -> list[float]:
    """Accuracy over the folder before and after each correction."""
    paths = sorted(task.truth)
    truth = np.array([task.truth[p] for p in paths])
    corrected: dict[Path, str] = {}
    labeler.forget()
    curve = []
    while True:
        # As the app sends it: a class correction is also an example of its class.
        support = {
            n: [*ex, *(p for p, c in corrected.items() if c == n)]
            for n, ex in task.examples.items()
        }
        drive(labeler.set_support(SupportSet.from_mapping(support)))
        labeler.set_corrections(corrected if arm != "today" else {})
        if not curve:
            drive(labeler.label(paths))
        labels = labeler.relabel()
        assert labels.paths == paths
        said = np.array([labels.name(int(i)) for i in labels.label])
        curve.append(100 * float((said == truth).mean()))
        if len(curve) > corrections:
            return curve
        wrong = [
            i
            for i in np.argsort(labels.confidence, kind="stable")
            if said[i] != truth[i]
            and paths[i] not in corrected
            and (arm != "today" or truth[i] != UNKNOWN)  # today, clutter cannot be corrected
        ]
        if not wrong:
            curve.extend([curve[-1]] * (corrections + 1 - len(curve)))
            return curve
        corrected[paths[wrong[0]]] = str(truth[wrong[0]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/caltech101-dev"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--holdout", type=int, default=20, help="as the model was trained")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--shot", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--clutter", type=int, default=40)
    parser.add_argument("--corrections", type=int, default=12)
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fewshot-review-cache"))
    parser.add_argument(
        "--hard", action="store_true", help="each task a class and its nearest look-alikes"
    )
    parser.add_argument("--json", type=Path, help="also write every curve here")
    args = parser.parse_args()

    _, held = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)
    labeler = Labeler(load_model(args.model), cache_dir=args.cache, engine=args.engine)
    started = time.perf_counter()
    means = class_means(labeler, held) if args.hard else None
    curves: dict[str, list[list[float]]] = {arm: [] for arm in ARMS}
    for t in range(args.tasks):
        task = make_task(
            held, args.seed + t, args.way, args.shot, args.per_class, args.clutter, means
        )
        for arm in ARMS:
            curve = review(labeler, task, arm, args.corrections)
            curves[arm].append(curve)
            drops = -np.diff(curve)
            print(
                f"task {args.seed + t} {sorted(task.examples)} {arm:>6}: "
                + " ".join(f"{a:.1f}" for a in curve)
                + f" | worst drop {max(drops.max(), 0.0) + 0.0:.2f}"
            )
    n = len(task.truth)
    print(f"\n{args.tasks} tasks, {n} images each, {time.perf_counter() - started:.0f}s")
    for arm in ARMS:
        table = np.array(curves[arm])
        net = np.round((table[:, -1] - table[:, 0]) * n / 100).astype(int)
        wrong = np.round((100 - table[:, 0]) * n / 100).astype(int)
        worst = max(float((-np.diff(table, axis=1)).max()), 0.0) + 0.0  # never "-0.00"
        print(f"{arm:>6}: mean accuracy " + " ".join(f"{a:.2f}" for a in table.mean(0)))
        print(
            f"        net fixed after {args.corrections}: {net.tolist()} (mean {net.mean():.1f}) "
            f"of {wrong.tolist()} wrong at first; worst single drop {worst:.2f} points"
        )
    if args.json:
        args.json.write_text(json.dumps({**vars(args), "curves": curves}, default=str, indent=1))


if __name__ == "__main__":
    main()

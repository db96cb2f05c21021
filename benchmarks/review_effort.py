"""How much a person's corrections fix: a simulated reviewer on held-out caltech101-dev tasks.

Each task: 5 classes of `--shot` examples, about 40 images per class to label and 40 clutter
photos of other held-out classes, all in one folder. The reviewer walks the labels least sure
first and corrects the first wrong one it meets (to its class, or to `unknown` for clutter);
the folder is labeled again after each correction. Task families (`--families`):

- look5: the issue's tasks made hard enough to measure "12 corrections fix 18": 5 examples,
  a seeded class with its nearest look-alike (as crayfish and lobster) and 3 seeded classes,
  about 40 images each (37 for the three classes of 42 or 43 photos), and the clutter drawn
  from the 5 other classes nearest to the chosen ones;
- shot5: 5 examples per class, seeded classes and clutter (the issue's task as drawn at first);
- hard5: 5 examples, a seeded class and its 4 nearest look-alikes;
- shot1, hard1: the same with 1 example per class.

Arms, on the same tasks:

- today: a correction only becomes an example of its class (calibrated with the others,
  nothing pinned, and clutter cannot be corrected, so the reviewer passes over wrong clutter);
- pinned: `Labeler.set_corrections` with `spread=None`: labels pinned, each correction its
  own prototype and a member of its class mean (the threshold calibrated without it);
- propagate: pinned, plus label propagation of each correction's residual over the kNN graph
  of the rows near the corrections (`propagation.propagate_corrections` with `Propagation()`:
  the Labeler does not ship it, so `relabel_propagated` here runs the Labeler's steps with it);
- reach: the previous default, `Spread(claim=0)`: pinned, plus each `unknown` correction
  moving the boundary in for the rows among its 20 nearest, and each correction of a class
  with one example (a guessed threshold) widening that class's boundary out to it;
- claim: the shipped default `Spread()`: reach, plus each `unknown` correction a labeled
  point of clutter, making unknown the rows of a class with a measured boundary that it is
  the nearest labeled image of (`corrections.claim_clutter`), and the refinement leaving out
  the rows only that makes unknown (`corrections.claimed_rows`).

Accuracy counts every image in the folder: in-class images right, clutter `unknown`.
Embeddings come from the Labeler's disk cache (`--cache`), so only the first run reads photos.
`--speed-rows N` also times `relabel()` with 12 corrections over N stored rows (the held-out
photos' embeddings repeated with 1% noise, as `label_speed.py --only relabel` fakes them).

    .venv/bin/python benchmarks/review_effort.py --tasks 10 --speed-rows 100000
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.corrections import Spread, as_prototypes
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.embedding_pipeline import Embedded
from fewshot_gui.core.images import image_identity
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.predictions import Labels
from fewshot_gui.core.propagation import Propagation, graph_rows, propagate_corrections

ARMS = {  # each arm's `Labeler.spread`; propagate adds `relabel_propagated` to pinned
    "today": None,
    "pinned": None,
    "propagate": None,
    "reach": Spread(claim=0),
    "claim": Spread(),
}
FAMILIES = {  # shot, draw (see `make_task`)
    "look5": (5, "pair"),
    "shot5": (5, "random"),
    "hard5": (5, "near"),
    "shot1": (1, "random"),
    "hard1": (1, "near"),
}
TARGET_WRONG = 18  # the target: 12 corrections fix 18 wrong labels


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
    draw: str = "random",
) -> Task:
    """Seeded classes and images from the held-out pool (the model never trained on them).

    `draw` (the last two need class `means`): `random` classes and clutter; `near`, a seeded
    class and the `way - 1` classes nearest to it, the look-alikes a person ends up
    correcting; `pair`, a seeded class, its nearest look-alike and `way - 2` random classes
    (as crayfish and lobster in the issue's task), each with about `per_class` images (at
    least `per_class - 5`), and clutter from the 5 other classes nearest to the chosen ones.
    """
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Path]] = {n: [] for n in held.class_names}
    for path, label in zip(held.paths, held.labels, strict=True):
        by_class[held.class_names[label]].append(path)
    least = shot + per_class - (5 if draw == "pair" else 0)
    eligible = sorted(n for n, ps in by_class.items() if len(ps) >= least)
    if draw == "random":
        chosen = sorted(rng.choice(eligible, way, replace=False).tolist())
    else:
        assert means is not None, f"{draw} tasks need the class means"
        first = eligible[rng.integers(len(eligible))]
        near = sorted(eligible, key=lambda n: -float(means[n] @ means[first]))
        chosen = near[:way] if draw == "near" else near[:2]
        if draw == "pair":
            rest = [n for n in eligible if n not in chosen]
            chosen += rng.choice(rest, way - 2, replace=False).tolist()
        chosen = sorted(chosen)
    examples: dict[str, list[Path]] = {}
    truth: dict[Path, str] = {}
    for name in chosen:
        photos = [by_class[name][i] for i in rng.permutation(len(by_class[name]))]
        examples[name] = photos[:shot]
        truth.update(dict.fromkeys(photos[shot : shot + per_class], name))
    classes = [n for n in held.class_names if n not in chosen]
    if draw == "pair" and means is not None:
        closeness = {n: max(float(means[n] @ means[c]) for c in chosen) for n in classes}
        classes = sorted(classes, key=lambda n: -closeness[n])[:5]
    others = sorted(p for n in classes for p in by_class[n])
    picked = rng.choice(len(others), clutter, replace=False)
    truth.update(dict.fromkeys((others[i] for i in picked), UNKNOWN))
    return Task(examples, truth)


def class_means(labeler: Labeler, held: ImagePool) -> dict[str, np.ndarray]:
    """Each held-out class's mean direction in the model's point space (to draw look-alikes)."""
    drive(labeler.set_support(SupportSet.from_mapping({"any": [held.paths[0]]})))
    labeler.forget()
    drive(labeler.label(list(held.paths)))
    points = labeler._labeled.exact().numpy()  # in row order: the pool's
    means = {}
    for c, name in enumerate(held.class_names):
        mean = points[held.labels == c].mean(0)
        means[name] = mean / np.linalg.norm(mean)
    return means


@torch.no_grad()
def relabel_propagated(labeler: Labeler, settings: Propagation) -> Labels:
    """`labeler.relabel()` with each correction's residual propagated (`settings`) after the
    corrections are made prototypes: the Labeler's own steps (`_predict`, `_corrected`) with
    propagation in place of the reach, which `labeler.spread = None` leaves out."""
    labeler._refine()
    every = range(len(labeler._labeled))
    if not len(every):
        return labeler._labels(every, True, None)
    scores, far = labeler._labeled.scores(labeler.model, every, True)
    anchors = labeler._anchors(every, True)
    if anchors is None:
        return labeler._labels(every, True, (scores, far, np.zeros(len(every), np.int8)))
    pinned, pinned_far, verdict = as_prototypes(
        scores, far, anchors.near, anchors.distance, anchors.labels
    )
    if labeler.transductive:  # as the reach: only a final re-labeling propagates
        rows = graph_rows(anchors.distance, labeler._labeled.ok, labeler._labeled.order, settings)
        points = labeler._labeled.exact()[torch.from_numpy(rows).to(labeler.device)]
        pairs = labeler.model.anchor_scores(points, points)[1].float()
        pinned, verdict = propagate_corrections(
            pairs,
            rows,
            (scores, far),
            pinned,
            pinned_far,
            verdict,
            anchors.rows,
            anchors.labels,
            labeler.threshold,
            settings,
        )
    return labeler._labels(every, True, (pinned, pinned_far, verdict))


def relabeled(labeler: Labeler, arm: str) -> Labels:
    """The folder labeled again under `arm` (its `spread` already set)."""
    return relabel_propagated(labeler, Propagation()) if arm == "propagate" else labeler.relabel()


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
        labeler.spread = ARMS[arm]
        labeler.set_corrections(corrected if arm != "today" else {})
        if not curve:
            drive(labeler.label(paths))
        labels = relabeled(labeler, arm)
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


def summary(arm: str, table: np.ndarray, n: np.ndarray, corrections: int) -> str:
    """Mean curve, net fixed per task, and worst drop of one arm on one family (`n` images
    per task)."""
    net = np.round((table[:, -1] - table[:, 0]) * n / 100).astype(int)
    wrong = np.round((100 - table[:, 0]) * n / 100).astype(int)
    worst = max(float((-np.diff(table, axis=1)).max()), 0.0) + 0.0  # never "-0.00"
    enough = wrong >= TARGET_WRONG
    where = (
        f"; on the {int(enough.sum())} tasks with >= {TARGET_WRONG} wrong: "
        f"{net[enough].tolist()} (mean {net[enough].mean():.1f}, worst {net[enough].min()})"
        if enough.any()
        else f"; no task starts with >= {TARGET_WRONG} wrong"
    )
    return (
        f"{arm:>9}: mean accuracy "
        + " ".join(f"{a:.2f}" for a in table.mean(0))
        + f"\n           net fixed after {corrections}: {net.tolist()} (mean {net.mean():.1f})"
        f" of {wrong.tolist()} wrong at first{where}; worst single drop {worst:.2f} points"
    )


def relabel_speed(labeler: Labeler, held: ImagePool, rows: int, corrections: int) -> None:
    """Milliseconds of `relabel()` over `rows` faked rows: no corrections, then `corrections`
    of them pinned (each a row the model labels wrong) under each arm's setting."""
    vectors = np.stack([labeler._embeddings.memory[image_identity(p)] for p in held.paths])
    rng = np.random.default_rng(0)
    faked = vectors[np.arange(rows) % len(vectors)]
    faked = faked + 0.01 * faked.std() * rng.standard_normal(faked.shape, dtype=np.float32)
    paths = [Path(f"/synthetic/{i:06d}.jpg") for i in range(rows)]
    task = make_task(held, 0, 5, 5, 40, 40)
    labeler.forget()
    drive(labeler.set_support(SupportSet.from_mapping(task.examples)))
    for start in range(0, rows, 10_000):
        stop = min(start + 10_000, rows)
        labeler._store(Embedded(paths[start:stop], list(faked[start:stop]), [""] * (stop - start)))
    origin = np.array([held.class_names[c] for c in held.labels])[np.arange(rows) % len(vectors)]
    labeler.set_corrections({})
    labels = labeler.relabel()
    said = np.array([labels.name(int(i)) for i in labels.label])
    expected = np.where(np.isin(origin, list(task.examples)), origin, UNKNOWN)
    wrong = np.flatnonzero(said != expected)[:corrections]
    pins = {paths[i]: str(expected[i]) for i in wrong}
    assert len(pins) == corrections

    def best_ms(arm: str) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            relabeled(labeler, arm)
            times.append(time.perf_counter() - started)
        return 1000 * min(times)

    labeler.spread = Spread()
    print(
        f"\nrelabel() over {rows} rows, best of 5: no corrections {best_ms('reach'):.0f} ms",
        end="",
    )
    for arm in ("pinned", "propagate", "reach", "claim"):
        labeler.spread = ARMS[arm]
        labeler.set_corrections(pins)
        print(f"; {corrections} corrections, {arm} {best_ms(arm):.0f} ms", end="")
        labeler.set_corrections({})
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/caltech101-dev"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--holdout", type=int, default=20, help="as the model was trained")
    parser.add_argument("--tasks", type=int, default=5, help="per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default=",".join(FAMILIES), help="of " + ", ".join(FAMILIES))
    parser.add_argument("--way", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--clutter", type=int, default=40)
    parser.add_argument("--corrections", type=int, default=12)
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fewshot-review-cache"))
    parser.add_argument("--speed-rows", type=int, default=0, help="also time relabel() at N rows")
    parser.add_argument("--verbose", action="store_true", help="print every task's curves")
    parser.add_argument("--json", type=Path, help="also write every curve here")
    args = parser.parse_args()

    _, held = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)
    labeler = Labeler(load_model(args.model), cache_dir=args.cache, engine=args.engine)
    started = time.perf_counter()
    means = class_means(labeler, held)
    curves: dict[str, dict[str, list[list[float]]]] = {}
    images: dict[str, list[int]] = {}  # per family, each task's folder size
    for family in args.families.split(",") if args.tasks else ():
        shot, draw = FAMILIES[family]
        curves[family] = {arm: [] for arm in ARMS}
        sizes = images[family] = []
        for t in range(args.tasks):
            seed = args.seed + t
            task = make_task(held, seed, args.way, shot, args.per_class, args.clutter, means, draw)
            sizes.append(len(task.truth))
            for arm in ARMS:
                curve = review(labeler, task, arm, args.corrections)
                curves[family][arm].append(curve)
                if args.verbose:
                    print(
                        f"{family} task {seed} {sorted(task.examples)} {arm:>9}: "
                        + " ".join(f"{a:.1f}" for a in curve)
                    )
        print(f"\n{family}: {args.tasks} tasks of {shot} shot, {min(sizes)} to {max(sizes)} images")
        for arm in ARMS:
            table = np.array(curves[family][arm])
            print(summary(arm, table, np.array(sizes), args.corrections))
    print(f"\n{time.perf_counter() - started:.0f}s")
    if args.speed_rows:
        relabel_speed(labeler, held, args.speed_rows, args.corrections)
    if args.json:
        record = {**vars(args), "curves": curves, "images": images}
        args.json.write_text(json.dumps(record, default=str, indent=1))


if __name__ == "__main__":
    main()

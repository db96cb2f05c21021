"""Check next against least sure first: a simulated reviewer who looks at images in an order.

The tasks are `review_effort.py`'s (`make_task`, its families): 5 classes of a few examples,
about 40 images per class and 40 clutter photos of other held-out caltech101-dev classes, all
in one folder. For each look the reviewer pins the image it looks at to its true label, as
the app does on a correction or a confirmation (Enter): an image of a class becomes an
example of it and a correction with that label, a clutter photo an `unknown` correction. A
wrong label so looked at is a correction, a right one a confirmation. The folder is labeled
again (`Labeler.relabel`, the shipped `Spread()`) after each look. Orders, on the same tasks:

- least_sure: the app's "least sure first" (lowest confidence first, looked-at ones last);
- check_next: `core.review_priority.labeler_ranks`, computed after each relabel as the app's
  labeling worker computes it;
- boundary (`--orders`, an ablation): nearest a boundary first (`review_priority.boundary`),
  without the distances to what is confirmed and without the greedy picks.

Accuracy counts every image of the folder: in-class images right, clutter `unknown`.
`--speed-rows N` also times the ranks over N stored rows beside `relabel()` (the rows faked by
`review_effort.relabel_speed`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/check_next.py --tasks 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from review_effort import (  # this folder's script
    FAMILIES,
    Task,
    class_means,
    make_task,
    relabel_speed,
)

from fewshot_gui.core.checkpoint import DEFAULT_MODEL, load_model
from fewshot_gui.core.datasets import ImagePool
from fewshot_gui.core.jobs import drive
from fewshot_gui.core.labeling import UNKNOWN, Labeler, SupportSet
from fewshot_gui.core.review_priority import boundary, labeler_ranks

ORDERS = ("least_sure", "check_next", "boundary")
MARKS = (6, 12, 24)  # looks after which accuracy is reported


def look_order(labeler: Labeler, labels, order: str, looked: np.ndarray) -> np.ndarray:
    """Rows in the order `order` shows them, those looked at already left out."""
    if order == "least_sure":
        keys = np.where(labels.pinned, 2.0, labels.confidence)
        rows = np.argsort(keys, kind="stable")
    elif order == "boundary":  # check next without the distances: is it the boundary alone?
        keys = np.where(labels.pinned, 2.0, -boundary(labels, labeler.threshold))
        rows = np.argsort(keys, kind="stable")
    else:
        rows = np.argsort(labeler_ranks(labeler, labels), kind="stable")
    return rows[~looked[rows]]


def review(labeler: Labeler, task: Task, order: str, looks: int) -> tuple[list[float], int]:
    """Accuracy over the folder before and after each look, and how many looks corrected."""
    paths = sorted(task.truth)
    truth = np.array([task.truth[p] for p in paths])
    pinned: dict[Path, str] = {}
    looked = np.zeros(len(paths), bool)
    labeler.forget()
    curve: list[float] = []
    corrections = 0
    while True:
        support = {
            n: [*ex, *(p for p, c in pinned.items() if c == n)] for n, ex in task.examples.items()
        }
        drive(labeler.set_support(SupportSet.from_mapping(support)))
        labeler.set_corrections(pinned)
        if not curve:
            drive(labeler.label(paths))
        labels = labeler.relabel()
        assert labels.paths == paths
        said = np.array([labels.name(int(i)) for i in labels.label])
        curve.append(100 * float((said == truth).mean()))
        if len(curve) > looks:
            return curve, corrections
        rows = look_order(labeler, labels, order, looked)
        if not len(rows):
            curve.extend([curve[-1]] * (looks + 1 - len(curve)))
            return curve, corrections
        row = int(rows[0])
        looked[row] = True
        corrections += int(said[row] != truth[row])
        pinned[paths[row]] = str(truth[row])


def summary(order: str, table: np.ndarray, sizes: np.ndarray, corrected: list[int]) -> str:
    """Accuracy at each mark (mean and worst task) and wrong labels fixed per look."""
    looks = table.shape[1] - 1
    marks = [m for m in MARKS if m <= looks]
    accuracy = "  ".join(
        f"{m}: {table[:, m].mean():.2f} (worst {table[:, m].min():.2f})" for m in [0, *marks]
    )
    fixed = np.round((table[:, -1] - table[:, 0]) * sizes / 100)
    per_look = fixed / looks
    return (
        f"{order:>10}: accuracy after {'/'.join(map(str, [0, *marks]))} looks  {accuracy}\n"
        f"            wrong fixed after {looks}: {fixed.astype(int).tolist()} "
        f"(per look mean {per_look.mean():.2f}, worst {per_look.min():.2f}); "
        f"looks that were corrections {corrected}"
    )


def rank_speed(labeler: Labeler, held: ImagePool, rows: int) -> None:
    """Milliseconds of `relabel()` and of the ranks over `rows` faked rows with 12 `unknown`
    corrections: `review_effort.relabel_speed` fakes the rows (and prints its own figures)."""
    relabel_speed(labeler, held, rows, 12)
    paths = labeler.relabel().paths
    labeler.set_corrections({paths[i]: UNKNOWN for i in range(0, 12 * 997, 997)})
    relabel_ms, rank_ms = [], []
    for _ in range(5):
        started = time.perf_counter()
        labels = labeler.relabel()
        middle = time.perf_counter()
        labeler_ranks(labeler, labels)
        relabel_ms.append(1000 * (middle - started))
        rank_ms.append(1000 * (time.perf_counter() - middle))
    print(
        f"over {rows} rows, 12 unknown corrections, best of 5: relabel() {min(relabel_ms):.0f} ms,"
        f" check-next ranks {min(rank_ms):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/caltech101-dev"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--holdout", type=int, default=20, help="as the model was trained")
    parser.add_argument("--tasks", type=int, default=4, help="per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", default="look5,shot5,shot1")
    parser.add_argument("--looks", type=int, default=24)
    parser.add_argument("--orders", default="least_sure,check_next", help=",".join(ORDERS))
    parser.add_argument("--engine", default="onnxruntime")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fewshot-review-cache"))
    parser.add_argument("--speed-rows", type=int, default=0, help="also time the ranks at N rows")
    parser.add_argument("--verbose", action="store_true", help="print every task's curves")
    args = parser.parse_args()

    _, held = ImagePool.from_folder(args.data).split_holdout_groups(args.holdout)
    labeler = Labeler(load_model(args.model), cache_dir=args.cache, engine=args.engine)
    started = time.perf_counter()
    means = class_means(labeler, held)
    orders = args.orders.split(",")
    for family in args.families.split(",") if args.tasks else ():
        shot, draw = FAMILIES[family]
        curves: dict[str, list[list[float]]] = {order: [] for order in orders}
        corrected: dict[str, list[int]] = {order: [] for order in orders}
        sizes = []
        for t in range(args.tasks):
            task = make_task(held, args.seed + t, 5, shot, 40, 40, means, draw)
            sizes.append(len(task.truth))
            for order in orders:
                curve, corrections = review(labeler, task, order, args.looks)
                curves[order].append(curve)
                corrected[order].append(corrections)
                if args.verbose:
                    print(
                        f"{family} task {args.seed + t} {order:>10}: "
                        + " ".join(f"{a:.1f}" for a in curve),
                        flush=True,
                    )
        print(f"\n{family}: {args.tasks} tasks of {shot} shot, {min(sizes)} to {max(sizes)} images")
        for order in orders:
            print(summary(order, np.array(curves[order]), np.array(sizes), corrected[order]))
        print(flush=True)
    print(f"{time.perf_counter() - started:.0f}s")
    if args.speed_rows:
        rank_speed(labeler, held, args.speed_rows)


if __name__ == "__main__":
    main()

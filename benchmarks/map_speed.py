"""The folder map: layout time, layout quality, placement of new images, and pan/zoom frame
time, each beside a baseline measured in the same run.

  layout   openTSNE (what core.folder_map runs) and UMAP on clustered synthetic embeddings
           (1,280 dimensions, as Lite0's) at --sizes points; UMAP's import and JIT apart
  quality  real caltech101-dev embeddings (Lite0, frozen): how many of each image's 10
           nearest neighbours stay among its 10 nearest on the map, and how often its 5
           nearest on the map share its class (leave-one-out), for openTSNE, UMAP and PCA
  place    1,000 new points placed on a fitted map: openTSNE's prepare_partial with and
           without its settling steps, UMAP's transform, and the time for each
  frames   pan and zoom over 100,000 points in the real MapPlot widget (offscreen), each
           view change painted at once, against a QGraphicsView holding one item per point

    OMP_NUM_THREADS=1 python benchmarks/map_speed.py --data ../shared/data/caltech101-dev
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from fewshot_gui.core import folder_map
from fewshot_gui.core.jobs import drive


def clustered(n: int, dims: int = 1280, clusters: int = 100, seed: int = 0) -> np.ndarray:
    """Unit vectors around `clusters` directions of uneven spread, like photo embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dims)).astype(np.float32)
    spread = rng.uniform(0.6, 1.4, clusters).astype(np.float32)
    which = rng.integers(0, clusters, n)
    points = centres[which] + spread[which, None] * rng.normal(size=(n, dims)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def paths_for(n: int, start: int = 0) -> list[Path]:
    return [Path(f"/photos/{i:07d}.jpg") for i in range(start, start + n)]


def timed(job):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = job()
    return result, time.perf_counter() - started


def umap_layout(features: np.ndarray, threads: int) -> tuple[np.ndarray, object]:
    """UMAP on the same PCA the map uses; unseeded, so it may use its threads."""
    import umap

    unit = folder_map._unit(features)
    mean, components = folder_map._fit_pca(unit, 0)
    reduced = folder_map._project(unit, mean, components)
    model = umap.UMAP(n_neighbors=15, n_jobs=threads, low_memory=True)
    return model.fit_transform(reduced), (model, mean, components)


def neighbours(points: np.ndarray, k: int, cosine: bool) -> np.ndarray:
    """Each row's k nearest other rows (n, k), by cosine or Euclidean distance."""
    if cosine:
        unit = points / np.linalg.norm(points, axis=1, keepdims=True)
        distance = -unit @ unit.T
    else:
        squared = (points**2).sum(1)
        distance = squared[:, None] + squared[None, :] - 2 * points @ points.T
    np.fill_diagonal(distance, np.inf)
    return np.argsort(distance, axis=1)[:, :k]


def quality(features: np.ndarray, labels: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """(kept: share of the 10 nearest kept on the map, 5-NN class accuracy on the map)."""
    high = neighbours(features, 10, cosine=True)
    low = neighbours(xy.astype(np.float64), 10, cosine=False)
    kept = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(high, low, strict=True)])
    votes = labels[low[:, :5]]
    guess = np.array([np.bincount(v).argmax() for v in votes])
    return float(kept), float((guess == labels).mean())


def caltech(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frozen Lite0 features (N, 1280) and class labels (N,) of every image, read as the
    two halves `feature_choice.py --holdout 20` caches (so a run from the checkout with
    --data ../shared/data/caltech101-dev reads them from the cache)."""
    from fewshot_gui.core.backbones import get_backbone
    from fewshot_gui.core.config import ModelConfig
    from fewshot_gui.core.datasets import ImagePool
    from fewshot_gui.core.evaluation import pool_inputs
    from fewshot_gui.core.methods import build_model
    from fewshot_gui.core.paths import cache_dir

    model = build_model(ModelConfig(method="protonet", backbone="lite0", metric="cosine"))
    features, labels = [], []
    for part in ImagePool.from_folder(data).split_holdout_groups(20):
        found = drive(pool_inputs(model, get_backbone("lite0"), part, cache_dir()))
        features.append(found.numpy().reshape(len(found), -1))
        labels.append(np.asarray(part.labels) + sum(len(set(x)) for x in labels))
    return np.concatenate(features), np.concatenate(labels)


def bench_layout(sizes: list[int], methods: list[str], threads: int) -> None:
    print("\n## layout (synthetic, 1,280 dims, 100 clusters)")
    if "umap" in methods:
        _, seconds = timed(lambda: __import__("umap"))
        print(f"  umap import {seconds:.1f} s")
        small = clustered(2000, seed=1)
        _, seconds = timed(lambda: umap_layout(small, threads))
        print(f"  umap first fit of 2,000 (numba JIT, cached after) {seconds:.1f} s")
    _, seconds = timed(lambda: drive(folder_map.layout(paths_for(200), clustered(200, seed=2))))
    print(f"  openTSNE import and first layout of 200: {seconds:.1f} s")
    for method in methods:
        for n in sizes:
            features, paths = clustered(n), paths_for(n)
            started = time.perf_counter()
            if method == "tsne":
                drive(folder_map.layout(paths, features, threads=threads))
            else:
                umap_layout(features, threads)
            seconds = time.perf_counter() - started
            load = os.getloadavg()[0]
            print(f"  {method:<5} {n:>7,}: {seconds:6.1f} s (load {load:.1f})", flush=True)


def bench_quality_and_place(data: Path, methods: list[str], threads: int) -> None:
    features, labels = caltech(data)
    n = len(features)
    print(f"\n## quality (caltech101-dev, Lite0, {n} images, {labels.max() + 1} classes)")
    paths = paths_for(n)
    unit = folder_map._unit(features)
    pca = folder_map._project(unit, *folder_map._fit_pca(unit, 0, dims=2))
    print("  method    kept 10-NN   5-NN class acc   seconds")
    kept, accuracy = quality(features, labels, pca)
    print(f"  PCA 2-D   {kept:10.3f}   {accuracy:14.3f}")
    fitted, seconds = timed(lambda: drive(folder_map.layout(paths, features, threads=threads)))
    xy = fitted.xy[np.argsort(np.argsort([os.fsencode(p) for p in paths]))]
    kept, accuracy = quality(features, labels, xy)
    print(f"  openTSNE  {kept:10.3f}   {accuracy:14.3f}   {seconds:7.1f}")
    if "umap" in methods:
        (xy, _), seconds = timed(lambda: umap_layout(features, threads))
        kept, accuracy = quality(features, labels, xy)
        print(f"  UMAP      {kept:10.3f}   {accuracy:14.3f}   {seconds:7.1f}")

    print("\n## placing 1,000 held-out images on a map of the rest (caltech101-dev)")
    order = np.random.default_rng(0).permutation(n)
    new, old = order[:1000], order[1000:]
    old_map = drive(folder_map.layout(paths_for(len(old)), features[old], threads=threads))
    old_xy = old_map.xy[np.argsort(np.argsort([os.fsencode(p) for p in paths_for(len(old))]))]

    def placed_accuracy(xy_new: np.ndarray) -> float:
        """5-NN class accuracy of each placed point among the laid-out points."""
        distance = ((xy_new[:, None, :] - old_xy[None, :, :]) ** 2).sum(-1)
        votes = labels[old][np.argsort(distance, axis=1)[:, :5]]
        guess = np.array([np.bincount(v).argmax() for v in votes])
        return float((guess == labels[new]).mean())

    steps = folder_map.PLACE_STEPS
    for name, place_steps in (("kNN median only", 0), (f"prepare_partial + {steps} it", steps)):
        folder_map.PLACE_STEPS = place_steps
        placed, seconds = timed(
            lambda: drive(folder_map.place(old_map, paths_for(1000, 10**6), features[new]))
        )
        accuracy = placed_accuracy(placed.xy[len(old) :])
        print(f"  openTSNE {name:<26} {seconds:6.2f} s, 5-NN class acc {accuracy:.3f}")
    folder_map.PLACE_STEPS = steps
    if "umap" in methods:
        (umap_xy, (model, mean, components)), _ = timed(lambda: umap_layout(features[old], threads))
        old_xy = umap_xy
        reduced = folder_map._project(folder_map._unit(features[new]), mean, components)
        xy_new, seconds = timed(lambda: model.transform(reduced))  # type: ignore[attr-defined]
        accuracy = placed_accuracy(xy_new)
        print(
            f"  UMAP transform                      {seconds:6.2f} s, 5-NN class acc {accuracy:.3f}"
        )


def bench_frames(n: int) -> None:
    """Mean and worst paint time of pan and zoom steps over `n` points, and a baseline."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QBrush, QColor, QPen
    from PySide6.QtWidgets import QApplication, QGraphicsScene, QGraphicsView

    from fewshot_gui.core.map_image import class_colour
    from fewshot_gui.gui.map_view import MapPlot

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(n, 2)).astype(np.float32) * 10
    codes = rng.integers(-1, 20, n)
    print(f"\n## pan and zoom, {n:,} points, 1000x800 offscreen")

    def frames(view: QGraphicsView, move) -> str:  # type: ignore[no-untyped-def]
        view.resize(1000, 800)
        view.show()
        app.processEvents()
        times = []
        for step in range(60):
            move(step)
            started = time.perf_counter()
            view.viewport().repaint()
            times.append(time.perf_counter() - started)
        times_ms = 1000 * np.array(times[5:])
        return f"mean {times_ms.mean():6.1f} ms, p95 {np.percentile(times_ms, 95):6.1f} ms"

    plot = MapPlot()
    plot.set_points(xy)
    examples = np.zeros(n, bool)
    examples[:50] = True
    plot.set_colours(codes, examples, np.ones(n, bool))
    plot.set_selection(np.arange(0, n, 100))

    def mover(box):  # type: ignore[no-untyped-def]
        def move(step: int) -> None:
            span = 40 / (1 + 0.1 * (step % 20))  # zooming in, then a jump back out
            centre = step * 0.5 - 15  # and panning across
            box.setRange(QRectF(centre - span / 2, -span / 2, span, span), padding=0)

        return move

    print(f"  MapPlot (numpy stamps, one picture):   {frames(plot, mover(plot.box))}")

    import pyqtgraph as pg

    scatter_plot = pg.PlotWidget(background="w")
    order = np.argsort(codes >= 0, kind="stable")
    brushes = np.array([QBrush(QColor(*class_colour(int(c)))) for c in range(-1, 20)], object)
    scatter = pg.ScatterPlotItem(pxMode=True, size=5, pen=None, symbol="o")
    _, seconds = timed(
        lambda: scatter.setData(xy[order, 0], xy[order, 1], brush=brushes[codes[order] + 1])
    )
    scatter_plot.addItem(scatter)
    move = mover(scatter_plot.plotItem.getViewBox())
    print(
        f"  pyqtgraph ScatterPlotItem, one item:   {frames(scatter_plot, move)}; "
        f"setData {seconds:.1f} s"
    )

    scene = QGraphicsScene()
    pens = [QPen(QColor(0, 0, 0, 0)) for _ in range(21)]
    brushes = [QBrush(QColor(*class_colour(int(c)))) for c in range(-1, 20)]
    for (x, y), code in zip(xy.tolist(), codes.tolist(), strict=True):
        item = scene.addEllipse(x - 0.1, y - 0.1, 0.2, 0.2, pens[code + 1], brushes[code + 1])
        item.setFlag(item.GraphicsItemFlag.ItemIgnoresTransformations, False)
    view = QGraphicsView(scene)

    def move_view(step: int) -> None:
        span = 40 / (1 + 0.1 * (step % 20))
        centre = step * 0.5 - 15
        view.fitInView(QRectF(centre - span / 2, -span / 2, span, span))

    print(f"  QGraphicsView, an item per point:      {frames(view, move_view)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="caltech101-dev, for quality and placement")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    parser.add_argument("--methods", nargs="*", default=["tsne", "umap"])
    parser.add_argument("--only", choices=("layout", "quality", "frames"))
    parser.add_argument("--frame-points", type=int, default=100_000)
    args = parser.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, ", end="")
    print(f"{threads} thread(s) for the layouts, load {os.getloadavg()[0]:.1f} at the start")
    if args.only in (None, "frames"):
        bench_frames(args.frame_points)
    if args.only in (None, "quality") and args.data:
        bench_quality_and_place(args.data, args.methods, threads)
    if args.only in (None, "layout"):
        bench_layout(args.sizes, args.methods, threads)
    print(f"load {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

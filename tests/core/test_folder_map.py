"""The folder map's layout and placement on small clustered embeddings with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core import folder_map as folder_map_module
from fewshot_gui.core.folder_map import LAYOUT_STEPS, MapProgress, layout, map_seed, place
from fewshot_gui.core.jobs import CancelToken, drive
from fewshot_gui.core.map_image import CLASS_COLOURS, LEGEND_WIDTH, UNKNOWN_COLOUR, render_map


def clusters(count: int, per: int, dims: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`per` points around each of `count` random directions: features (n, dims), cluster (n,)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, dims))
    which = np.repeat(np.arange(count), per)
    return (centres[which] + 0.15 * rng.normal(size=(len(which), dims))).astype(np.float32), which


def names(n: int, start: int = 0) -> list[Path]:
    return [Path(f"/photos/{i:04d}.jpg") for i in range(start, start + n)]


def nearest(points: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Index into `among` of each point's nearest other point."""
    distance = ((points[:, None, :] - among[None, :, :]) ** 2).sum(-1)
    distance[distance == 0] = np.inf  # a point is not its own neighbour
    return distance.argmin(1)


@pytest.fixture(scope="module")
def laid_out():
    features, which = clusters(3, 20)
    paths = names(60)
    return paths, features, which, drive(layout(paths, features))


def test_layout_keeps_clusters_together(laid_out) -> None:
    paths, _features, which, folder_map = laid_out
    assert folder_map.xy.shape == (60, 2) and folder_map.xy.dtype == np.float32
    assert np.isfinite(folder_map.xy).all()
    assert folder_map.paths == tuple(sorted(paths))
    row_of = folder_map.row_of()
    xy = folder_map.xy[[row_of[p] for p in paths]]
    assert (which[nearest(xy, xy)] == which).all()


def test_the_same_files_give_the_same_map_in_any_order(laid_out) -> None:
    paths, features, _which, folder_map = laid_out
    order = np.random.default_rng(1).permutation(len(paths))
    again = drive(layout([paths[i] for i in order], features[order]))
    assert again.paths == folder_map.paths and again.seed == folder_map.seed
    np.testing.assert_array_equal(again.xy, folder_map.xy)
    assert map_seed(paths) != map_seed(paths[1:])


def test_a_large_layout_fits_a_sample_and_places_the_rest(
    laid_out, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths, features, which, _ = laid_out
    monkeypatch.setattr(folder_map_module, "LAYOUT_SAMPLE", 36)
    sampled = drive(layout(paths, features))
    assert sampled._fitted == 36 and sampled.xy.shape == (60, 2)
    row_of = sampled.row_of()
    xy = sampled.xy[[row_of[p] for p in paths]]
    assert (which[nearest(xy, xy)] == which).all()  # the 24 placed ones join their cluster
    np.testing.assert_array_equal(drive(layout(paths[::-1], features[::-1])).xy, sampled.xy)


def test_cancel_stops_the_layout() -> None:
    features, _ = clusters(2, 20)
    token = CancelToken()
    events: list[MapProgress] = []

    def on_event(event: MapProgress) -> None:
        events.append(event)
        if event.stage == "laying out":
            token.cancel()

    assert drive(layout(names(40), features, token), on_event) is None
    assert events[-1].stage == "laying out" and events[-1].done < LAYOUT_STEPS - 1


def test_placed_points_join_their_cluster_and_the_map_stays(laid_out) -> None:
    paths, _features, which, folder_map = laid_out
    new_features, new_which = clusters(3, 4, seed=0)[0][::4], np.arange(3).repeat(4)[::4]
    # Fresh noise around the same centres: new photos of the three clusters.
    rng = np.random.default_rng(5)
    new_features = new_features + 0.15 * rng.normal(size=new_features.shape).astype(np.float32)
    new_paths = names(len(new_features), start=1000)
    placed = drive(place(folder_map, new_paths, new_features))
    assert len(placed) == 60 + len(new_paths)
    np.testing.assert_array_equal(placed.xy[:60], folder_map.xy)  # nothing laid out again
    row_of = folder_map.row_of()
    old_which = np.empty(60, np.int64)
    old_which[[row_of[p] for p in paths]] = which
    new_xy = placed.xy[60:]
    distance = ((new_xy[:, None, :] - folder_map.xy[None, :, :]) ** 2).sum(-1)
    assert (old_which[distance.argmin(1)] == new_which).all()
    with pytest.raises(ValueError, match="already"):
        drive(place(placed, new_paths[:1], new_features[:1]))


def test_a_handful_is_laid_out_without_tsne() -> None:
    features, _ = clusters(1, 3)
    folder_map = drive(layout(names(3), features))
    assert folder_map.xy.shape == (3, 2) and np.isfinite(folder_map.xy).all()
    placed = drive(place(folder_map, names(1, start=9), features[:1]))
    np.testing.assert_allclose(placed.xy[3], folder_map.xy[0], atol=1e-5)
    with pytest.raises(ValueError, match="2 paths but 3"):
        drive(layout(names(2), features))


def test_render_draws_each_point_in_its_class_colour() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    codes = np.array([0, 1, -1])
    picture = render_map(xy, codes, ["a", "b"], np.array([False, False, True]), size=620)
    pixels = np.asarray(picture)
    plot = 620 - LEGEND_WIDTH
    assert pixels.shape == (plot, 620, 3)
    # The square's corners: (0, 0) at the bottom left, (1, 1) at the top right.
    assert tuple(pixels[plot - 17, 16]) == CLASS_COLOURS[0]
    assert tuple(pixels[16, plot - 17]) == CLASS_COLOURS[1]
    assert tuple(pixels[16, 16]) == UNKNOWN_COLOUR  # an example's diamond, filled

"""Discovery on small synthetic embeddings whose clusters are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fewshot_gui.core.discover import Discovery, find_clusters, propose, unit
from fewshot_gui.core.errors import ConfigError
from fewshot_gui.core.jobs import drive

DIM = 32


def blobs(sizes: list[int], centers: np.ndarray, seed: int = 0, spread: float = 0.05):
    """Unit points (a cosine model's) around each of `centers` (k, DIM), `sizes[i]` of them,
    shuffled; and the blob of each point."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.arange(len(sizes)), sizes)
    order = rng.permutation(len(truth))
    truth = truth[order]
    points = centers[truth] + spread * rng.standard_normal((len(truth), DIM))
    return unit(points.astype(np.float32)), truth


def orthogonal_centers(k: int, seed: int = 1) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((DIM, DIM)))
    return q[:, :k].T


def test_separate_blobs_come_back_as_clusters_largest_first_with_central_typical() -> None:
    centers = orthogonal_centers(3)
    points, truth = blobs([40, 25, 15], centers)
    rng = np.random.default_rng(5)
    noise = rng.standard_normal((6, DIM))
    noise = unit((noise - noise @ centers.T @ centers).astype(np.float32))  # unlike every blob
    points = np.concatenate([points, noise])
    truth = np.concatenate([truth, np.full(6, -1)])

    clusters = find_clusters(points)

    assert [len(m) for m in clusters.members] == [40, 25, 15]
    for blob, (members, typical) in enumerate(zip(clusters.members, clusters.typical, strict=True)):
        assert set(members) == set(np.flatnonzero(truth == blob))
        assert len(typical) == Discovery().typical and set(typical) <= set(members)
        directions = unit(points[members])
        centre = unit(directions.mean(0, keepdims=True))[0]
        nearness = directions @ centre
        # The typical points are the nearest to the centre, nearest first.
        ranked = members[np.argsort(-nearness, kind="stable")][: len(typical)]
        assert list(typical) == list(ranked)
    assert np.all((clusters.cohesion > 0) & (clusters.cohesion <= 1))


def test_same_points_give_the_same_clusters_and_features_that_point_one_way_are_centred() -> None:
    points, truth = blobs([30, 30, 20], orthogonal_centers(3), seed=3)
    first = find_clusters(points)
    again = find_clusters(points.copy())
    assert [m.tolist() for m in first.members] == [m.tolist() for m in again.members]
    assert [t.tolist() for t in first.typical] == [t.tolist() for t in again.typical]

    # A ReLU network's features share one large direction: clustered about their mean.
    shifted = 3.0 * points + 10.0
    clusters = find_clusters(shifted)
    assert sorted(len(m) for m in clusters.members) == [20, 30, 30]
    assert all(len(set(truth[m])) == 1 for m in clusters.members)
    # About another origin (the whole folder's mean, say) the same way.
    assert [m.tolist() for m in find_clusters(shifted, origin=shifted.mean(0)).members] == [
        m.tolist() for m in clusters.members
    ]


def test_two_pieces_of_one_class_are_one_and_unlike_classes_stay_apart() -> None:
    base = orthogonal_centers(3, seed=2)
    # Two lobes 0.75 apart in cosine (one class seen two ways) and a third class apart.
    lobe = unit((0.75 * base[0] + np.sqrt(1 - 0.75**2) * base[1])[None])[0]
    points, truth = blobs([30, 30, 30], np.stack([base[0], lobe, base[2]]), seed=4)

    together = find_clusters(points)
    apart = find_clusters(points, Discovery(same_class=0.99))

    assert sorted(len(m) for m in together.members) == [30, 60]
    assert set(truth[together.members[0]]) == {0, 1}
    assert sorted(len(m) for m in apart.members) == [30, 30, 30]


def test_a_sample_clusters_and_the_rest_join_their_nearest_cluster() -> None:
    points, truth = blobs([120, 90, 60], orthogonal_centers(3), seed=6)

    clusters = find_clusters(points, Discovery(sample=60))

    sample = np.linspace(0, len(points) - 1, 60).astype(int)
    assert len(clusters.members) == 3
    for blob, members in enumerate(clusters.members):
        assert set(truth[members]) == {blob}  # nothing joins the wrong cluster
        outside = np.setdiff1d(members, sample)
        # Points beyond the sample joined it: most of the blob, not only its 20 sampled ones.
        assert len(outside) > 0.6 * (truth == blob).sum() - 20


def test_too_few_points_give_no_clusters_and_bad_settings_are_refused() -> None:
    assert find_clusters(np.ones((5, DIM), np.float32)).members == ()
    with pytest.raises(ConfigError):
        Discovery(min_cluster_size=1)
    with pytest.raises(ConfigError):
        Discovery(margin=0.0)
    with pytest.raises(ConfigError):
        find_clusters(np.ones(DIM, np.float32))


def test_proposals_name_paths_and_leave_out_a_rejected_cluster() -> None:
    points, truth = blobs([30, 20], orthogonal_centers(2), seed=7)
    paths = [Path(f"/photos/{i:03d}.jpg") for i in range(len(points))]

    proposals = drive(propose(paths, points))
    assert [p.size for p in proposals] == [30, 20]
    assert set(proposals[0].members) == {paths[i] for i in np.flatnonzero(truth == 0)}
    assert set(proposals[0].typical) <= set(proposals[0].members)
    assert proposals[0].to_json()["members"] == [str(p) for p in proposals[0].members]

    # Rejected once, the same cluster (even with a few images more or less) is not offered.
    rejected = frozenset(list(proposals[0].members)[:25])
    again = drive(propose(paths, points, rejected=[rejected]))
    assert [p.members for p in again] == [proposals[1].members]
    with pytest.raises(ConfigError):
        drive(propose(paths[:-1], points))

"""The "check next" order on small points whose answer is known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fewshot_gui.core.predictions import ERROR_INDEX, Labels
from fewshot_gui.core.review_priority import boundary, review_ranks


def make_labels(
    confidence: list[float],
    runner_up_confidence: list[float],
    novelty: list[float] | None = None,
    label: list[int] | None = None,
    pinned: list[bool] | None = None,
    names: list[str] | None = None,
) -> Labels:
    n = len(confidence)
    return Labels(
        paths=[Path(name) for name in names or [f"/f/{i}.jpg" for i in range(n)]],
        class_names=("a", "b"),
        label=np.array(label or [0] * n),
        nearest=np.zeros(n, np.int64),
        confidence=np.array(confidence, np.float32),
        runner_up=np.ones(n, np.int64),
        runner_up_confidence=np.array(runner_up_confidence, np.float32),
        novelty=np.array(novelty or [0.0] * n, np.float32),
        errors=["" if (label or [0] * n)[i] != ERROR_INDEX else "broken" for i in range(n)],
        pinned=None if pinned is None else np.array(pinned),
    )


def order_of(ranks: np.ndarray) -> list[int]:
    return np.argsort(ranks).tolist()


def test_a_torn_image_far_from_the_confirmed_comes_first():
    points = np.array([[0, 1, 0], [0, 0, 1], [1, 0.01, 0]], np.float32)
    labels = make_labels([0.5, 0.99, 0.5], [0.45, 0.01, 0.45])
    confirmed = np.array([[1, 0, 0]], np.float32)
    ranks = review_ranks(labels, lambda rows: points[rows], confirmed, None)
    # torn and far; then sure but far (worth 0.02); torn but next to a confirmed one (~0)
    assert order_of(ranks) == [0, 1, 2]


def test_near_copies_are_not_picked_one_after_another():
    points = np.array([[0, 1, 0], [0, 1, 0.01], [0, 0, 1]], np.float32)
    labels = make_labels([0.5, 0.5, 0.6], [0.45, 0.45, 0.3])
    ranks = review_ranks(labels, lambda rows: points[rows], np.zeros((0, 3), np.float32), None)
    first = order_of(ranks)[0]
    assert first in (0, 1)
    assert order_of(ranks)[1] == 2  # a little less torn, but unlike the first
    # Without the greedy picks the copy would come second: the plain worth order.
    plain = review_ranks(labels, lambda rows: points[rows], np.zeros((0, 3)), None, picks=0)
    assert order_of(plain)[:2] == sorted([0, 1], key=lambda r: int(ranks[r]))


def test_novelty_near_the_threshold_counts_as_a_boundary():
    labels = make_labels([0.99, 0.99, 0.99], [0.01, 0.01, 0.01], novelty=[0.1, 0.49, 2.0])
    near = boundary(labels, threshold=0.5)
    assert near[1] > 0.9 > near[0] and near[1] > near[2]
    assert np.allclose(boundary(labels, None), 0.02, atol=1e-6)


def test_pinned_last_unreadable_before_them_and_the_pool_limit():
    points = np.eye(5, dtype=np.float32)
    labels = make_labels(
        [0.5, 1.0, 0.0, 0.9, 0.6],
        [0.4, 0.0, 0.0, 0.05, 0.3],
        label=[0, 0, ERROR_INDEX, 0, 0],
        pinned=[False, True, False, False, False],
    )
    asked: list[list[int]] = []

    def points_of(rows: np.ndarray) -> np.ndarray:
        asked.append(sorted(rows.tolist()))
        return points[rows]

    ranks = review_ranks(labels, points_of, np.zeros((0, 5), np.float32), None, pool=2)
    assert order_of(ranks) == [0, 4, 3, 2, 1]
    assert asked == [[0, 4]]  # only the pool's points are read


def test_the_same_files_in_any_order_give_the_same_order():
    rng = np.random.default_rng(0)
    n = 300
    points = rng.standard_normal((n, 8)).astype(np.float32)
    confidence = rng.uniform(0.4, 1.0, n).astype(np.float32)
    confidence[::7] = 0.5  # ties, broken by path hash
    second = (1 - confidence) * 0.8
    names = [f"/photos/{i:04d}.jpg" for i in range(n)]
    labels = make_labels(confidence.tolist(), second.tolist(), names=names)
    ranks = review_ranks(labels, lambda rows: points[rows], points[:3], None, pool=64, picks=16)
    assert sorted(ranks.tolist()) == list(range(n))
    assert np.array_equal(
        ranks, review_ranks(labels, lambda r: points[r], points[:3], None, 64, 16)
    )
    shuffle = rng.permutation(n)
    shuffled = make_labels(
        confidence[shuffle].tolist(), second[shuffle].tolist(), names=[names[i] for i in shuffle]
    )
    again = review_ranks(
        shuffled, lambda rows: points[shuffle][rows], points[:3], None, pool=64, picks=16
    )
    # The pool (the head a person reviews) comes out in the same order of files.
    head = [names[i] for i in order_of(ranks)[:64]]
    assert [names[shuffle[i]] for i in order_of(again)[:64]] == head

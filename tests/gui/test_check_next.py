"""The "check next" review order on a real window: ranks from the labeling worker's thread,
the grid in that order, and a confirmation (Enter) that pins a tile to its own label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt

from fewshot_gui.gui.results_model import PATH_ROLE

TIMEOUT = 20_000


def shown_paths(panel) -> list[Path]:
    proxy = panel.proxy
    return [proxy.index(r, 0).data(PATH_ROLE) for r in range(proxy.rowCount())]


def test_check_next_orders_by_the_workers_ranks_and_enter_confirms(
    qtbot, make_window, pattern_class, tmp_path
):
    pattern_class(tmp_path / "examples" / "circle", seed=1, count=2)
    pattern_class(tmp_path / "examples" / "square", seed=2, count=2)
    pattern_class(tmp_path / "unlabeled", seed=1, count=8, start=100)
    pattern_class(tmp_path / "unlabeled", seed=2, count=8, start=200)
    pattern_class(tmp_path / "unlabeled", seed=5, count=8, start=300)  # like neither
    window = make_window()
    window.class_panel.add_files([tmp_path / "examples"], "")
    window.threshold.enabled.setChecked(False)
    window.label_folder(tmp_path / "unlabeled")
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 24 and not window.client.labeling, timeout=TIMEOUT
    )
    results, panel = window.results, window.results_panel
    assert not (results.column("review_rank") < 24).any()  # not ranked while not shown

    least_sure = shown_paths(panel)
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):
        panel.review.setCurrentIndex(panel.review.findData("check_next"))
    ranks = results.column("review_rank")
    assert sorted(ranks.tolist()) == list(range(24))  # a place each, from the worker
    by_rank = [results.path(int(r)) for r in np.argsort(ranks)]
    assert shown_paths(panel) == by_rank
    assert sorted(by_rank) == sorted(least_sure) and by_rank != least_sure

    view = panel.view
    view.setFocus()
    view.setCurrentIndex(panel.proxy.index(0, 0))
    first = panel.selected_paths()[0]
    said = dict(results.labeled_items())[first]
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT) as relabeled:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert window.editor.corrections == {first: said}  # confirmed: pinned to its own label
    assert first in window.classes.examples(window.classes.names().index(said))
    labels = relabeled.args[0]
    assert labels.pinned[labels.paths.index(first)]
    qtbot.waitUntil(lambda: shown_paths(panel)[-1] == first, timeout=TIMEOUT)
    ranks = results.column("review_rank")
    assert int(ranks[results.row_of(first)]) == 23  # the confirmed one goes last
    assert shown_paths(panel)[:-1] == [results.path(int(r)) for r in np.argsort(ranks)][:-1]

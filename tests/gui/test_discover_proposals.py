"""Tools ▸ Discover Classes on a real window: the worker thread proposes, a person rejects and
accepts; an accepted proposal is a class of its typical images and the folder is relabeled."""

from __future__ import annotations

from pathlib import Path

TIMEOUT = 20_000


def labels(window) -> dict[Path, str]:
    return {p: label for p, label in window.results.labeled_items()}


def test_a_proposal_rejected_stays_unknown_and_one_accepted_becomes_a_class(
    qtbot, make_window, pattern_class, tmp_path
) -> None:
    window = make_window()
    examples = {
        "stripes": pattern_class(tmp_path / "examples" / "stripes", 3, 5, start=100),
        "checks": pattern_class(tmp_path / "examples" / "checks", 4, 5, start=100),
    }
    folder = tmp_path / "photos"
    for name, seed in (("stripes", 3), ("checks", 4)):
        pattern_class(folder / name, seed, 14)
    blocks = pattern_class(folder / "blocks", 5, 14)  # a class nobody gave examples of
    window.editor.add_examples(examples)
    window.label_folder(folder)
    qtbot.waitUntil(
        lambda: window.results.rowCount() == 42 and not window.client.labeling, timeout=TIMEOUT
    )
    # The folder's refinement may label blocks as a class; the examples alone do not.
    before = labels(window)
    panel = window.proposals

    with qtbot.waitSignal(window.client.proposed, timeout=TIMEOUT):
        window.discover_action.trigger()
    assert panel.isVisible()
    assert panel.list.count() == 1
    (proposal,) = panel.proposals
    assert set(proposal.members) <= set(blocks) and proposal.size >= 10
    assert len(proposal.typical) == 5 and set(proposal.typical) <= set(proposal.members)

    # Not a class: its images stay unknown, and looking again does not offer it again.
    panel.list.setCurrentRow(0)
    panel.reject_button.click()
    assert panel.list.count() == 0
    with qtbot.waitSignal(window.client.proposed, timeout=TIMEOUT) as found:
        panel.search_button.click()
    assert found.args == [[]] and panel.list.count() == 0
    assert "No group of similar images" in panel.status.text()
    assert labels(window) == before

    # Offered again once the rejection is forgotten, and accepted with a name.
    panel.rejected.clear()
    with qtbot.waitSignal(window.client.proposed, timeout=TIMEOUT):
        panel.search_button.click()
    panel.list.setCurrentRow(0)
    qtbot.keyClicks(panel.name, "blocks")
    with qtbot.waitSignal(window.client.relabeled, timeout=TIMEOUT):
        panel.accept_button.click()

    assert window.classes.names() == ["stripes", "checks", "blocks"]
    assert window.classes.mapping()["blocks"] == list(proposal.typical)
    assert window.editor.undo_stack.undoText() == "Add 5 example(s) to blocks"
    # Labeled again: the new class's images are now labeled as it.
    qtbot.waitUntil(
        lambda: sum(labels(window)[p] == "blocks" for p in blocks) >= 12, timeout=TIMEOUT
    )
    assert all(labels(window)[p] != "blocks" for p in labels(window) if p not in blocks)
    window.editor.undo_stack.undo()  # one step takes the whole class back
    assert window.classes.names() == ["stripes", "checks"]
    with qtbot.waitSignal(window.client.proposed, timeout=TIMEOUT):
        panel.search_button.click()
    panel.list.setCurrentRow(0)
    panel.reject_button.click()
    assert len(panel.rejected) == 1
    window.new_session()  # a new session forgets this one's proposals and rejections
    assert panel.list.count() == 0 and panel.rejected == []

"""Tools ▸ Examples' Confusion on a real window: the table the worker's adaptation reported."""

from __future__ import annotations

TIMEOUT = 20_000


def test_the_confusion_view_shows_the_examples_leave_one_out_table(
    qtbot, make_window, pattern_class, tmp_path
) -> None:
    window = make_window()
    examples = {
        "stripes": pattern_class(tmp_path / "examples" / "stripes", 3, 4),
        "checks": pattern_class(tmp_path / "examples" / "checks", 4, 4),
    }
    with qtbot.waitSignal(window.client.supportReady, timeout=TIMEOUT) as adapted:
        window.editor.add_examples(examples)
    window.confusion_action.trigger()

    dialog = window.confusion
    confusion = adapted.args[0].confusion
    assert dialog.isVisible() and dialog.confusion is confusion
    table = dialog.table
    assert [table.verticalHeaderItem(i).text() for i in range(2)] == ["stripes", "checks"]
    shown = [[int(table.item(i, j).text()) for j in range(3)] for i in range(2)]
    assert shown == confusion.counts.tolist()
    assert sum(map(sum, shown)) == 8  # each example judged once by the other seven

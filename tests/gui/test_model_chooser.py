"""The model chooser names each installed model with what it trades, and loads by name."""

from __future__ import annotations

from pathlib import Path

from fewshot_gui.core.checkpoint import list_models

TIMEOUT = 20_000


def test_the_chooser_says_what_each_photo_model_trades_and_loads_by_name(
    qtbot, make_window, tiny_model: Path
) -> None:
    window = make_window()
    box = window.model_box
    shown = {box.itemData(i): box.itemText(i) for i in range(box.count())}

    assert set(shown) == {name for name, _ in list_models()} | {str(tiny_model)}
    assert shown["photo-lite0-protonet"].startswith("photo-lite0-protonet: fast")
    assert "accurate" in shown["photo-ensemble-protonet"]
    assert box.currentData() == str(tiny_model) == window.model_name

    row = box.findData("photo-lite0-protonet")
    box.setCurrentIndex(row)
    box.activated.emit(row)  # as a click on that row does
    qtbot.waitUntil(
        lambda: window.model_info is not None and window.model_info.name == "photo-lite0-protonet",
        timeout=TIMEOUT,
    )

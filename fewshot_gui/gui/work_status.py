"""The status bar's permanent part: the model and its engine, and a labeling run's progress."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from fewshot_gui.workers.labeling_client import ModelInfo, Progress


class WorkStatus:
    """Widgets added to `bar`: progress, rate and Cancel while a run goes, and the model."""

    def __init__(self, bar: QStatusBar, parent: QWidget) -> None:
        self.progress = QProgressBar(parent)
        self.progress.setMaximumWidth(240)
        self.rate = QLabel(parent)
        self.cancel_button = QPushButton("Cancel", parent)
        self.cancel_button.setToolTip("Stop labeling (Esc)")
        self.device_label = QLabel("no model", parent)
        self.device_label.setToolTip("The device the model runs on")
        for widget in (self.progress, self.rate, self.cancel_button):
            bar.addPermanentWidget(widget)
            widget.hide()
        bar.addPermanentWidget(self.device_label)

    def show_loading(self, name: str) -> None:
        self.device_label.setText(f"loading {name}…")

    def show_no_model(self) -> None:
        self.device_label.setText("no model")

    def show_model(self, info: ModelInfo) -> None:
        size = info.card.get("input", {})
        colour = "grayscale" if size.get("channels") == 1 else "colour"
        self.device_label.setText(f"{info.name} · {info.device} · {info.engine}")
        self.device_label.setToolTip(
            f"{info.name} runs on {info.device} ({info.engine}); it sees images as "
            f"{size.get('size', '?')} px, {colour}"
        )

    def show_preparing(self, info: ModelInfo, percent: int) -> None:
        """The one-time measurement of faster engines; labeling goes on meanwhile."""
        self.device_label.setText(
            f"{info.name} · {info.engine} · preparing the model for this computer: {percent}%"
        )
        self.device_label.setToolTip(
            "Timing the faster engines once, in the background; the model labels meanwhile "
            "and switches when the measurement is done"
        )

    def start_run(self, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)

    def show_progress(self, progress: Progress) -> None:
        self.progress.setValue(progress.done)
        minutes, seconds = divmod(round(progress.seconds_left), 60)
        self.rate.setText(
            f"{progress.images_per_second:.0f} images/s · {minutes}:{seconds:02d} left"
        )

    def set_busy(self, busy: bool) -> None:
        for widget in (self.progress, self.rate, self.cancel_button):
            widget.setVisible(busy)

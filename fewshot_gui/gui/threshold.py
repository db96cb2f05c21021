"""The unknown-threshold bar: off, the engine's automatic threshold, or a value on a slider."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from fewshot_gui.core.session import Threshold

STEPS = 1000
# Moving the slider re-labels everything from the cache; this caps it at ~15 a second.
DEBOUNCE_MS = 60


class ThresholdBar(QWidget):
    """`modeChanged` carries "off", "auto" or a novelty value above which images are unknown."""

    modeChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._mode: Threshold = "auto"
        self._auto: float | None = None
        self._high = 1e-6  # the slider's right end, on the novelty scale
        self.enabled = QCheckBox("Mark unknown", self)
        self.enabled.setChecked(True)
        self.enabled.setToolTip("Images far from every class become 'unknown'")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip(
            "Novelty threshold: images farther than this from every class are 'unknown'. "
            "Left marks more images unknown."
        )
        self.value = QLabel("auto", self)
        self.value.setMinimumWidth(90)
        self.auto = QPushButton("Auto", self)
        self.auto.setToolTip("Use the threshold calibrated from your examples")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.enabled)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.value)
        layout.addWidget(self.auto)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(lambda: self.modeChanged.emit(self._mode))
        self.slider.valueChanged.connect(self._on_slider)
        self.enabled.toggled.connect(self._on_enabled)
        self.auto.clicked.connect(lambda: self.set_mode("auto", emit=True))

    @property
    def mode(self) -> Threshold:
        return self._mode

    @property
    def auto_threshold(self) -> float | None:
        return self._auto

    def set_auto(self, threshold: float | None) -> None:
        """The threshold the engine calibrated from the examples."""
        self._auto = threshold
        self._fit(np.zeros(0))

    def set_novelties(self, novelties: Sequence[float] | np.ndarray) -> None:
        """Fit the slider to the novelty values of the images labeled so far."""
        self._fit(np.asarray(novelties, dtype=np.float64))

    def _fit(self, novelties: np.ndarray) -> None:
        finite = novelties[np.isfinite(novelties)]
        highest = float(finite.max()) if len(finite) else 0.0
        highest = max(highest, self._auto or 0.0)
        self._high = max(self._high if not len(novelties) else 0.0, 1e-6, highest * 1.1)
        self._show()

    def set_mode(self, mode: Threshold, emit: bool = False) -> None:
        self._mode = mode
        self._show()
        if emit:
            self._debounce.start()

    def value_at(self, position: int) -> float:
        return self._high * position / STEPS

    def _show(self) -> None:
        mode = self._mode
        shown = self._auto if mode == "auto" else mode if isinstance(mode, float) else None
        blockers = [self.slider.blockSignals(True), self.enabled.blockSignals(True)]
        self.enabled.setChecked(mode != "off")
        self.slider.setEnabled(mode != "off")
        if shown is not None:
            self.slider.setValue(round(min(1.0, shown / self._high) * STEPS))
        self.slider.blockSignals(blockers[0])
        self.enabled.blockSignals(blockers[1])
        if mode == "off":
            self.value.setText("off")
        elif mode == "auto":
            self.value.setText("auto" if shown is None else f"auto {shown:.3g}")
        else:
            self.value.setText(f"{mode:.3g}")

    def _on_slider(self, position: int) -> None:
        self.set_mode(self.value_at(position), emit=True)

    def _on_enabled(self, on: bool) -> None:
        self.set_mode("auto" if on else "off", emit=True)

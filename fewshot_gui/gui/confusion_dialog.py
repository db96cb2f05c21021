"""Tools ▸ Examples' Confusion: each class's examples against what the model predicts for
each when it has learned from all the others (core.confusion), refreshed at every adaptation."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QDialog, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from fewshot_gui.core.confusion import Confusion
from fewshot_gui.core.predictions import SupportReport
from fewshot_gui.workers.labeling_client import LabelingClient

RIGHT = QColor(200, 235, 200)  # the diagonal: examples recognised as their own class
WRONG = QColor(245, 205, 195)  # off it: a mix-up worth more or clearer examples


class ConfusionDialog(QDialog):
    """A table: a row per class (its examples), a column per predicted class and `unknown`,
    with each row's leave-one-out accuracy; the worst mix-ups are named above it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Examples' Confusion")
        self.confusion: Confusion | None = None
        self.summary = QLabel("Add examples to two classes or more to see how they are told apart")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(self)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        self.resize(560, 360)

    def start(self, client: LabelingClient) -> None:
        client.supportReady.connect(self.set_report)

    def set_report(self, report: SupportReport) -> None:
        if report.confusion is not None:
            self.show_confusion(report.confusion)

    def show_confusion(self, confusion: Confusion) -> None:
        self.confusion = confusion
        rows, columns = confusion.class_names, (*confusion.columns, "accuracy")
        self.table.setRowCount(len(rows))
        self.table.setColumnCount(len(columns))
        self.table.setVerticalHeaderLabels(list(rows))
        self.table.setHorizontalHeaderLabels([f"as {c}" for c in columns[:-1]] + ["accuracy"])
        accuracy = confusion.accuracy()
        for i in range(len(rows)):
            for j in range(len(columns) - 1):
                count = int(confusion.counts[i, j])
                item = QTableWidgetItem(str(count))
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if count:
                    item.setBackground(QBrush(RIGHT if i == j else WRONG))
                self.table.setItem(i, j, item)
            alone = f" ({confusion.alone[i]} alone)" if confusion.alone[i] else ""
            text = "n/a" if math.isnan(accuracy[i]) else f"{100 * accuracy[i]:.0f}%"
            self.table.setItem(i, len(columns) - 1, QTableWidgetItem(text + alone))
        self.table.resizeColumnsToContents()
        mix_ups = confusion.mix_ups()[:3]
        self.summary.setText(
            "Each example judged by the model adapted to all the others. Mixed up most: "
            + "; ".join(f"{n} {name} as {other}" for name, other, n in mix_ups)
            if mix_ups
            else "Each example judged by the model adapted to all the others: no mix-ups."
        )

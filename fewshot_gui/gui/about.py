"""The About box with the engines and licenses, and the first-run hint."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from PySide6 import __version__ as pyside_version
from PySide6.QtWidgets import QMessageBox, QWidget

from fewshot_gui import __version__

FIRST_RUN_HINT = (
    "Drag a few example images of each class onto the class list on the left (or a folder "
    "with one subfolder per class), then drop the folder to label onto the grid, or use "
    "File ▸ Open Folder to Label."
)

LICENSES = (
    ("FewShot Labeler", "MIT"),
    ("Qt for Python (PySide6)", "LGPL-3.0"),
    ("PyTorch", "BSD-3-Clause"),
    ("torchvision", "BSD-3-Clause"),
    ("NumPy", "BSD-3-Clause"),
    ("Pillow", "MIT-CMU (HPND)"),
    ("safetensors", "Apache-2.0"),
    ("platformdirs", "MIT"),
    ("EfficientNet-Lite0 weights", "Apache-2.0"),
    ("ONNX Runtime", "MIT"),
    ("ONNX", "Apache-2.0"),
    ("ONNX Script", "MIT"),
    ("OpenVINO (when installed)", "Apache-2.0"),
)

# (name, distribution, the --engine choices it runs): every engine of core.engines but auto.
# Versions come from package metadata: importing the engines would import torch here.
ENGINES = (
    ("PyTorch", "torch", ("torch", "torch-bf16", "torch-fp16")),
    ("ONNX Runtime", "onnxruntime", ("onnxruntime",)),
    ("OpenVINO", "openvino", ("openvino", "openvino-bf16")),
)


def engine_versions() -> dict[str, str | None]:
    """The installed version of each engine's distribution in ENGINES, None where missing."""
    found: dict[str, str | None] = {}
    for _name, distribution, _choices in ENGINES:
        try:
            found[distribution] = version(distribution)
        except PackageNotFoundError:
            found[distribution] = None
    return found


def _engine_rows() -> str:
    rows = []
    versions = engine_versions()
    for name, distribution, choices in ENGINES:
        where = versions[distribution] or f"not installed (pip install {distribution})"
        rows.append(f"<tr><td>{name}</td><td>{where}</td><td>{', '.join(choices)}</td></tr>")
    return "".join(rows)


def about_text() -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{license}</td></tr>" for name, license in LICENSES)
    return (
        f"<h3>FewShot Labeler {__version__}</h3>"
        "<p>Label folders of images from a few examples per class, with ProtoNet and MAML "
        "models that adapt on your computer. Nothing is uploaded.</p>"
        f"<p>Built with Qt for Python {pyside_version}.</p>"
        "<p>Engines it can run the model on (the fastest one here is picked for you):</p>"
        "<table cellspacing='6'><tr><th align='left'>Engine</th><th align='left'>Version</th>"
        f"<th align='left'>Engine names</th></tr>{_engine_rows()}</table>"
        f"<table cellspacing='6'><tr><th align='left'>Component</th>"
        f"<th align='left'>License</th></tr>{rows}</table>"
    )


def show_about(parent: QWidget) -> QMessageBox:
    box = QMessageBox(parent)
    box.setWindowTitle("About FewShot Labeler")
    box.setTextFormat(box.textFormat().RichText)
    box.setText(about_text())
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box

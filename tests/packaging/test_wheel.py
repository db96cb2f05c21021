"""The wheel carries the resources and both entry points, and works once installed."""

from __future__ import annotations

import configparser
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from fewshot_gui.gui.launcher import EXIT_MISSING_QT

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "fewshot_gui", "resources")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline from a copy of the checkout, so the checkout gets no build/."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp / "dist"
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)]
    result = subprocess.run(
        [*command, str(source)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("fewshot_gui-*.whl")
    return built


def files_under(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_wheel_carries_every_resource_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    resources = files_under(ROOT / "resources")
    missing = {f"fewshot_gui/resources/{name}" for name in resources} - names
    assert not missing, f"not in the wheel: {sorted(missing)}"
    models = [path for path in (ROOT / "resources" / "models").iterdir() if path.is_dir()]
    assert models
    for model in models:
        for part in ("model.safetensors", "card.json"):
            assert f"fewshot_gui/resources/models/{model.name}/{part}" in names
    for folder in ("demo/examples", "demo/unlabeled"):
        assert any(n.startswith(f"fewshot_gui/resources/{folder}/") for n in names)
    assert "fewshot_gui/resources/icons/fewshot-gui.svg" in names


def test_wheel_carries_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {f"fewshot_gui/{name}" for name in files_under(ROOT / "fewshot_gui")}
    missing = {name for name in modules if name.endswith(".py")} - names
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_wheel_declares_both_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(name).decode()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert entry_points["console_scripts"]["fewshot"] == "fewshot_gui.cli:main"
    assert entry_points["gui_scripts"]["fewshot-gui"] == "fewshot_gui.gui.launcher:main"


def test_installed_package_finds_its_own_resources(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(site)
    # A stray top-level `resources/` beside the package must not be taken for ours.
    (site / "resources").mkdir()
    code = "from fewshot_gui.core.paths import resources_dir; print(resources_dir())"
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == site / "fewshot_gui" / "resources"


def test_wheel_requires_the_gui_toolkit(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode())
    required = [Requirement(line) for line in metadata.get_all("Requires-Dist", [])]
    # Required on every Python (the markers only pick which releases), outside any extra.
    for python in ("3.11", "3.12", "3.13"):
        wanted = {
            r.name.lower()
            for r in required
            if r.marker is None or r.marker.evaluate({"python_version": python, "extra": ""})
        }
        assert "pyside6-essentials" in wanted, python


# What makes a window: left out of the fresh venv to see what `fewshot-gui` says without it.
QT_ENTRIES = ("PySide6", "shiboken6", "pyside6_essentials", "shiboken6-")


def _is_qt(name: str) -> bool:
    return name.lower().startswith(tuple(entry.lower() for entry in QT_ENTRIES))


def _run(command: list[str | Path], **options: object) -> subprocess.CompletedProcess[str]:
    # pip sees only this environment: no config file, index or find-links of the machine.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        **options,  # type: ignore[arg-type]
    )


def test_fresh_venv_installs_the_wheel_and_opens_or_says_why(wheel: Path, tmp_path: Path) -> None:
    """A plain venv (no system site-packages) gets the wheel through pip's own resolver.

    Torch and friends are too big to install per test run, so the venv sees this venv's
    packages through a .pth to a folder of links to them, without Qt at first.
    """
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    found = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    purelib = Path(found.stdout.strip())
    shared = tmp_path / "shared-packages"
    shared.mkdir()
    (purelib / "shared-packages.pth").write_text(f"{shared}\n")
    ours = Path(site.getsitepackages()[0])
    skip = ("fewshot_gui", "__editable__", "__pycache__")
    entries = [p for p in ours.iterdir() if not p.name.startswith(skip) and p.suffix != ".pth"]
    for entry in entries:
        if not _is_qt(entry.name):
            (shared / entry.name).symlink_to(entry)
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--no-index", wheel]

    refused = _run(install)
    assert refused.returncode != 0
    assert "pyside6-essentials" in (refused.stdout + refused.stderr).lower()

    qt = [entry for entry in entries if _is_qt(entry.name)]
    assert qt, "PySide6 is not installed in the test venv"
    for entry in qt:
        (shared / entry.name).symlink_to(entry)
    installed = _run(install)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    launcher = fresh / ("Scripts/fewshot-gui.exe" if os.name == "nt" else "bin/fewshot-gui")
    opened = _run([launcher, "--version"], cwd=tmp_path)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.strip().startswith("fewshot-gui ")

    for entry in qt:
        (shared / entry.name).unlink()
    without_qt = _run([launcher, "--version"], cwd=tmp_path)
    assert without_qt.returncode == EXIT_MISSING_QT
    lines = without_qt.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install PySide6-Essentials" in lines[0], without_qt.stderr
    assert "Traceback" not in without_qt.stderr and not without_qt.stdout

"""The wheel carries the resources and both entry points, and finds them once installed."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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
    assert entry_points["gui_scripts"]["fewshot-gui"] == "fewshot_gui.gui.app:main"


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

"""packaging/linux: the desktop entry, metainfo and icons agree with each other and the app."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
APP_ID = "org.fewshotgui.FewShotLabeler"
PNG_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def test_icons_are_the_window_icon_at_every_size() -> None:
    hicolor = LINUX / "icons" / "hicolor"
    svg = hicolor / "scalable" / "apps" / f"{APP_ID}.svg"
    assert svg.read_bytes() == (ROOT / "resources" / "icons" / "fewshot-gui.svg").read_bytes()
    for size in PNG_SIZES:
        with Image.open(hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png") as png:
            assert png.size == (size, size)


def test_desktop_entry_names_the_app_icon_and_command() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(LINUX / f"{APP_ID}.desktop")
    section = entry["Desktop Entry"]
    assert section["Icon"] == APP_ID
    assert section["Exec"].split()[0] == "fewshot-gui"
    metainfo = (LINUX / f"{APP_ID}.metainfo.xml").read_text()
    assert f"<id>{APP_ID}</id>" in metainfo
    assert f'<launchable type="desktop-id">{APP_ID}.desktop</launchable>' in metainfo


def test_window_announces_the_desktop_entry() -> None:
    from fewshot_gui.gui.app import DESKTOP_FILE

    assert DESKTOP_FILE == APP_ID


@pytest.mark.parametrize(
    "command",
    [
        ["desktop-file-validate", f"{APP_ID}.desktop"],
        ["appstreamcli", "validate", "--no-net", f"{APP_ID}.metainfo.xml"],
    ],
)
def test_validators_accept_the_files(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed (Debian: desktop-file-utils, appstream)")
    result = subprocess.run(command, cwd=LINUX, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

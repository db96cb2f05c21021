"""Tests for safe image opening, conversion to RGB and image file discovery."""

import errno
import os
import struct
import sys
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fewshot_gui.core import images
from fewshot_gui.core.errors import DataError, ImageLoadError
from fewshot_gui.core.images import (
    IMAGE_SUFFIXES,
    image_identity,
    is_image_path,
    iter_image_files,
    load_image,
    load_rgb_array,
    thumbnail_array,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def _save(image: Image.Image, path: Path, **params: object) -> Path:
    image.save(path, **params)
    return path


def _pixels(image: Image.Image) -> list[tuple[int, ...]]:
    return [image.getpixel((x, 0)) for x in range(image.width)]


def _row(mode: str, values: Sequence[float | tuple[int, ...]]) -> Image.Image:
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    return image


def _png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims `width` x `height` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _deny_access(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `path` unreadable by its mode, or for root (whom modes do not stop) by making the
    calls images.py uses to read it fail with the error the kernel gives other users."""
    path.chmod(0)
    if os.geteuid() != 0:
        return
    real_open, real_scandir = open, os.scandir

    def refuse_path(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(target: str | Path, *args: object, **kwargs: object) -> Any:
            if Path(target) == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(target))
            return real(target, *args, **kwargs)

        return call

    monkeypatch.setattr(images, "open", refuse_path(real_open), raising=False)
    monkeypatch.setattr(images.os, "scandir", refuse_path(real_scandir))


@pytest.fixture(scope="module")
def huge_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("huge")
    return _save(Image.new("RGB", (6000, 4000), (10, 200, 30)), folder / "huge.jpg", quality=50)


@pytest.fixture
def jpeg(tmp_path: Path) -> Path:
    gradient = np.tile(np.arange(0, 300, dtype=np.uint8)[None, :, None], (200, 1, 3))
    return _save(Image.fromarray(gradient), tmp_path / "photo.jpg", quality=90)


# --- colour modes -----------------------------------------------------------------------


def test_rgba_is_flattened_onto_white(tmp_path: Path) -> None:
    source = _row("RGBA", [(255, 0, 0, 0), (255, 0, 0, 255), (0, 0, 255, 128)])
    image = load_image(_save(source, tmp_path / "a.png"))
    assert image.mode == "RGB"
    assert _pixels(image) == [WHITE, RED, (127, 127, 255)]


def test_la_is_flattened_onto_white(tmp_path: Path) -> None:
    image = load_image(_save(_row("LA", [(0, 0), (0, 255), (100, 255)]), tmp_path / "la.png"))
    assert _pixels(image) == [WHITE, (0, 0, 0), (100, 100, 100)]


def test_palette_transparency_is_flattened_onto_white(tmp_path: Path) -> None:
    source = _row("P", [0, 1])
    source.putpalette([255, 0, 0, 0, 255, 0])
    image = load_image(_save(source, tmp_path / "p.png", transparency=0))
    assert _pixels(image) == [WHITE, GREEN]


def test_palette_with_alpha_band_is_flattened_onto_white(tmp_path: Path) -> None:
    source = _row("PA", [(0, 0), (1, 255)])
    source.putpalette([255, 0, 0, 0, 0, 255])
    image = load_image(_save(source, tmp_path / "pa.tif"))
    assert _pixels(image) == [WHITE, BLUE]


def test_sixteen_bit_png_spans_full_eight_bit_range(tmp_path: Path) -> None:
    samples = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(samples), tmp_path / "deep.png")
    with Image.open(path) as raw:
        assert raw.mode == "I;16"
    assert _pixels(load_image(path)) == [(0, 0, 0), (1, 1, 1), (128, 128, 128), WHITE]


def test_big_endian_sixteen_bit_tiff(tmp_path: Path) -> None:
    source = Image.frombytes("I;16B", (2, 1), bytes([0, 0, 255, 255]))
    path = _save(source, tmp_path / "be.tif")
    with Image.open(path) as raw:
        assert raw.mode == "I;16B"
    assert _pixels(load_image(path)) == [(0, 0, 0), WHITE]


def test_thirty_two_bit_integers_in_sixteen_bit_range_scale_like_sixteen_bit(
    tmp_path: Path,
) -> None:
    path = _save(_row("I", [0, 32768, 65535]), tmp_path / "i32.tif")
    assert _pixels(load_image(path)) == [(0, 0, 0), (128, 128, 128), WHITE]


def test_thirty_two_bit_integers_outside_sixteen_bit_range_are_stretched(tmp_path: Path) -> None:
    path = _save(_row("I", [-1000, 0, 1000]), tmp_path / "signed.tif")
    assert _pixels(load_image(path)) == [(0, 0, 0), (128, 128, 128), WHITE]


def test_float_in_unit_range_maps_one_to_white(tmp_path: Path) -> None:
    path = _save(_row("F", [0.0, 0.25, 1.0]), tmp_path / "unit.tif")
    assert _pixels(load_image(path)) == [(0, 0, 0), (64, 64, 64), WHITE]


def test_float_outside_unit_range_is_stretched_and_nan_is_black(tmp_path: Path) -> None:
    path = _save(_row("F", [-2.0, 0.0, 2.0, float("nan")]), tmp_path / "wide.tif")
    assert _pixels(load_image(path)) == [(0, 0, 0), (128, 128, 128), WHITE, (0, 0, 0)]


def test_cmyk_cyan_becomes_rgb_cyan(tmp_path: Path) -> None:
    source = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    from_tiff = load_image(_save(source, tmp_path / "cmyk.tif"))
    from_jpeg = load_image(_save(source, tmp_path / "cmyk.jpg", quality=95))
    assert from_tiff.getpixel((4, 4)) == (0, 255, 255)
    assert np.abs(np.subtract(from_jpeg.getpixel((4, 4)), (0, 255, 255))).max() <= 3


def test_one_bit_and_grayscale(tmp_path: Path) -> None:
    bilevel = load_image(_save(_row("1", [0, 1]), tmp_path / "bits.png"))
    gray = load_image(_save(_row("L", [77]), tmp_path / "gray.png"))
    assert _pixels(bilevel) == [(0, 0, 0), WHITE]
    assert _pixels(gray) == [(77, 77, 77)]


# --- formats and orientation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "params"),
    [(".webp", {"lossless": True}), (".bmp", {}), (".tiff", {}), (".png", {})],
)
def test_lossless_formats_round_trip(
    tmp_path: Path, suffix: str, params: dict[str, object]
) -> None:
    source = _row("RGB", [RED, GREEN, BLUE])
    image = load_image(_save(source, tmp_path / f"x{suffix}", **params))
    assert _pixels(image) == [RED, GREEN, BLUE]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    source = Image.new("RGB", (40, 20), RED)
    source.paste(BLUE, (20, 0, 40, 20))
    exif = source.getexif()
    exif[0x0112] = 6
    image = load_image(_save(source, tmp_path / "rotated.jpg", exif=exif, quality=95))
    assert image.size == (20, 40)
    # Orientation 6 means "rotate 90 degrees clockwise to display": the left half goes on top.
    top, bottom = image.getpixel((10, 5)), image.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 50
    assert bottom[2] > 200 and bottom[0] < 50


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), BLUE)]
    path = _save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(path) as raw:
        assert raw.n_frames == 2
    assert load_image(path).getpixel((1, 1)) == RED


def test_huge_jpeg_decodes_at_reduced_size(huge_jpeg: Path) -> None:
    image = load_image(huge_jpeg, min_side=224)
    assert 224 <= min(image.size) <= 2000
    assert image.width / image.height == pytest.approx(1.5, rel=0.01)


def test_draft_lets_a_jpeg_over_max_pixels_load(huge_jpeg: Path) -> None:
    with pytest.raises(ImageLoadError, match=r"too large \(24 megapixels\)"):
        load_image(huge_jpeg, max_pixels=1_000_000)
    assert min(load_image(huge_jpeg, min_side=224, max_pixels=1_000_000).size) >= 224


# --- refused files ------------------------------------------------------------------------


def test_png_claiming_billions_of_pixels_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(_png_claiming_size(tmp_path / "bomb.png", 100_000, 100_000))


def test_image_between_pillow_limits_is_refused_without_a_warning(tmp_path: Path) -> None:
    path = _png_claiming_size(tmp_path / "big.png", 10_000, 10_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageLoadError, match=r"too large \(100 megapixels\)"):
            load_image(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_jpeg_past_pillows_hard_limit_still_drafts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpeg_path = _save(Image.new("RGB", (1200, 800), GREEN), tmp_path / "wide.jpg")
    png_path = _save(Image.new("RGB", (1200, 800), GREEN), tmp_path / "wide.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)
    assert load_image(jpeg_path, min_side=100).size == (150, 100)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(png_path, min_side=100)


def test_smaller_max_pixels_refuses_an_ordinary_image(jpeg: Path) -> None:
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(jpeg, max_pixels=300 * 200 - 1)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_refused(tmp_path: Path, suffix: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(Image.fromarray(noise), tmp_path / f"whole{suffix}")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match="truncated or corrupt"):
        load_image(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").touch()
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(tmp_path / "empty.jpg")


def test_text_with_image_suffix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("shopping list: milk, eggs\n")
    with pytest.raises(ImageLoadError, match="not a supported image file"):
        load_image(tmp_path / "notes.jpg")


def test_renamed_file_of_a_disallowed_format_is_refused(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "image.pcx", format="PCX")
    path.rename(tmp_path / "image.png")
    with pytest.raises(ImageLoadError, match="not a supported image file"):
        load_image(tmp_path / "image.png")


def test_renamed_file_of_an_allowed_format_loads(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (4, 4), BLUE), tmp_path / "image.png")
    path.rename(tmp_path / "image.jpg")
    assert load_image(tmp_path / "image.jpg").getpixel((0, 0)) == BLUE


def test_permission_denied(jpeg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _deny_access(jpeg, monkeypatch)
    with pytest.raises(ImageLoadError, match="permission denied"):
        load_image(jpeg)


def test_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "link.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(ImageLoadError, match="broken symbolic link"):
        load_image(tmp_path / "link.jpg")


def test_file_deleted_between_listing_and_loading(jpeg: Path) -> None:
    [listed] = iter_image_files(jpeg.parent)
    listed.unlink()
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(listed)
    with pytest.raises(ImageLoadError, match="file not found"):
        image_identity(listed)


def test_folder_named_like_an_image(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").mkdir()
    with pytest.raises(ImageLoadError, match="a folder, not an image file"):
        load_image(tmp_path / "a.jpg")


def test_heic_without_pillow_heif(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(ImageLoadError, match="HEIC needs the optional package pillow-heif"):
        load_image(tmp_path / "phone.heic")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count files")
def test_no_file_handles_leak(jpeg: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        load_rgb_array(jpeg, 32)
        thumbnail_array(jpeg, 32)
        with pytest.raises(ImageLoadError):
            load_image(tmp_path / "bad.png")
    assert len(os.listdir("/proc/self/fd")) == before


# --- arrays and identity ------------------------------------------------------------------


def test_load_rgb_array_resizes_shorter_side_and_crops_centre(tmp_path: Path) -> None:
    source = Image.new("RGB", (300, 200), RED)
    source.paste(GREEN, (100, 0, 200, 200))
    source.paste(BLUE, (200, 0, 300, 200))
    array = load_rgb_array(_save(source, tmp_path / "thirds.png"), 224)
    assert array.shape == (224, 224, 3)
    assert array.dtype == np.uint8
    assert array.flags.writeable
    # The 200-pixel crop keeps columns 50..250: a quarter red, half green, a quarter blue.
    assert tuple(array[112, 20]) == RED
    assert tuple(array[112, 112]) == GREEN
    assert tuple(array[112, 203]) == BLUE


def test_load_rgb_array_enlarges_small_images(jpeg: Path) -> None:
    assert load_rgb_array(jpeg, 256).shape == (256, 256, 3)


def test_thumbnail_keeps_aspect_ratio(tmp_path: Path, huge_jpeg: Path) -> None:
    wide = _save(Image.new("RGB", (400, 100), RED), tmp_path / "wide.png")
    small = _save(Image.new("RGB", (30, 20), RED), tmp_path / "small.png")
    assert thumbnail_array(wide, 64).shape == (16, 64, 3)
    assert thumbnail_array(small, 64).shape == (20, 30, 3)
    assert thumbnail_array(huge_jpeg, 96).shape == (64, 96, 3)
    assert thumbnail_array(huge_jpeg, 96).dtype == np.uint8


def test_image_identity_follows_content_changes(jpeg: Path, tmp_path: Path) -> None:
    path_text, size, mtime_ns = image_identity(jpeg)
    assert path_text == str(jpeg.resolve())
    assert size == jpeg.stat().st_size
    os.utime(jpeg, ns=(mtime_ns, mtime_ns + 1_000_000_000))
    assert image_identity(jpeg)[2] == mtime_ns + 1_000_000_000
    _save(Image.new("RGB", (8, 8)), jpeg)
    assert image_identity(jpeg)[1] != size
    (tmp_path / "alias.jpg").symlink_to(jpeg)
    assert image_identity(tmp_path / "alias.jpg") == image_identity(jpeg)


# --- discovery ----------------------------------------------------------------------------


def test_is_image_path() -> None:
    assert {
        ".jpg",
        ".jpeg",
        ".png",
        ".webp",
        ".bmp",
        ".gif",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
    } == (IMAGE_SUFFIXES)
    assert is_image_path(Path("holiday/IMG_1.JPG"))
    assert is_image_path(Path("scan.TiF"))
    assert not is_image_path(Path(".hidden.png"))
    assert not is_image_path(Path("notes.txt"))
    assert not is_image_path(Path("jpg"))


def test_iter_image_files_walks_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for relative in [
        "b/2.png",
        "b/1.JPG",
        "a.jpg",
        "c/d/deep.webp",
        "notes.txt",
        ".hidden.png",
        ".cache/x.png",
        "b/.thumbs/y.jpg",
    ]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "dir.jpg" / "inside.gif").write_bytes(b"x")
    (tmp_path / "c" / "loop").symlink_to(tmp_path)
    (tmp_path / "c" / "dangling.png").symlink_to(tmp_path / "nowhere.png")

    found = [path.relative_to(tmp_path).as_posix() for path in iter_image_files(tmp_path)]

    assert found == [
        "a.jpg",
        "b/1.JPG",
        "b/2.png",
        "c/d/deep.webp",
        "c/dangling.png",
        "dir.jpg/inside.gif",
    ]
    assert [p.as_posix() for p in iter_image_files(tmp_path)] == [
        (tmp_path / relative).as_posix() for relative in found
    ]


def test_a_file_symlink_loop_is_listed_and_reported_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    _save(Image.new("RGB", (8, 8), RED), tmp_path / "c.png")

    found = list(iter_image_files(tmp_path))

    assert [p.name for p in found] == ["a.png", "b.png", "c.png", "dangling.png"]
    for name in ("a.png", "b.png"):
        with pytest.raises(ImageLoadError, match="symbolic link loop"):
            image_identity(tmp_path / name)
        with pytest.raises(ImageLoadError, match="symbolic link loop"):
            load_image(tmp_path / name)
    with pytest.raises(ImageLoadError, match="broken symbolic link"):
        image_identity(tmp_path / "dangling.png")
    assert image_identity(tmp_path / "c.png")[1] == (tmp_path / "c.png").stat().st_size


def test_iter_image_files_rejects_a_missing_or_non_folder_root(tmp_path: Path) -> None:
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="folder not found"):
        iter_image_files(tmp_path / "missing")
    with pytest.raises(DataError, match="not a folder"):
        iter_image_files(tmp_path / "file.png")


def test_iter_image_files_skips_an_unreadable_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for relative in ["open/1.png", "locked/2.png"]:
        (tmp_path / relative).parent.mkdir()
        (tmp_path / relative).write_bytes(b"x")
    _deny_access(tmp_path / "locked", monkeypatch)
    assert list(iter_image_files(tmp_path)) == [tmp_path / "open" / "1.png"]


def test_iter_image_files_rejects_an_unreadable_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _deny_access(tmp_path, monkeypatch)
    with pytest.raises(DataError, match="cannot read folder"):
        iter_image_files(tmp_path)


def test_min_side_must_be_positive(jpeg: Path) -> None:
    with pytest.raises(ValueError, match="min_side"):
        load_image(jpeg, min_side=0)

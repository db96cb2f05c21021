"""FewShot Labeler: label folders of images from a few examples per class."""

__version__ = "0.1.0"

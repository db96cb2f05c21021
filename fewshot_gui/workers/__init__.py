"""Thin Qt bridge (QtCore only): runs core generators off the GUI thread."""

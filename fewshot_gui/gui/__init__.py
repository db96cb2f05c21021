"""Widgets, item models and dialogs: wiring, not logic."""

"""Notebook widgets: the live graph (anywidget) and the settings forms (ipywidgets)."""

from .graph import GraphWidget

__all__ = ["GraphWidget"]

"""Notebook widgets: the live graph (anywidget) and the settings forms (ipywidgets)."""

from .graph import GraphWidget
from .settings_form import SettingsForm, SettingsPanel, settings_panel

__all__ = ["GraphWidget", "SettingsForm", "SettingsPanel", "settings_panel"]

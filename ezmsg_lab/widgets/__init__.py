"""Notebook widgets: the live graph (anywidget) and the settings forms (ipywidgets)."""

from .settings_form import SettingsForm, SettingsPanel, settings_panel

__all__ = ["SettingsForm", "SettingsPanel", "settings_panel"]

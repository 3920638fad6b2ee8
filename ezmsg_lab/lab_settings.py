"""Validated live tuning: ``lab.set``, forms, undo (mixed into :class:`~ezmsg_lab.Lab`)."""

from __future__ import annotations


class SettingsMixin:
    """Settings API of a Lab; see the Settings issue."""

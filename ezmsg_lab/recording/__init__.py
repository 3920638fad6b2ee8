"""Recordings: one data-only file per session (see :mod:`.container`), loaded offline.

Pure: no ezmsg. ``lab.record(path)`` (services/recording.py) writes them and
``ezmsg_lab.load(path)`` reads them.
"""

from .container import FORMAT_VERSION
from .loaded import Recording, load

__all__ = ["FORMAT_VERSION", "Recording", "load"]

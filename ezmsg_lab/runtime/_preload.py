"""Imported by the fork server as it starts: the modules of the first pipeline it serves.

The Lab lists them in ``EZMSG_LAB_FORKSERVER_PRELOAD`` (the fork server inherits the
kernel's environment when it starts). Each is imported inside ``try``: multiprocessing's
own preload only forgives ``ImportError``, and a module raising anything else would kill
the fork server, and with it every later forkserver launch of the kernel. A module that
fails here is simply imported by each unit process, as without the preload, and fails
there with a traceback the Lab reports.
"""

from __future__ import annotations

import contextlib
import importlib
import os

ENV = "EZMSG_LAB_FORKSERVER_PRELOAD"

for _name in filter(None, os.environ.get(ENV, "").split(",")):
    with contextlib.suppress(Exception):
        importlib.import_module(_name)

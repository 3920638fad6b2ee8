"""The embedded GraphServer listens on loopback only unless told otherwise, and binding
elsewhere warns that ezmsg's protocol unpickles what clients send."""

from __future__ import annotations

import os
import warnings

import psutil
import pytest

from ezmsg_lab import Lab

pytestmark = pytest.mark.integration


def _listening(port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(os.getpid()).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def test_embedded_server_listens_on_loopback_only_by_default(figures):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the default
        with Lab() as lab:
            assert _listening(lab.address.port) == {"127.0.0.1"}
    figures(what="embedded server binds loopback by default", tried=1)


def test_binding_elsewhere_is_explicit_and_warns(figures):
    with pytest.warns(UserWarning, match="unpickles what clients send") as caught:
        lab = Lab(host="0.0.0.0")
    try:
        assert _listening(lab.address.port) == {"0.0.0.0"}
        assert "run code in your kernel" in str(caught[0].message)
    finally:
        lab.close()
    figures(what="non-loopback bind warns", tried=1)

"""pytest plugin: a ``lab`` fixture for testing your own ezmsg pipelines in CI.

Installed with ezmsg-lab (registered under ``pytest11``), so any test can ask for
``lab``: a fresh :class:`~ezmsg_lab.Lab` (GraphServer on loopback) closed after the
test, with every pipeline and process it started. A ``lab`` fixture of your own (in a
conftest.py) takes precedence, as pytest fixtures do.

Examples
--------
.. code-block:: python

    from ezmsg_lab.demo import DemoPipeline

    def test_demo_keeps_its_rate(lab):
        lab.launch(DemoPipeline(), name="DEMO")
        lab.expect_rate("DEMO/SOURCE/OUTPUT_SIGNAL", 100, tol=0.1, window=2.0)
        lab.expect_latency("DEMO/FILTER/INPUT_SIGNAL", p95_ms=20.0)

A failed expectation is an ``AssertionError`` that names the measured figures and the
window and sample counts they rest on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .lab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A Lab for one test, closed afterwards (its pipelines and processes stopped)."""
    from .lab import Lab  # imported when used: the plugin loads in every pytest run

    instance = Lab()
    try:
        yield instance
    finally:
        instance.close()

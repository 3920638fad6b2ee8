"""Browser tests run the widgets' JavaScript in Debian's headless chromium (playwright).

Skipped as a whole, with the reason, when chromium or playwright is missing: install
chromium with ``make browser`` (``apt-get install chromium``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from ._harness import CHROMIUM, CHROMIUM_ARGS, open_harness


def _skip_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[test]'"
    return None


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an event loop running in this thread and
    # a node driver + chromium as child processes while it is open; other tests need
    # neither (asyncio.run, "nothing left running" checks).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page with the graph widget bundle loaded and page errors collected."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    pg = context.new_page()
    pg.page_errors = []  # type: ignore[attr-defined]
    pg.on("pageerror", lambda exc: pg.page_errors.append(str(exc)))
    open_harness(pg)
    try:
        yield pg
    finally:
        context.close()

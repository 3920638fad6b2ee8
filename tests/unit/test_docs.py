"""The documentation site: every public name has an API reference entry that rendered.

The site is built by `make docs` (strict). `make docs-check` and `make test` point
``EZLAB_DOCS_SITE`` at the site they built; without it the test builds one into a
temporary directory (skipped where mkdocs is not installed: the `docs` extra).
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ezmsg_lab

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "docs" / "api"
ROLE = re.compile(r":(?:meth|class|func|attr|exc|data|obj|mod):`")
RAW_SECTION = re.compile(
    r'<h\d id="([\w.]+--(?:parameters|returns|yields|raises|attributes|examples|notes|see-also))"'
)


def _entries(text: str) -> set[str]:
    """Names a page documents: ``::: ezmsg_lab.X`` blocks and ``{ #ezmsg_lab.X }`` headings."""
    blocks = re.findall(r"^::: ezmsg_lab\.(\w+)\s*$", text, flags=re.M)
    headings = re.findall(r"\{ *#ezmsg_lab\.(\w+) *\}", text)
    return set(blocks) | set(headings)


def test_every_public_name_has_an_api_entry_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    documented: set[str] = set()
    for page in sorted(API.glob("*.md")):
        assert f"api/{page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
        documented |= _entries(page.read_text())
    missing = sorted(set(ezmsg_lab.__all__) - documented)
    assert not missing, f"no API reference entry (docs/api/*.md) for {missing}"
    assert not documented - set(ezmsg_lab.__all__), "the reference documents non-public names"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("EZLAB_DOCS_SITE")
    if given:
        path = Path(given)
        assert (path / "index.html").is_file(), f"EZLAB_DOCS_SITE={given} holds no built site"
        return path
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (the `docs` extra; `make docs-check` installs it)")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _object_blocks(page: str) -> dict[str, str]:
    """Each documented object's heading id -> its HTML up to the next object's heading."""
    heads = list(re.finditer(r'<h\d id="(ezmsg_lab\.[\w.]+)" class="doc doc-heading"', page))
    ends = [m.start() for m in heads[1:]] + [len(page)]
    return {m.group(1): page[m.start() : end] for m, end in zip(heads, ends, strict=False)}


def test_built_reference_has_a_rendered_entry_for_every_public_name(site: Path) -> None:
    pages = {p.name: p.read_text() for p in (site / "api").glob("*.html")}
    assert pages, f"no API pages in {site / 'api'}"
    blocks: dict[str, str] = {}
    for text in pages.values():
        blocks |= _object_blocks(text)
    for name in ezmsg_lab.__all__:
        obj = getattr(ezmsg_lab, name)
        anchor = f"ezmsg_lab.{name}"
        if not isinstance(obj, type):
            assert any(f'id="{anchor}"' in text for text in pages.values()), anchor
            continue
        assert anchor in blocks, f"{anchor} has no entry in the built reference"
        contents = blocks[anchor].split('class="doc doc-contents', 1)
        assert len(contents) == 2, f"{anchor} rendered without contents"
        first = re.search(r"<p>(.*?)</p>", contents[1], flags=re.S)
        summary = (obj.__doc__ or "").strip().splitlines()[0].split()[:3]
        assert first and summary, f"{anchor}: no docstring rendered"
        text = html.unescape(re.sub(r"<[^>]+>", "", first.group(1)))
        # A Sphinx role in the summary renders as a link: compare its text only.
        want = ROLE.sub("", " ".join(summary)).replace("`", "")
        assert want in text.replace("`", ""), (anchor, text)


def test_no_docstring_renders_raw_markup(site: Path) -> None:
    for page in (site / "api").glob("*.html"):
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        assert not ROLE.search(text), f"{page.name}: a Sphinx role rendered as text"
        assert "::: ezmsg_lab" not in text, f"{page.name}: an unprocessed mkdocstrings block"
        # A numpy section read as Markdown becomes a heading ("Parameters" over dashes).
        raw = RAW_SECTION.findall(page.read_text())
        assert not raw, f"{page.name}: numpy sections rendered as plain Markdown: {raw}"


def test_every_page_in_the_nav_was_built(site: Path) -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[1]
    sources = re.findall(r"([\w/]+)\.(?:md|ipynb)\b", nav)
    assert len(sources) >= 15, sources
    for source in sources:
        assert (site / f"{source}.html").is_file(), f"{source} was not built"

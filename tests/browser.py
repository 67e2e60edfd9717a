"""The report opened in headless Chromium (Debian's ``chromium``) through Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

VIEWPORT = {"width": 1400, "height": 1000}
#: CI sets this so that a missing browser fails the test instead of skipping it
REQUIRED = "LAYERGEOM_BROWSER_REQUIRED"


def chromium() -> str:
    """The path of the Chromium executable; skips (fails where REQUIRED is set) when there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no chromium on PATH (Debian: apt-get install chromium)"
        pytest.fail(message) if os.environ.get(REQUIRED) else pytest.skip(message)
    return path


@contextmanager
def report_page(report: Path) -> Iterator:
    """A Playwright page showing ``report`` in a 1400 x 1000 window."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(report.absolute().as_uri())
            yield page
        finally:
            browser.close()


def first_heading(page) -> dict:
    """The landing page's first heading: its text and where it lies in the window."""
    return page.evaluate(
        """() => {
          const h = document.querySelector('.prose h1, .prose h2, .prose h3');
          const r = h.getBoundingClientRect();
          return {text: h.textContent, top: r.top, bottom: r.bottom, height: window.innerHeight};
        }"""
    )


def open_figure(page, category: str, corpus: str, label: str) -> list[int]:
    """Open one figure of the report's menu; the natural widths of the raster images then shown."""
    page.get_by_text(category, exact=True).click()
    page.get_by_role("link", name=corpus, exact=True).click()
    page.locator("tr", has_text=label).locator("a[iconname=eye]").first.click()
    page.wait_for_function("() => Array.from(document.images).some(i => i.src.startsWith('data:image/png'))")
    return page.evaluate(
        "() => Array.from(document.images).filter(i => i.src.startsWith('data:image/png')).map(i => i.naturalWidth)"
    )

"""Fixtures shared by the test modules.

Playwright's synchronous API allows one driver per process at a time: every browser test launches
its Chromium from this one session-wide driver, whatever order the tests run in.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def playwright_driver():
    """The session's Playwright driver (``playwright.sync_api``), started on first use."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver

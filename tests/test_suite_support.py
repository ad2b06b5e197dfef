"""The suite's own helpers, where a mistake would hide failures rather than cause them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import browser


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_chromium_fails_the_browser_tests_in_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="missing in CI"):
        browser.require_chromium()


def test_a_missing_chromium_skips_the_browser_tests_on_a_developers_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not installed"):
        browser.require_chromium()

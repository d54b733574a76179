"""Fixtures the browser tests share: one Debian Chromium a module, a fresh page a test.
(Older modules define their own; a module's fixture wins over these.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web_harness import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()

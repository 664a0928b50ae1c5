"""Fixtures of the testbed's self-tests: the integration tier's session fixtures."""

from __future__ import annotations

from integration.conftest import seed, testbed  # noqa: F401 - the same session fixtures

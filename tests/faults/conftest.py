"""Fixtures of the fault tier: the shared testbed (the integration tier's session fixtures).

Every module here sets ``pytestmark = pytest.mark.faults`` (``scripts/dev/test faults``).
"""

from __future__ import annotations

from integration.conftest import seed, testbed  # noqa: F401 - the same session fixtures

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedcloud_core.bdii.service import stop_supervised
from fedcloud_core.bdii.slapd import Slapd
from integration.bdii.bdii_testlib import new_slapd


@pytest.fixture(scope="session")
def resource_slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """One project-templated slapd for the resource BDII tests (started once, stopped at the end)."""
    s = new_slapd(tmp_path_factory.mktemp("resource-bdii"), role="resource BDII (tests)")
    s.start()
    yield s
    s.stop()


@pytest.fixture
def supervised_cleanup() -> Iterator[None]:
    """Stops the slapds a --with-slapd job run started in this test."""
    yield
    stop_supervised()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir()
    return d

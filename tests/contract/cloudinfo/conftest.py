from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloudinfo_slapd import ScratchSlapd

from fedcloud_cloudinfo import GLUE21_SCHEMA


@pytest.fixture(scope="session")
def slapd_glue20(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchSlapd]:
    """slapd with only Debian's schemas (core, cosine, inetorgperson, GLUE20)."""
    s = ScratchSlapd(tmp_path_factory.mktemp("slapd20")).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def slapd_glue21(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchSlapd]:
    """slapd with Debian's schemas plus the project's GLUE21-cloud.schema."""
    s = ScratchSlapd(tmp_path_factory.mktemp("slapd21"), [GLUE21_SCHEMA]).start()
    yield s
    s.stop()

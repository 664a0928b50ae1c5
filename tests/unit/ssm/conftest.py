"""Fixtures of the SSM unit tests."""

from __future__ import annotations

import pytest

from support.pki import Pki, make_pki


@pytest.fixture(scope="session")
def unit_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("ssm-unit-pki"))

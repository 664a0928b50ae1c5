"""Fixtures of the image replicator's contract tests (real openssl, qemu-img, loopback HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.images_pki import ImagesPki, make_images_pki
from support.imageserver import ImageServer


@pytest.fixture(scope="session")
def cpki(tmp_path_factory: pytest.TempPathFactory) -> ImagesPki:
    return make_images_pki(tmp_path_factory.mktemp("images-pki-contract"))


@pytest.fixture(scope="session")
def http_server() -> Iterator[ImageServer]:
    with ImageServer() as s:
        yield s

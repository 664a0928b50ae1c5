"""Downloads from a misbehaving 127.0.0.1 server: stall, drop + resume, no Range, 404, size, space."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from fedcloud_images.cache.download import Downloader
from fedcloud_images.cache.progress import Progress
from fedcloud_images.errors import DownloadError, ImageCorrupt
from fedcloud_images.model import ImageEntry
from fedcloud_images.sources.http import make_session

pytestmark = pytest.mark.contract

DATA = os.urandom(3 * 1024 * 1024 + 123)


def _entry(url: str, data: bytes = DATA, size: int | None = -1) -> ImageEntry:
    return ImageEntry(
        identifier="i",
        title="t",
        uri=url,
        digest_algo="sha512",
        digest=hashlib.sha512(data).hexdigest(),
        size=len(data) if size == -1 else size,
    )


def _dl(**kw: Any) -> Downloader:
    opts: dict[str, Any] = {"connect_timeout": 2, "read_timeout": 0.5, "retries": 2, "backoff": 0}
    opts.update(kw)
    return Downloader(make_session(retries=0), **opts)


def test_plain_download_streams_to_part_then_renames(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/plain.img", DATA)
    got = _dl().fetch(_entry(url), tmp_path / "x.img")
    assert got.path.read_bytes() == DATA
    assert (got.bytes_received, got.attempts) == (len(DATA), 1)
    assert not (tmp_path / "x.img.part").exists()


def test_stalled_server_times_out_and_the_retry_resumes(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/stall.img", DATA, stall_after=1024 * 1024, stall_seconds=5)
    t0 = time.monotonic()
    got = _dl().fetch(_entry(url), tmp_path / "x.img")
    assert time.monotonic() - t0 < 4  # the read timeout fired, not the server's stall end
    assert got.path.read_bytes() == DATA
    assert got.attempts == 2
    ranges = [r.headers.get("Range") for r in http_server.hits("/dl/stall.img")]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")


def test_dropped_connection_resumes_with_range(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/drop.img", DATA, drop_after=2 * 1024 * 1024)
    got = _dl().fetch(_entry(url), tmp_path / "x.img")
    assert got.path.read_bytes() == DATA
    hits = http_server.hits("/dl/drop.img")
    assert [h.headers.get("Range") for h in hits] == [None, f"bytes={2 * 1024 * 1024}-"]
    assert got.bytes_received == len(DATA)  # nothing downloaded twice


def test_server_without_range_support_starts_over(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/norange.img", DATA, drop_after=1024 * 1024, ranges=False)
    got = _dl().fetch(_entry(url), tmp_path / "x.img")
    assert got.path.read_bytes() == DATA


def test_corrupt_image_is_retried_then_reported(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/corrupt.img", DATA[:-1] + b"\0")
    with pytest.raises(ImageCorrupt, match=r"sha512 mismatch.*after 3 attempts"):
        _dl().fetch(_entry(url), tmp_path / "x.img")
    assert len(http_server.hits("/dl/corrupt.img")) == 3
    assert list(tmp_path.iterdir()) == []


def test_more_bytes_than_announced_is_corrupt(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/big.img", DATA)
    with pytest.raises(ImageCorrupt, match="announced size"):
        _dl(retries=0).fetch(_entry(url, size=1000), tmp_path / "x.img")


def test_404_is_not_retried(http_server: Any, tmp_path: Path) -> None:
    url = http_server.url("/dl/missing.img")
    with pytest.raises(DownloadError, match="HTTP 404"):
        _dl().fetch(_entry(url), tmp_path / "x.img")
    assert len(http_server.hits("/dl/missing.img")) == 1


def test_free_space_is_checked_before_downloading(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/dl/space.img", DATA)
    with pytest.raises(DownloadError, match="not enough free space"):
        _dl(min_free_bytes=10**18).fetch(_entry(url), tmp_path / "x.img")
    assert http_server.hits("/dl/space.img") == []


class _Tty:
    def __init__(self, tty: bool):
        self.tty, self.out = tty, []

    def isatty(self) -> bool:
        return self.tty

    def write(self, s: str) -> None:
        self.out.append(s)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("tty", [True, False])
def test_progress_only_on_a_terminal(http_server: Any, tmp_path: Path, tty: bool) -> None:
    url = http_server.put("/dl/progress.img", DATA)
    stream = _Tty(tty)
    prog = Progress(stream=stream, interval=0)  # type: ignore[arg-type]
    prog.expect(len(DATA))
    _dl(progress=prog).fetch(_entry(url), tmp_path / "x.img")
    assert bool(stream.out) is tty
    if tty:
        assert any("MiB" in s for s in stream.out)

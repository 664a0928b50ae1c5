"""Download limits against a 127.0.0.1 server: size cap, free space while writing, fsync (issue 18)."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from fedcloud_images.cache.download import Downloader, verify_file
from fedcloud_images.cache.space import SpaceLedger
from fedcloud_images.errors import DownloadError
from fedcloud_images.model import ImageEntry
from fedcloud_images.sources.http import make_session

pytestmark = pytest.mark.contract

MiB = 1024 * 1024
DATA = os.urandom(3 * MiB + 17)


def _entry(url: str, size: int | None) -> ImageEntry:
    return ImageEntry(
        identifier="i",
        title="t",
        uri=url,
        digest_algo="sha512",
        digest=hashlib.sha512(DATA).hexdigest(),
        size=size,
    )


def _dl(**kw: Any) -> Downloader:
    opts: dict[str, Any] = {"connect_timeout": 2, "read_timeout": 1, "retries": 2, "backoff": 0}
    opts.update(kw)
    return Downloader(make_session(retries=0), **opts)


def test_download_without_announced_size_stops_at_the_maximum(
    http_server: Any, tmp_path: Path
) -> None:
    url = http_server.put("/lim/nosize.img", DATA)
    with pytest.raises(DownloadError, match="maximum image size"):
        _dl(max_bytes=MiB).fetch(_entry(url, None), tmp_path / "x.img")
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part is kept
    assert len(http_server.hits("/lim/nosize.img")) == 1  # not retried


def test_announced_size_over_the_maximum_is_refused_without_a_request(
    http_server: Any, tmp_path: Path
) -> None:
    url = http_server.put("/lim/announced.img", DATA)
    with pytest.raises(DownloadError, match="exceeds the maximum image size"):
        _dl(max_bytes=MiB).fetch(_entry(url, len(DATA)), tmp_path / "x.img")
    assert http_server.hits("/lim/announced.img") == []


def test_image_within_the_maximum_downloads(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/lim/fits.img", DATA)
    got = _dl(max_bytes=4 * MiB).fetch(_entry(url, None), tmp_path / "x.img")
    assert got.path.read_bytes() == DATA


@pytest.mark.parametrize("announced", [True, False])
def test_free_space_is_checked_again_while_writing(
    http_server: Any, tmp_path: Path, announced: bool
) -> None:
    """Parallel downloads share the cache: space that was free at the start may be gone."""
    url = http_server.put(f"/lim/space-{announced}.img", DATA)
    calls: list[Path] = []

    def free(where: Path) -> int:
        calls.append(where)
        return 10**15 if len(calls) == 1 else 512 * 1024  # another download took the rest

    dl = _dl(free_bytes=free, space_check_bytes=MiB, min_free_bytes=MiB)
    with pytest.raises(DownloadError, match=r"not enough free space in .*\(while downloading\)"):
        dl.fetch(_entry(url, len(DATA) if announced else None), tmp_path / "x.img")
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []
    assert len(http_server.hits(f"/lim/space-{announced}.img")) == 1


def test_part_file_and_directory_are_fsynced_around_the_rename(
    http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = http_server.put("/lim/fsync.img", DATA)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: Any, dst: Any) -> None:
        events.append(("replace", str(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    dest = tmp_path / "x.img"
    _dl().fetch(_entry(url, len(DATA)), dest)
    part = str(dest) + ".part"
    assert ("fsync", part) in events
    assert events.index(("fsync", part)) < events.index(("replace", part))
    assert events[events.index(("replace", part)) + 1] == ("fsync", str(tmp_path))


def test_verify_file_checks_size_and_digest(tmp_path: Path) -> None:
    p = tmp_path / "x.orig"
    p.write_bytes(DATA)
    e = _entry("http://127.0.0.1:9/x", len(DATA))
    assert verify_file(e, p)
    p.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))  # same size, one bit off
    assert not verify_file(e, p)
    p.write_bytes(DATA[:-1])
    assert not verify_file(e, p)
    assert not verify_file(e, tmp_path / "missing")


# ------------------------------------------------------------------ shared free space (ledger)


def test_a_download_counts_the_space_other_downloads_reserved(
    http_server: Any, tmp_path: Path
) -> None:
    """Two downloads that each fit alone, not together: the second is refused before it
    writes (the first one's announced size is reserved), with the clean message."""
    url = http_server.put("/lim/ledger.img", DATA)
    ledger = SpaceLedger()
    free = 5 * MiB  # DATA is 3 MiB: one fits, two do not
    other = ledger.open(tmp_path)  # a parallel download of 3 MiB in progress
    ledger.claim(other, tmp_path, len(DATA), free_bytes=lambda p: free)
    dl = _dl(free_bytes=lambda p: free, ledger=ledger)
    with pytest.raises(DownloadError, match="not enough free space in ") as err:
        dl.fetch(_entry(url, len(DATA)), tmp_path / "x.img")
    assert "reserved by other downloads" in str(err.value)
    assert http_server.hits("/lim/ledger.img") == []  # refused before any request
    assert ledger.reserved(tmp_path) == len(DATA)  # its own reservation was released
    other.release()
    got = dl.fetch(_entry(url, len(DATA)), tmp_path / "x.img")  # the space is back
    assert got.path.read_bytes() == DATA
    assert ledger.reserved(tmp_path) == 0


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_while_writing_is_a_clean_no_space_error(
    http_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """The free-space checks passed, then the disk (or the quota) filled up anyway:
    the download fails with "not enough free space in <dir>", not a raw OSError, its
    .part is removed, it is not retried, and the bytes it received are counted."""
    from fedcloud_images.cache import download

    url = http_server.put(f"/lim/enospc-{code}.img", DATA)
    real_write = os.write
    written = [0]

    def write(fd: int, data: Any) -> int:
        if written[0] + len(data) > 2 * MiB:  # a 2 MiB disk
            raise OSError(code, os.strerror(code))
        n = real_write(fd, data)
        written[0] += n
        return n

    monkeypatch.setattr(download.os, "write", write)
    ledger = SpaceLedger()
    with pytest.raises(DownloadError, match=f"not enough free space in {tmp_path}: ") as err:
        _dl(ledger=ledger).fetch(_entry(url, len(DATA)), tmp_path / "x.img")
    monkeypatch.undo()
    assert type(err.value).__mro__[1:].count(OSError) == 0
    assert os.strerror(code) in str(err.value)
    assert err.value.bytes_received > 0  # bytes did arrive before the disk filled up
    assert list(tmp_path.iterdir()) == []  # no .part left to fill the disk
    assert len(http_server.hits(f"/lim/enospc-{code}.img")) == 1  # not retried
    assert ledger.reserved(tmp_path) == 0


def test_a_failed_download_reports_the_bytes_it_received(http_server: Any, tmp_path: Path) -> None:
    url = http_server.put("/lim/corrupt.img", DATA)
    e = dataclasses.replace(_entry(url, len(DATA)), digest=hashlib.sha512(b"other").hexdigest())
    with pytest.raises(DownloadError) as err:
        _dl(retries=1).fetch(e, tmp_path / "x.img")
    assert err.value.bytes_received == 2 * len(DATA)  # both attempts, both discarded

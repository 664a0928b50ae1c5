"""Download one image into the cache: ``.part`` file, Range resume, digest while streaming.

Every request has connect/read timeouts (a stalled server raises a read timeout and
the next attempt resumes where the data stopped). The size announced by the list is
checked against the maximum image size and the free space before starting and against
the bytes received; while writing, the bytes received are checked against the maximum
(announced size or not) and the free space is checked again every ``space_check_bytes``.
Parallel downloads share the free space through a process-wide reservation ledger
(:mod:`.space`): a download reserves the bytes it still has to write, and a check counts
the free space less the other downloads' reservations. A full disk or quota while
writing (ENOSPC, EDQUOT) is the same clean "not enough free space in <dir>" failure as a
failed check: not retried, the ``.part`` removed. A digest mismatch discards the partial file and
starts over; after the bounded retries the image is reported as failed. The verified
file is fsynced before its rename from ``.part`` and the rename is fsynced too: a file
with the final name is complete after a crash. :func:`verify_file` re-checks a cached
file before it is reused.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import requests
import urllib3

from ..errors import DownloadError, DownloadUnavailable, ImageCorrupt
from ..model import ImageEntry
from .progress import Progress
from .space import LEDGER, NoRoom, Reservation, SpaceLedger, disk_free, is_no_space

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
BUFFER = 8 * CHUNK  # one read fills up to this much of a reused buffer
BUFFERS = 4  # buffers in flight between the reading thread and the hashing thread


@dataclass
class Downloaded:
    path: Path
    bytes_received: int
    attempts: int


class _Retry(Exception):
    """An attempt failed in a way a later attempt may not see."""


class _ReadFailed(Exception):
    """Reading the response body failed (timeout, reset, protocol error): retried."""


class _NoRoom(DownloadError):
    """Larger than the maximum image size, or the cache is full: not retried, nothing kept."""


def hash_file(h: Any, path: Path) -> None:
    """Feed ``path`` to the hash ``h`` through one reused buffer (no per-chunk allocation)."""
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(view):
            h.update(view[:n])


def verify_file(entry: ImageEntry, path: Path) -> bool:
    """True if ``path`` has the announced size (if any) and the digest of ``entry``."""
    try:
        if entry.size is not None and path.stat().st_size != entry.size:
            return False
        h = hashlib.new(entry.digest_algo)
        hash_file(h, path)
    except (OSError, ValueError):
        return False
    return h.hexdigest() == entry.digest


def body_reader(resp: requests.Response) -> Callable[[memoryview], int]:
    """``readinto`` of the response body, as close to the socket as it is safe to get.

    With no content coding (we ask for identity), ``http.client``'s own ``readinto`` fills
    the caller's buffer straight from the socket (it handles Content-Length and chunked
    framing); urllib3's ``readinto`` reads into a new bytes object and copies it. Anything
    else (a coded body, another transport) goes through urllib3, which decodes."""
    raw = resp.raw
    coding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    fp = getattr(raw, "_fp", None)
    if coding in ("", "identity") and isinstance(fp, http.client.HTTPResponse):
        return fp.readinto
    return raw.readinto


def _fill(readinto: Callable[[memoryview], int], buf: memoryview) -> tuple[int, str | None]:
    """Fill ``buf`` from the body (fewer bytes only at its end or on an error).

    Returns the bytes read and, if reading failed, what failed: the bytes read before the
    error still count (a retry resumes after them). Each call asks for at most :data:`CHUNK`:
    a buffered ``readinto`` that fails (a read timeout) loses what that one call had copied."""
    got = 0
    size = len(buf)
    try:
        while got < size:
            n = readinto(buf[got : got + CHUNK])
            if not n:
                break
            got += n
    except (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError) as exc:
        return got, type(exc).__name__
    return got, None


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Downloader:
    def __init__(
        self,
        http: requests.Session,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 2.0,
        min_free_bytes: int = 0,
        max_bytes: int | None = None,
        space_check_bytes: int = 64 * CHUNK,
        progress: Progress | None = None,
        sleep: Callable[[float], None] = time.sleep,
        free_bytes: Callable[[Path], int] = disk_free,
        ledger: SpaceLedger = LEDGER,
    ):
        self.http = http
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff = backoff
        self.min_free = min_free_bytes
        self.max_bytes = max_bytes
        self.space_check_bytes = max(CHUNK, space_check_bytes)
        self.progress = progress
        self.sleep = sleep
        self.free_bytes = free_bytes
        self._local = threading.local()
        self.ledger = ledger

    def fetch(self, entry: ImageEntry, dest: Path) -> Downloaded:
        """Download ``entry`` to ``dest`` (verified). Raises DownloadError / ImageCorrupt.

        The download holds a reservation in the ledger (its announced size, less what is
        written) from its first free-space check to its end, so that parallel downloads do
        not count the same free bytes. A failure's ``bytes_received`` is what every attempt
        received (written to the ``.part`` file) before it failed."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        received = [0]  # bytes written by every attempt, failed ones included
        room = self.ledger.open(dest.parent)
        try:
            return self._fetch(entry, dest, received, room)
        except DownloadError as exc:
            exc.bytes_received = received[0]
            raise
        finally:
            room.release()

    def _fetch(
        self, entry: ImageEntry, dest: Path, received: list[int], room: Reservation
    ) -> Downloaded:
        part = dest.with_name(dest.name + ".part")
        if self.max_bytes is not None and entry.size is not None and entry.size > self.max_bytes:
            raise DownloadError(
                f"{entry.identifier}: announced size {entry.size} bytes exceeds the maximum image "
                f"size ({self.max_bytes} bytes, images.max_image_gb); refused"
            )
        last: Exception | None = None
        corrupt = False
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                delay = self.backoff * (2 ** (attempt - 2))
                log.info(
                    "%s: retrying in %.1fs (attempt %d of %d): %s",
                    entry.identifier,
                    delay,
                    attempt,
                    self.retries + 1,
                    last,
                )
                self.sleep(delay)
            try:
                self._attempt(entry, part, received, room)
            except _Retry as exc:
                last, corrupt = exc, False
                continue
            except ImageCorrupt as exc:
                part.unlink(missing_ok=True)
                last, corrupt = exc, True
                continue
            except _NoRoom:  # too large or no space: keep nothing, do not retry
                part.unlink(missing_ok=True)
                raise
            finally:
                if self.progress:
                    self.progress.finish(entry.identifier)
            os.replace(part, dest)  # _attempt fsynced the file
            _fsync_dir(dest.parent)
            return Downloaded(dest, received[0], attempt)
        if corrupt:
            raise ImageCorrupt(f"{entry.identifier}: {last} (after {self.retries + 1} attempts)")
        raise DownloadUnavailable(f"{entry.identifier}: {last} (after {self.retries + 1} attempts)")

    def _check_space(
        self,
        entry: ImageEntry,
        where: Path,
        offset: int,
        room: Reservation,
        *,
        during: bool = False,
    ) -> None:
        """Free space minus the other downloads' reservations must hold the rest of this one
        plus ``min_free``; ``room`` is resized to the rest in the same step."""
        remaining = max(0, entry.size - offset) if entry.size is not None else 0
        try:
            self.ledger.claim(
                room, where, remaining, keep_free=self.min_free, free_bytes=self.free_bytes
            )
        except NoRoom as exc:
            raise _NoRoom(
                f"{entry.identifier}: {exc}" + (" (while downloading)" if during else "")
            ) from None

    def _buffers(self) -> list[memoryview]:
        """This thread's read buffers, allocated on first use and reused by its next downloads
        (a small image touches one; zeroing 32 MiB per 4 KiB image would dominate)."""
        bufs: list[memoryview] | None = getattr(self._local, "bufs", None)
        if bufs is None:
            bufs = self._local.bufs = []
        return bufs

    def _stream(
        self,
        resp: requests.Response,
        out: IO[bytes],
        h: Any,
        entry: ImageEntry,
        part: Path,
        offset: int,
        received: list[int],
        room: Reservation,
    ) -> int:
        """Copy the body to ``out`` and into ``h``; returns the file's size.

        The reading thread fills one of :data:`BUFFERS` reused buffers (up to :data:`BUFFER`
        bytes, straight from the socket), writes it, and hands it to one hashing thread;
        hashlib releases the GIL, so reading and writing overlap the digest, which is the
        slowest of the three (sha512 is a few hundred MiB/s per core). A buffer is refilled
        only once its digest update is done. The checks run once per buffer."""
        readinto = body_reader(resp)
        bufs = self._buffers()
        pending: list[Future[None] | None] = [None] * BUFFERS
        total = offset
        next_check = total + self.space_check_bytes
        fd = out.fileno()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest") as hasher:
            try:
                i = 0
                while True:
                    if (f := pending[i]) is not None:
                        f.result()
                    if i == len(bufs):  # the first large download of this thread
                        bufs.append(memoryview(bytearray(BUFFER)))
                    buf = bufs[i]
                    n, failed = _fill(readinto, buf)
                    if not n and not failed:
                        break
                    total += n
                    received[0] += n
                    if entry.size is not None and total > entry.size:
                        raise ImageCorrupt(f"more bytes than the announced size {entry.size}")
                    if self.max_bytes is not None and total > self.max_bytes:
                        raise _NoRoom(
                            f"{entry.identifier}: more than the maximum image size "
                            f"({self.max_bytes} bytes, images.max_image_gb) received; refused"
                        )
                    if total >= next_check:
                        next_check = total + self.space_check_bytes
                        self._check_space(entry, part.parent, total, room, during=True)
                    data = buf[:n]
                    _write_all(fd, data)
                    if entry.size is not None:  # written: no longer free, no longer reserved
                        room.remaining = max(0, entry.size - total)
                    pending[i] = hasher.submit(h.update, data)
                    if self.progress:
                        self.progress.update(entry.identifier, n)
                    if failed:
                        raise _ReadFailed(f"{failed} after {total - offset} bytes")
                    i = (i + 1) % BUFFERS
            finally:
                for f in pending:
                    if f is not None:
                        f.result()
        return total

    def _attempt(
        self, entry: ImageEntry, part: Path, received: list[int], room: Reservation
    ) -> None:
        h = hashlib.new(entry.digest_algo)
        offset = part.stat().st_size if part.exists() else 0
        if entry.size is not None and offset > entry.size:
            part.unlink()
            offset = 0
        if offset:  # resume: the digest must cover the bytes already there
            hash_file(h, part)
        self._check_space(entry, part.parent, offset, room)
        headers = {"Accept-Encoding": "identity", **entry.headers}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with self.http.get(
                entry.uri, headers=headers, stream=True, timeout=self.timeout
            ) as resp:
                if resp.status_code == 206 and offset:
                    start = (
                        resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
                    )
                    if start != str(offset):
                        raise _Retry(f"server resumed at {start!r}, not {offset}")
                    mode = "ab"
                elif resp.status_code == 200:
                    if offset:
                        log.info("%s: server ignores Range; starting over", entry.identifier)
                        h = hashlib.new(entry.digest_algo)
                        offset = 0
                    mode = "wb"
                elif resp.status_code == 416 and offset:
                    part.unlink(missing_ok=True)
                    raise _Retry("server refused the resume range; starting over")
                elif resp.status_code in (408, 429) or resp.status_code >= 500:
                    raise _Retry(f"HTTP {resp.status_code}")
                else:
                    raise DownloadError(
                        f"{entry.identifier}: HTTP {resp.status_code} from {entry.uri}"
                    )
                with part.open(mode) as out:
                    total = self._stream(resp, out, h, entry, part, offset, received, room)
                    out.flush()
                    os.fsync(out.fileno())
        except _ReadFailed as exc:
            raise _Retry(str(exc)) from None
        except requests.RequestException as exc:
            raise _Retry(f"{type(exc).__name__} before the body") from None
        except OSError as exc:  # the disk (or the quota) filled up while writing
            if not is_no_space(exc):
                raise
            raise _NoRoom(
                f"{entry.identifier}: not enough free space in {part.parent}: "
                f"{exc.strerror or exc} while writing {part.name}"
            ) from None
        if entry.size is not None and total < entry.size:
            raise _Retry(f"connection ended after {total} of {entry.size} bytes")
        if h.hexdigest() != entry.digest:
            raise ImageCorrupt(f"{entry.digest_algo} mismatch ({total} bytes received)")

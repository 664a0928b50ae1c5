"""``images sync``: for each source, fetch + verify the list, fill the cache, sync Glance.

The order protects the site: nothing is written for a source until its list is
verified; images are only retired when a verified, current list no longer selects
them; a failed download keeps the previous Glance image. An unchanged run reads
Glance once per source (the project's images changed since the last run, laid over what
that run saw; a complete listing at least every ``images.glance_full_scan_hours``) and
writes nothing: the members of a shared image are listed only when the state database
says they may differ (another project list, a new image, a last check older than
``images.members_recheck_hours``). New and replaced images are uploaded and shared by
``images.upload_workers`` threads; each image's outcome is its own.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fedcloud_core.config.images import ImagesConfig, RegistrySource, Subscription
from fedcloud_core.errors import FedcloudError
from fedcloud_core.report import RunReport

from .cache import convert
from .cache.download import Downloader, verify_file
from .cache.space import is_no_space
from .cache.state import ImageState, MembersState, ScanState, State
from .errors import DownloadError, ListRejected
from .glance import GlanceImages, Scan, Upload, image_properties, min_disk_gb
from .model import ImageEntry, ImageList
from .verify import check_version, format_time, parse_time

log = logging.getLogger(__name__)

Target = Subscription | RegistrySource


@dataclass
class SyncDeps:
    """What a run needs; built in :mod:`.jobs` (tests pass their own)."""

    sources: list[Any]  # Source objects, each with .name and .sub (its config)
    state: State
    downloader: Downloader
    glance: GlanceImages
    projects: Callable[[str], list[str]]  # VO -> Keystone project ids
    in_use: Callable[[str], bool | None]  # Glance image id -> used by a server? None: unknown
    member_client: Callable[[str], Any] = field(
        default=lambda cloud: None
    )  # clouds.yaml entry -> glance


# A listing of changes starts this long before the newest ``updated_at`` the last one saw
# (Glance keeps whole seconds; a write stamped just before it may commit just after it).
SINCE_SLACK = timedelta(seconds=2)


@dataclass
class _Listing:
    """This run's view of a source's images in Glance, and where it came from."""

    scan: Scan
    scope: str  # GlanceImages.scope() it was listed in
    full_at: datetime  # when the complete listing it rests on began
    since: datetime | None  # the newest updated_at seen (Glance's clock); None: nothing seen


@dataclass
class _Ready:
    entry: ImageEntry
    state: ImageState
    downloaded: int = 0
    error: str | None = None


class ImageSync:
    def __init__(
        self,
        cfg: ImagesConfig,
        cache_dir: Path,
        deps: SyncDeps,
        *,
        dry_run: bool = False,
        allow_mass_retire: bool = False,
    ):
        self.cfg = cfg
        self.cache_dir = cache_dir
        self.deps = deps
        self.dry_run = dry_run
        self.allow_mass_retire = allow_mass_retire or cfg.allow_mass_retire

    # ------------------------------------------------------------------ run

    def run(self, report: RunReport) -> RunReport:
        t0 = time.monotonic()
        for key in (
            "lists_fetched",
            "lists_rejected",
            "images_new",
            "images_updated",
            "images_unchanged",
            "images_removed",
            "images_failed",
            "bytes_downloaded",
        ):
            report.counts.setdefault(key, 0)
        report.details.setdefault("rejected", {})
        for src in self.deps.sources:
            try:
                with self._batch(src.name, report):  # commits in groups, and at the end
                    self.sync_source(src, report)
            except FedcloudError as exc:
                report.error(f"{src.name}: {exc}")
            except Exception as exc:  # one source never stops the others
                log.exception("%s: unexpected error", src.name)
                report.error(f"{src.name}: unexpected error: {exc!r}")
        if self.deps.sources and not report.counts["lists_fetched"]:
            report.nothing_accepted = f"no image list accepted ({len(self.deps.sources)} source(s))"
        report.counts["seconds"] = round(time.monotonic() - t0, 3)
        return report

    def sync_source(self, src: Any, report: RunReport) -> None:
        sub: Target = src.sub
        name = src.name
        state = self.deps.state
        try:
            il = src.fetch()
            last = state.last_list(name)
            check_version(name, il.version, last.version if last else None)
        except ListRejected as exc:
            report.count("lists_rejected")
            report.details["rejected"][name] = exc.reason
            report.error(str(exc))
            log.warning("%s", exc)
            return
        report.count("lists_fetched")
        for ident, problem in il.invalid.items():
            report.error(f"{name}: image {ident} skipped: {problem}")
        wanted = self._select(sub, il, report)

        listing = self._scan(name)
        writes, failed = self.deps.glance.image_writes, report.counts["images_failed"]
        try:
            self._sync_listed(src, il, wanted, listing.scan, report)
        except BaseException:
            self._forget_scan(name)  # what Glance holds now is unknown: the next run lists all
            raise
        if self.deps.glance.image_writes != writes or report.counts["images_failed"] != failed:
            listing = self._scan(name, full=True)  # what this run left, for the next one
        self._save_scan(name, listing)

    def _sync_listed(
        self, src: Any, il: ImageList, wanted: list[ImageEntry], scan: Scan, report: RunReport
    ) -> None:
        sub: Target = src.sub
        name = src.name
        state = self.deps.state
        for img in scan.foreign:
            self._report_foreign(name, img, report)
        existing = scan.managed
        by_id: dict[str, list[Any]] = {}
        for img in existing:
            by_id.setdefault(str(img.get("appdb_id")), []).append(img)
        projects = self.deps.projects(sub.vo) if sub.visibility == "shared" else []
        accept_with = self.deps.member_client(sub.member_cloud) if sub.member_cloud else None
        members_seen = state.members(name) if sub.visibility == "shared" else {}
        known = {} if self.dry_run else {st.identifier: st for st in state.images(name)}
        live: set[str] = set()  # Glance ids of this source's images after the run

        todo: list[ImageEntry] = []
        for e in wanted:
            imgs = by_id.get(e.identifier, [])
            current = sorted(
                (
                    i
                    for i in imgs
                    if i.get("image_hash") == e.image_hash
                    and i.get("status") in ("active", "deactivated")
                ),
                key=lambda i: str(i.get("created_at")),
            )
            if not current:
                todo.append(e)
                continue
            keep = current[0]
            live.add(keep["id"])
            check = self._members_due(keep, sub, projects, members_seen.get(keep["id"]))
            try:
                changed = (
                    []
                    if self.dry_run
                    else self._refresh(keep, e, sub, projects, accept_with, members=check)
                )
                if check and not self.dry_run:
                    members = (name, keep["id"], projects)
                    self._record(report, name, e, "its members", state.save_members, *members)
            except Exception as exc:  # noqa: BLE001 - one image never stops the source
                log.warning("%s: image %s: Glance update failed: %s", name, e.identifier, exc)
                report.count("images_failed")
                report.error(f"{name}: image {e.identifier}: Glance update failed: {exc}")
                _note_image(report, name, sub.vo, e, "failed", f"Glance update failed: {exc}")
                continue  # its duplicates stay too until it is in order
            self._retire_others(name, e.identifier, imgs, keep, report)
            self._known(report, name, e, keep, known.get(e.identifier))
            report.count("images_updated" if changed else "images_unchanged")
            _note_image(report, name, sub.vo, e, "updated" if changed else "unchanged")
            if changed:
                log.info("%s: %s metadata updated (%s)", name, e.identifier, ", ".join(changed))

        with ThreadPoolExecutor(
            max_workers=self.cfg.upload_workers, thread_name_prefix="upload"
        ) as uploads:
            self._upload_all(name, sub, todo, by_id, projects, accept_with, live, uploads, report)

        keep_ids = {e.identifier for e in wanted} | set(il.invalid)
        dropped = sorted(ident for ident in by_id if ident not in keep_ids)
        if self._mass_retire_refused(name, len(dropped), len(by_id), report):
            return  # nothing retired, and the list is not accepted: next run decides again
        for ident in dropped:
            for img in by_id[ident]:
                self._retire(name, img, report, reason="no longer in the list")
        if not self.dry_run:
            for st in state.images(name):
                if st.identifier not in keep_ids:
                    shutil.rmtree(self._dir(name, st.identifier), ignore_errors=True)
                    gone = f"forgetting {st.identifier}"
                    self._record(report, name, None, gone, state.forget_image, name, st.identifier)
            self._record(report, name, None, "members", state.forget_members, name, live)
            accepted = (name, il.version, il.content_hash, il.identifier or None)
            self._record(report, name, None, "the list's acceptance", state.accept_list, *accepted)

    def _upload_all(
        self,
        name: str,
        sub: Target,
        todo: list[ImageEntry],
        by_id: dict[str, list[Any]],
        projects: list[str],
        accept_with: Any,
        live: set[str],
        uploads: ThreadPoolExecutor,
        report: RunReport,
    ) -> None:
        """Create, upload and share the prepared images on ``uploads`` (bounded workers).

        Three steps, each image's failure its own: (1) create + upload in the workers, each
        image as soon as it is prepared (downloads and uploads overlap); (2) check every
        stored image against what was sent, from one listing of the source; (3) share the
        checked ones in the workers (add + accept each member). Only Glance calls run in
        the workers; the state database (committed in groups, :meth:`State.batch`), the
        report and retiring the replaced image stay in this thread, in list order."""
        with self._batch(name, report):
            jobs: list[tuple[_Ready, Future[Any] | None]] = []
            for ready in self._prepare_all(name, todo, report):
                fut = None
                if not ready.error and not self.dry_run:
                    fut = uploads.submit(self._upload, sub, ready.entry, ready.state)
                jobs.append((ready, fut))
            outcome: dict[str, Any] = {}  # identifier -> stored image, or the exception
            sent: dict[str, Upload] = {}
            for ready, fut in jobs:
                if fut is None:
                    continue
                try:
                    sent[ready.entry.identifier] = fut.result()
                except Exception as exc:  # noqa: BLE001 - that image's failure
                    outcome[ready.entry.identifier] = exc
            if sent:
                checked = self.deps.glance.check_uploads(list(sent.values()))
                for ident, up in sent.items():
                    outcome[ident] = checked[up.image["id"]]
            shares: dict[str, Future[Any]] = {}
            if sub.visibility == "shared":
                for ident, got in outcome.items():
                    if not isinstance(got, Exception):
                        shares[ident] = uploads.submit(
                            self.deps.glance.ensure_members, got, projects, accept_with, new=True
                        )
            for ident, fut in shares.items():
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001 - stays unshared; next run lists members
                    outcome[ident] = exc
            for ready, _ in jobs:
                got = outcome.get(ready.entry.identifier)
                self._uploaded(name, sub, ready, got, by_id, projects, live, report)

    def _uploaded(
        self,
        name: str,
        sub: Target,
        ready: _Ready,
        got: Any,
        by_id: dict[str, list[Any]],
        projects: list[str],
        live: set[str],
        report: RunReport,
    ) -> None:
        """Account for one prepared image once its upload ended (in the run's thread)."""
        state = self.deps.state
        e = ready.entry
        imgs = by_id.get(e.identifier, [])
        if ready.error:
            report.count("images_failed")
            report.error(
                f"{name}: image {e.identifier}: {ready.error}"
                + (" (the previous version stays)" if imgs else "")
            )
            _note_image(report, name, sub.vo, e, "failed", str(ready.error))
            return
        if self.dry_run:
            report.count("images_updated" if imgs else "images_new")
            return
        if isinstance(got, Exception):  # Glance errors are many types; report and go on
            report.count("images_failed")
            report.error(f"{name}: image {e.identifier}: Glance upload failed: {got}")
            _note_image(report, name, sub.vo, e, "failed", f"Glance upload failed: {got}")
            return
        img = got
        ready.state.glance_id = img["id"]
        live.add(img["id"])
        self._record(
            report, name, e, f"its Glance image {img['id']}", state.save_image, ready.state
        )
        if sub.visibility == "shared":
            self._record(
                report, name, e, "its members", state.save_members, name, img["id"], projects
            )
        self._retire_others(name, e.identifier, imgs, img, report)
        self._clean_cache(name, e, ready.state)
        report.count("images_updated" if imgs else "images_new")
        _note_image(report, name, sub.vo, e, "updated" if imgs else "new")
        log.info("%s: %s %s as %s", name, e.identifier, "replaced" if imgs else "added", img["id"])

    # ------------------------------------------------------------------ helpers

    def _record(
        self,
        report: RunReport,
        source: str,
        e: ImageEntry | None,
        what: str,
        write: Callable[..., None],
        *args: Any,
    ) -> bool:
        """One state database write; a failure (disk full, I/O error) is reported and the run
        goes on. Nothing in Glance depends on it: the next run finds an uploaded image by
        its managed properties and owner, and records it then."""
        try:
            write(*args)
            return True
        except sqlite3.Error as exc:
            where = f"{source}: image {e.identifier}" if e else source
            report.count("state_writes_failed")
            report.error(
                f"{where}: could not record {what} in the state database "
                f"{self.deps.state.path}: {exc} (recorded by the next run)"
            )
            log.warning("%s: state database write failed (%s): %s", where, what, exc)
            return False

    @contextmanager
    def _batch(self, source: str, report: RunReport) -> Iterator[None]:
        """:meth:`State.batch`; a failed final commit is reported, not raised."""
        try:
            with self.deps.state.batch():
                yield
        except sqlite3.Error as exc:
            report.count("state_writes_failed")
            report.error(
                f"{source}: could not commit to the state database {self.deps.state.path}: "
                f"{exc} (recorded by the next run)"
            )

    def _known(
        self, report: RunReport, source: str, e: ImageEntry, img: Any, st: ImageState | None
    ) -> None:
        """Record a current Glance image the state does not know (its state write failed in
        an earlier run): one write, only then."""
        if self.dry_run or (
            st is not None and st.glance_id == img["id"] and st.image_hash == e.image_hash
        ):
            return
        new = (
            dataclasses.replace(st, glance_id=img["id"])
            if st is not None and st.image_hash == e.image_hash
            else ImageState(source, e.identifier, e.image_hash, glance_id=img["id"])
        )
        self._record(
            report, source, e, f"its Glance image {img['id']}", self.deps.state.save_image, new
        )

    def _report_foreign(self, source: str, img: Any, report: RunReport) -> None:
        """An image that looks managed but another project owns: never shared, updated, retired."""
        owner = img.get("owner")
        report.count("images_foreign")
        report.details.setdefault("foreign_images", []).append(
            {"source": source, "id": img["id"], "owner": owner, "appdb_id": img.get("appdb_id")}
        )
        report.warn(
            f"{source}: image {img['id']} (appdb_id {img.get('appdb_id')}) carries the managed "
            f"tag and properties but is owned by project {owner}, not the appliance's: ignored"
        )
        log.warning(
            "%s: image %s owned by project %s looks managed; ignored", source, img["id"], owner
        )

    def _mass_retire_refused(self, source: str, n: int, total: int, report: RunReport) -> bool:
        """Refuse to retire more than ``max_retire_fraction`` of a source's images in one run.

        An empty or truncated answer (a registry is not signed) must not wipe a site's images;
        ``--allow-mass-retire`` (or ``images.allow_mass_retire``) lets an intended cleanup through.
        """
        cfg = self.cfg
        if (
            n == 0
            or self.allow_mass_retire
            or total < cfg.mass_retire_min_images
            or n <= cfg.max_retire_fraction * total
        ):
            return False
        reason = (
            f"{n} of its {total} images would be retired, more than "
            f"images.max_retire_fraction={cfg.max_retire_fraction:g}; none was retired. "
            "If the source really dropped them, run `images sync --allow-mass-retire` once"
        )
        report.count("images_retire_refused", n)
        report.details.setdefault("mass_retire_refused", {})[source] = {
            "would_retire": n,
            "images": total,
            "max_retire_fraction": cfg.max_retire_fraction,
        }
        report.error(f"{source}: {reason}")
        log.error("%s: %s", source, reason)
        return True

    def _select(self, sub: Target, il: ImageList, report: RunReport) -> list[ImageEntry]:
        now = datetime.now(UTC)
        allow = set(sub.images)
        out = []
        for e in il.images:
            if allow and e.identifier not in allow:
                continue
            if e.expires is not None and e.expires <= now:
                report.warn(f"{il.source}: image {e.identifier} expired on {e.expires.isoformat()}")
                continue
            out.append(e)
        missing = allow - {e.identifier for e in il.images} - set(il.invalid)
        for ident in sorted(missing):
            report.warn(f"{il.source}: allowed image {ident} is not in the list")
        return out

    def _dir(self, source: str, identifier: str) -> Path:
        safe = ImageEntry(
            identifier=identifier, title="", uri="", digest_algo="", digest=""
        ).safe_id
        return self.cache_dir / source / safe

    def _name(self, sub: Target, e: ImageEntry) -> str:
        return f"{self.cfg.name_prefix}{sub.prefix}{e.title}"

    def _prepare_all(
        self, source: str, todo: list[ImageEntry], report: RunReport
    ) -> Iterator[_Ready]:
        """Download, verify and convert ``todo`` on ``images.concurrency`` threads; yields
        each result in list order as soon as it is there (its upload starts meanwhile)."""
        if not todo:
            return
        if self.dry_run:
            yield from (_Ready(e, ImageState(source, e.identifier, e.image_hash)) for e in todo)
            return
        state = self.deps.state
        states = {e.identifier: state.image(source, e.identifier) for e in todo}
        if self.deps.downloader.progress:
            for e in todo:
                self.deps.downloader.progress.expect(e.size)
        with ThreadPoolExecutor(
            max_workers=self.cfg.concurrency, thread_name_prefix="image"
        ) as pool:
            for r in pool.map(
                lambda e: self._prepare_guarded(source, e, states[e.identifier]), todo
            ):
                report.count("bytes_downloaded", r.downloaded)
                if not r.error or r.state.attempts:
                    self._record(report, source, r.entry, "its download", state.save_image, r.state)
                yield r

    def _prepare_guarded(self, source: str, e: ImageEntry, st: ImageState | None) -> _Ready:
        """:meth:`_prepare`, with any unexpected error turned into this image's failure."""
        try:
            return self._prepare(source, e, st)
        except Exception as exc:
            log.exception("%s: image %s: unexpected error while preparing it", source, e.identifier)
            return _Ready(e, ImageState(source, e.identifier, e.image_hash), error=repr(exc))

    def _prepare(self, source: str, e: ImageEntry, st: ImageState | None) -> _Ready:
        """Download (unless cached), verify and convert one image. Runs in a worker thread.

        A cached original is reused only after its digest is checked again (a file left by
        an earlier run, a crash or another hand is not trusted by its name and size)."""
        new = ImageState(source, e.identifier, e.image_hash)
        d = self._dir(source, e.identifier)
        stem = e.digest[:32]
        orig = d / f"{stem}.orig"
        verified = orig.is_file() and verify_file(e, orig)
        if verified and st is not None and st.path == str(orig) and st.cached(e.image_hash):
            return _Ready(e, st)
        ready = _Ready(e, new)
        try:
            if not verified:
                if orig.exists():
                    log.warning(
                        "%s: %s: cached file fails its digest; downloading again",
                        source,
                        e.identifier,
                    )
                    orig.unlink(missing_ok=True)
                dl = self.deps.downloader.fetch(e, orig)
                ready.downloaded = dl.bytes_received
                new.attempts = dl.attempts
            prep = convert.prepare(
                orig,
                self.cfg.formats,
                stem=stem,
                format_hint=e.format_hint,
                timeout=self.cfg.convert_timeout,
                max_bytes=self.cfg.max_image_gb * 1024**3,
                min_free_bytes=self.cfg.min_free_mb * 1024 * 1024,
            )
        except FedcloudError as exc:
            if isinstance(exc, DownloadError):  # what failed attempts received counts too
                ready.downloaded = exc.bytes_received
            new.last_error = str(exc)
            new.attempts = new.attempts or self.cfg.retries + 1
            ready.error = str(exc)
            return ready
        except OSError as exc:  # the cache's disk or quota full outside the download
            if not is_no_space(exc):
                raise
            new.last_error = ready.error = f"not enough free space in {d}: {exc.strerror or exc}"
            new.attempts = new.attempts or 1
            return ready
        new.path, new.upload_path = str(orig), str(prep.path)
        new.upload_format, new.upload_size, new.virtual_size = (
            prep.disk_format,
            prep.size,
            prep.virtual_size,
        )
        return ready

    def _upload(self, sub: Target, e: ImageEntry, st: ImageState) -> Upload:
        """Create the Glance image and upload the prepared file (runs in an upload worker)."""
        assert st.upload_path
        assert st.upload_format
        return self.deps.glance.upload_new(
            name=self._name(sub, e),
            disk_format=st.upload_format,
            visibility=sub.visibility,
            min_ram=e.ram_min or 0,
            min_disk=min_disk_gb(st.virtual_size or 0, st.upload_size),
            properties=image_properties(e, sub.name),
            path=Path(st.upload_path),
        )

    def _scan(self, source: str, *, full: bool = False) -> _Listing:
        """The source's images in Glance: a complete listing, or the last run's listing
        updated with what changed since (one request while fewer than 1,000 of the
        project's images changed). Complete when asked, in a dry run, with no usable saved
        listing (none, another scope, older than ``images.glance_full_scan_hours``) or
        when that option is 0."""
        g = self.deps.glance
        now = datetime.now(UTC)
        scope = g.scope()
        saved = None
        if not (full or self.dry_run or self.cfg.glance_full_scan_hours <= 0):
            saved = self.deps.state.glance_scan(source)
        max_age = timedelta(hours=self.cfg.glance_full_scan_hours)
        since = _time_or_none(saved.since) if saved else None
        if (
            saved is None
            or since is None
            or saved.scope != scope
            or not now - max_age < saved.full_at <= now
        ):
            scan = g.scan(source)
            return _Listing(scan, scope, now, _newest([*scan.managed, *scan.foreign]))
        changed = g.changed_since(format_time(since - SINCE_SLACK))
        ids = {str(i.get("id")) for i in changed}
        managed: list[Any] = [i for i in saved.managed if str(i.get("id")) not in ids]
        managed += [i for i in changed if g.matches(i, source) and i.get("owner") == g.owner]
        newest = _newest(changed)
        log.info(
            "%s: %d of the project's images changed in Glance since %s (complete listing %s)",
            source,
            len(changed),
            saved.since,
            saved.full_at.isoformat(timespec="seconds"),
        )
        return _Listing(
            Scan(managed=managed, foreign=saved.foreign),
            scope,
            saved.full_at,
            max(since, newest) if newest else since,
        )

    def _save_scan(self, source: str, listing: _Listing) -> None:
        if self.dry_run or self.cfg.glance_full_scan_hours <= 0:
            return
        if listing.since is None:  # nothing listed, no Glance time to start from: list all
            self._forget_scan(source)
            return
        saved = ScanState(
            scope=listing.scope,
            full_at=listing.full_at,
            since=format_time(listing.since),
            managed=[dict(i) for i in listing.scan.managed],
            foreign=[dict(i) for i in listing.scan.foreign],
        )
        try:
            self.deps.state.save_glance_scan(source, saved)
        except sqlite3.Error as exc:  # the next run lists in full; nothing else depends on it
            log.warning("%s: could not save the Glance listing: %s", source, exc)

    def _forget_scan(self, source: str) -> None:
        if self.dry_run:
            return
        try:
            self.deps.state.forget_glance_scan(source)
        except sqlite3.Error as exc:
            log.warning("%s: could not drop the saved Glance listing: %s", source, exc)

    def _members_due(
        self, img: Any, sub: Target, projects: list[str], seen: MembersState | None
    ) -> bool:
        """Must this run list the members of ``img``? Not when the state says the last run
        left exactly ``projects`` accepted, less than ``members_recheck_hours`` ago."""
        if sub.visibility != "shared":
            return False
        if seen is None or img.get("visibility") != "shared":
            return True
        if seen.projects != tuple(sorted(projects)):
            return True
        age = datetime.now(UTC) - seen.checked_at
        return age >= timedelta(hours=self.cfg.members_recheck_hours)

    def _refresh(
        self,
        img: Any,
        e: ImageEntry,
        sub: Target,
        projects: list[str],
        accept_with: Any,
        *,
        members: bool = True,
    ) -> list[str]:
        g = self.deps.glance
        changed = []
        if img.get("status") == "deactivated":
            g.reactivate(img)
            changed.append("reactivated")
        changed += g.update_metadata(
            img,
            name=self._name(sub, e),
            visibility=sub.visibility,
            properties=image_properties(e, sub.name),
            min_ram=e.ram_min or 0,
        )
        if sub.visibility == "shared" and members:
            changed += g.ensure_members(img, projects, accept_with)
        return changed

    def _retire_others(
        self, source: str, ident: str, imgs: list[Any], keep: Any, report: RunReport
    ) -> None:
        for other in imgs:
            if other["id"] != keep["id"]:
                self._retire(source, other, report, reason=f"superseded by {keep['id']}")

    def _retire(self, source: str, img: Any, report: RunReport, *, reason: str) -> None:
        if self.dry_run:
            report.count("images_removed")
            return
        in_use = self.deps.in_use(img["id"])
        try:
            what = self.deps.glance.retire(
                img, in_use=in_use, keep_in_use=self.cfg.in_use == "keep"
            )
        except Exception as exc:  # noqa: BLE001
            report.error(f"{source}: could not retire image {img['id']}: {exc}")
            return
        if what == "deleted":
            report.count("images_removed")
        elif what == "deactivated":
            report.count("images_deactivated")
            report.warn(
                f"{source}: image {img['id']} ({reason}) is in use or its use is unknown: "
                "deactivated and made private instead of deleted"
            )
        if what != "kept":
            log.info("%s: image %s %s (%s)", source, img["id"], what, reason)

    def _clean_cache(self, source: str, e: ImageEntry, st: ImageState) -> None:
        """Drop cached files of older digests of this image."""
        keep = {Path(p).name for p in (st.path, st.upload_path) if p}
        d = self._dir(source, e.identifier)
        for f in d.iterdir() if d.is_dir() else []:
            if f.name not in keep and not f.name.endswith(".part"):
                f.unlink(missing_ok=True)


def _time_or_none(value: Any) -> datetime | None:
    """An ``updated_at`` from Glance (untrusted) or the state: None if it is not a time."""
    try:
        return parse_time(value)
    except ValueError:
        return None


def _newest(images: list[Any]) -> datetime | None:
    times = [t for t in (_time_or_none(i.get("updated_at")) for i in images) if t]
    return max(times) if times else None


def _note_image(
    report: RunReport, source: str, vo: str, e: ImageEntry, state: str, error: str | None = None
) -> None:
    """One image's outcome in the report's details (the status page's image table)."""
    report.details.setdefault("images", []).append(
        {
            "key": f"{source}/{e.identifier}",
            "source": source,
            "name": e.title or e.identifier,
            "vo": vo,
            "version": e.version,
            "state": state,
            "size": e.size,
            "error": error,
        }
    )

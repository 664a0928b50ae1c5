"""Collect: one pass over OpenStack (through a :class:`CloudSource`) into a :class:`Site`.

Flat API cost: versions, projects, flavors and images are listed once; per-project
calls (quotas, server states) and per-item calls (access list of a *private* flavor,
members of a *shared* image that would be published) run in a bounded thread pool.
Nothing is ever fetched per VO per property. A failure of one of those per-item
calls is recorded in the report and the rest goes on (the run is PARTIAL); unless the
failure is permanent (403, 404), the answer that call gave for the last written
snapshot is reused (:class:`~.snapshot.ItemMemory`), so a passing error does not
unpublish a flavor or an image for a cycle. A failure of a list call or the overall
timeout fails the collection (and no snapshot is written).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from fedcloud_core.config import AppConfig
from fedcloud_core.errors import FedcloudError, is_transient
from fedcloud_core.report import RunReport, utcnow

from .errors import CollectTimeout
from .model import Accelerator, Endpoint, Flavor, Image, Share, Site
from .snapshot_files import ItemMemory, Remembered
from .source import CloudSource, RawFlavor, RawImage, RawProject

log = logging.getLogger(__name__)
T = TypeVar("T")

# Nova server status -> the GLUE2 state it is counted in (docs/cloud-info.md, "Server states").
# A status not listed here (ERROR, UNKNOWN, DELETED, SOFT_DELETED) is counted in no state and
# so in no total either: every published total is the sum of the published per-state counts.
STATE_OF_STATUS = {
    "ACTIVE": "running",
    "REBOOT": "running",
    "HARD_REBOOT": "running",
    "PASSWORD": "running",
    "REBUILD": "running",
    "RESCUE": "running",
    "RESIZE": "running",
    "VERIFY_RESIZE": "running",
    "REVERT_RESIZE": "running",
    "MIGRATING": "running",
    "BUILD": "waiting",
    "PAUSED": "suspended",
    "SUSPENDED": "suspended",
    "SHUTOFF": "halted",
    "SHELVED": "halted",
    "SHELVED_OFFLOADED": "halted",
}
MARKETPLACE_KEYS = ("vmcatcher_event_ad_mpuri", "marketplace")
DESCRIPTION_KEYS = ("vmcatcher_event_dc_description", "vmcatcher_event_dc_title")
# APPLIANCE_ATTRIBUTES keys are published as they are (as cloud-info-provider 1.2.0 does:
# EGI's cloud-info-api reads eu.egi.cloud.image_ref / eu.egi.cloud.tag); these are also
# copied under a second name that older consumers read.
APPLIANCE_COPIES = {"ad:base_mpuri": "base_mpuri"}
# keys also read from the image's own properties when APPLIANCE_ATTRIBUTES lacks them
IMAGE_PROPERTY_KEYS = ("ad:base_mpuri", "eu.egi.cloud.image_ref", "eu.egi.cloud.tag")
# GLUE2 Benchmark_t spellings (the enumeration value is hep-spec06)
BENCHMARK_ALIASES = {"hepspec06": "hep-spec06", "hepspec": "hep-spec06", "hs06": "hep-spec06"}


@dataclass(frozen=True)
class CollectOptions:
    publish_all_images: bool = False
    timeout: float = 300.0
    workers: int = 4
    provider_version: str = "0"


def options_from(
    cfg: AppConfig,
    *,
    publish_all_images: bool | None = None,
    provider_version: str = "0",
) -> CollectOptions:
    ci = cfg.cloud_info
    return CollectOptions(
        publish_all_images=ci.publish_all_images
        if publish_all_images is None
        else publish_all_images,
        timeout=ci.timeout,
        workers=ci.workers,
        provider_version=provider_version,
    )


def collect(
    source: CloudSource,
    cfg: AppConfig,
    report: RunReport,
    opts: CollectOptions,
    *,
    now: datetime | None = None,
    memory: ItemMemory | None = None,
) -> Site:
    """Collect the site under the overall timeout. Raises FedcloudError on a failed collection.

    ``memory``: the per-item answers behind the previous snapshot; failed calls reuse them,
    and on return it holds the answers behind this collection (for the caller to save).
    """
    deadline = time.monotonic() + opts.timeout
    # the collection itself, the image and flavor listings, and ``workers`` per-item calls
    pool = ThreadPoolExecutor(max_workers=opts.workers + 3, thread_name_prefix="cloud-info")
    try:
        main = pool.submit(
            _collect, source, cfg, report, opts, pool, deadline, now or utcnow(), memory
        )
        try:
            return main.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise CollectTimeout(
                f"collection did not finish within {opts.timeout:g}s (cloud_info.timeout); "
                "the previous snapshot stays in place"
            ) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ----------------------------------------------------------------------------- steps


def _collect(
    source: CloudSource,
    cfg: AppConfig,
    report: RunReport,
    opts: CollectOptions,
    pool: ThreadPoolExecutor,
    deadline: float,
    now: datetime,
    memory: ItemMemory | None = None,
) -> Site:
    ci = cfg.cloud_info
    versions = source.versions()
    shares = _resolve_projects(source, cfg, report)
    # the image and flavor listings (paged, the longest) run while the per-project calls,
    # which need neither, go on in the other workers; the calls that need the listings
    # (flavor access, image members) follow
    images_listed = pool.submit(source.images)
    flavors_listed = pool.submit(source.flavors)
    tasks: dict[tuple[str, str], Callable[[], Any]] = {}
    for s in shares:
        tasks[("quotas", s.project_id)] = partial(source.quotas, s.project_id)
        tasks[("servers", s.project_id)] = partial(source.server_states, s.project_id)
    tasks[("capacity", "hypervisors")] = partial(_capacity, source)  # one call for the cloud
    futures = _submit(pool, tasks)
    raw_flavors = _listing(flavors_listed, deadline, "flavors")
    raw_images = _listing(images_listed, deadline, "images")
    report.count("flavors_seen", len(raw_flavors))
    report.count("images_seen", len(raw_images))

    candidates = [i for i in raw_images if opts.publish_all_images or _marketplace(i.properties)]
    report.count("images_skipped_no_marketplace", len(raw_images) - len(candidates))

    late: dict[tuple[str, str], Callable[[], Any]] = {}
    project_ids = {s.project_id for s in shares}
    for f in raw_flavors:
        if not f.is_public:
            late[("flavor_access", f.id)] = partial(source.flavor_projects, f.id)
    for i in candidates:
        if i.visibility == "shared":
            late[("members", i.id)] = partial(source.image_members, i.id)
    futures.update(_submit(pool, late))
    tasks.update(late)
    failures: dict[tuple[str, str], Exception] = {}
    results = _gather(futures, deadline, report, failures)
    if memory is not None:
        _reuse_previous(tasks, results, failures, memory, report, now)

    flavors: list[Flavor] = []
    flavor_access: dict[str, set[str]] = {}
    for rf in sorted(raw_flavors, key=lambda f: f.id):
        if rf.is_public:
            allowed = set(project_ids)
        elif ("flavor_access", rf.id) in results:
            allowed = set(results[("flavor_access", rf.id)]) & project_ids
        else:
            continue  # access list failed (reported): do not guess
        if not allowed:
            continue
        flavor_access[rf.id] = allowed
        flavors.append(_flavor(rf, report))

    images: list[Image] = []
    image_access: dict[str, set[str]] = {}
    for ri in sorted(candidates, key=lambda i: i.id):
        allowed = _image_projects(ri, project_ids, results)
        if not allowed:
            continue
        image_access[ri.id] = allowed
        images.append(_image(ri, report))

    final_shares: list[Share] = []
    for s in shares:
        quotas = results.get(("quotas", s.project_id))
        states = results.get(("servers", s.project_id))
        upd: dict[str, Any] = {
            "flavor_ids": tuple(f.id for f in flavors if s.project_id in flavor_access[f.id]),
            "image_ids": tuple(i.id for i in images if s.project_id in image_access[i.id]),
        }
        if quotas is not None:
            upd.update(
                max_instances=quotas.get("instances"),
                max_cores=quotas.get("cores"),
                max_ram=quotas.get("ram"),
                used_cores=quotas.get("cores_in_use"),
            )
        if states is not None:
            upd.update(_state_counts(s.project_id, states, report))
        final_shares.append(replace(s, **upd))
    capacity = results.get(("capacity", "hypervisors")) or {}

    report.count("flavors", len(flavors))
    report.count("images", len(images))
    report.count("shares", len(final_shares))
    endpoint = Endpoint(
        url=versions.keystone_url,
        authentication=ci.authentication,
        nova_version=versions.nova_version,
        nova_microversion=versions.nova_microversion,
        glance_version=versions.glance_version,
        keystone_version=versions.keystone_version,
        issuer_ca=ci.issuer_ca,
        trusted_cas=tuple(ci.trusted_cas),
    )
    return Site(
        name=cfg.site.name,
        endpoint=endpoint,
        creation_time=now,
        validity=ci.validity,
        production_level=cfg.site.production_level,
        platform=ci.platform,
        gocdb_id=ci.gocdb_id,
        provider_version=opts.provider_version,
        total_logical_cpus=capacity.get("logical_cpus"),
        total_physical_cpus=capacity.get("physical_cpus"),
        flavors=tuple(flavors),
        images=tuple(images),
        shares=tuple(sorted(final_shares, key=lambda s: (s.vo, s.project_id))),
        vos=tuple(sorted(cfg.vos)),
    )


def _resolve_projects(source: CloudSource, cfg: AppConfig, report: RunReport) -> list[Share]:
    """Config ``vos`` (project ids or names) -> one share per (VO, Keystone project)."""
    try:
        projects = source.projects()
    except FedcloudError as exc:
        if is_transient(exc):
            raise  # the run fails transient (exit 75); the next one asks again
        report.warn(
            f"cannot list Keystone projects ({exc}); using the configured values as project ids"
        )
        projects = [RawProject(p, p) for vo in cfg.vos.values() for p in vo.projects]
    by_id = {p.id: p for p in projects}
    by_name: dict[str, list[RawProject]] = {}
    for p in projects:
        by_name.setdefault(p.name, []).append(p)
    shares: dict[str, Share] = {}
    for vo, vo_cfg in sorted(cfg.vos.items()):
        for ref in vo_cfg.projects:
            project = by_id.get(ref)
            if project is None:
                named = by_name.get(ref, [])
                if len(named) > 1:
                    report.error(
                        f"vos.{vo}: project name {ref!r} is ambiguous "
                        f"({len(named)} projects in different domains); give its id"
                    )
                    continue
                project = named[0] if named else None
            if project is None:
                report.error(f"vos.{vo}: project {ref!r} not found in Keystone (by id or name)")
                continue
            if project.id in shares:
                report.error(
                    f"vos.{vo}: project {ref!r} is already mapped to VO {shares[project.id].vo}"
                )
                continue
            shares[project.id] = Share(
                vo=vo,
                project_id=project.id,
                project_name=project.name,
                domain_name=project.domain_name,
            )
    return list(shares.values())


def _capacity(source: CloudSource) -> dict[str, int]:
    """Hypervisor totals, or nothing (placeholders) when they cannot be read: Nova lets only
    admins list hypervisors, and the appliance's user is usually a reader."""
    try:
        return source.capacity()
    except FedcloudError as exc:
        log.info("hypervisor totals not available (%s): publishing placeholders", exc)
        return {}


def _state_counts(project_id: str, states: dict[str, int], report: RunReport) -> dict[str, int]:
    """Nova status counts -> the per-state counts of a share (STATE_OF_STATUS)."""
    counts = {"running": 0, "waiting": 0, "suspended": 0, "halted": 0}
    for status, n in states.items():
        state = STATE_OF_STATUS.get(status.upper())
        if state is None:
            report.count("servers_not_counted", n)  # ERROR, UNKNOWN, ...: in no state, no total
            log.debug("project %s: %d server(s) in status %s not counted", project_id, n, status)
        else:
            counts[state] += n
    return counts


def _submit(
    pool: ThreadPoolExecutor, tasks: dict[tuple[str, str], Callable[[], Any]]
) -> dict[Future[Any], tuple[str, str]]:
    return {pool.submit(fn): key for key, fn in tasks.items()}


def _listing(fut: Future[Any], deadline: float, what: str) -> Any:
    """A listing's answer; its error fails the collection, as does the timeout."""
    try:
        return fut.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        raise CollectTimeout(f"the {what} listing still pending at the timeout") from None


def _gather(
    futures: dict[Future[Any], tuple[str, str]],
    deadline: float,
    report: RunReport,
    failures: dict[tuple[str, str], Exception] | None = None,
) -> dict[tuple[str, str], Any]:
    results: dict[tuple[str, str], Any] = {}
    pending = set(futures)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            for f in pending:
                f.cancel()
            raise CollectTimeout(f"{len(pending)} OpenStack calls still pending at the timeout")
        done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for fut in done:
            key = futures[fut]
            try:
                results[key] = fut.result()
            except FedcloudError as exc:
                report.error(f"{key[0]} of {key[1]}: {exc}")
                if failures is not None:
                    failures[key] = exc
            except Exception as exc:  # noqa: BLE001 - one bad item never stops the rest
                report.error(f"{key[0]} of {key[1]}: unexpected {type(exc).__name__}: {exc}")
                if failures is not None:
                    failures[key] = exc
    return results


# per-item calls whose last good answer stands in for a failed one, and what a failure
# without an earlier answer costs
REUSABLE = {
    "flavor_access": "private flavor {} is left out of this snapshot",
    "members": "shared image {} is published at most to its owner's project",
    "quotas": "the share of project {} has unknown limits",
    "servers": "the share of project {} has no server counts",
}


def _reuse_previous(
    tasks: dict[tuple[str, str], Callable[[], Any]],
    results: dict[tuple[str, str], Any],
    failures: dict[tuple[str, str], Exception],
    memory: ItemMemory,
    report: RunReport,
    now: datetime,
) -> None:
    """Fill ``results`` for failed per-item calls from ``memory``; then make ``memory`` the
    answers behind this collection (items no longer listed are forgotten).

    A permanent failure (403, 404: the flavor or image is gone, or the appliance may no
    longer read it) is an answer, not a hiccup: nothing is reused for it.
    """
    at = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    current = ItemMemory()
    reused: list[str] = []
    for key in tasks:
        call, item = key
        if call not in REUSABLE:
            continue
        if key in results:
            current.items[key] = Remembered(results[key], stamp)
            continue
        old = memory.get(key)
        if old is not None and not _same_shape(call, old.value):
            old = None  # not what this call returns (a damaged file): never guess
        failure = failures.get(key)
        if old is None or (failure is not None and not is_transient(failure)):
            why = "no earlier answer" if old is None else "a permanent error"
            report.warn(f"{call} of {item}: {why}, nothing reused: {REUSABLE[call].format(item)}")
            continue
        results[key] = old.value
        current.items[key] = old  # still the time it was really collected
        reused.append(f"{call} of {item}")
        report.warn(f"{call} of {item}: reusing the answer collected at {old.collected}")
    if reused:
        report.count("items_reused", len(reused))
        report.details["items_reused"] = reused
    memory.replace(current)


def _same_shape(call: str, value: Any) -> bool:
    """Is ``value`` what ``call`` returns: project ids, or counts by name?"""
    if call in ("flavor_access", "members"):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    )


# ----------------------------------------------------------------------------- items


def _marketplace(props: dict[str, Any]) -> str | None:
    for k in MARKETPLACE_KEYS:
        v = props.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def _image_projects(
    ri: RawImage, projects: set[str], results: dict[tuple[str, str], Any]
) -> set[str]:
    if ri.visibility in ("public", "community"):
        return set(projects)
    allowed = {ri.owner} & projects if ri.owner else set()
    if ri.visibility == "shared":
        members = results.get(("members", ri.id))
        if members is not None:
            allowed |= set(members) & projects
    return allowed


def _int(value: Any, what: str, report: RunReport) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        report.warn(f"{what}: not an integer: {value!r} (left out)")
        return None


def _flavor(rf: RawFlavor, report: RunReport) -> Flavor:
    specs = {k.strip(): v.strip() for k, v in rf.extra_specs.items()}
    lower = {k.lower(): v for k, v in specs.items()}
    accelerator = None
    acc_type = lower.get("accelerator:type")
    if acc_type:
        number = _int(
            lower.get("accelerator:number", "1"), f"flavor {rf.id} Accelerator:Number", report
        )
        memory = lower.get("accelerator:memory")
        accelerator = Accelerator(
            type=acc_type,
            number=number if number is not None else 1,
            vendor=lower.get("accelerator:vendor") or None,
            model=lower.get("accelerator:model") or None,
            memory=_int(memory, f"flavor {rf.id} Accelerator:Memory", report) if memory else None,
        )
    found = {
        k.split(":", 1)[1].strip().lower(): v
        for k, v in specs.items()
        if k.lower().startswith("benchmark:") and k.split(":", 1)[1].strip() and v
    }
    # the accounting convention (cASO): accounting:benchmark_type / accounting:benchmark_value
    if lower.get("accounting:benchmark_type") and lower.get("accounting:benchmark_value"):
        found.setdefault(
            lower["accounting:benchmark_type"].lower(), lower["accounting:benchmark_value"]
        )
    benchmarks = tuple(sorted({BENCHMARK_ALIASES.get(k, k): v for k, v in found.items()}.items()))
    return Flavor(
        id=rf.id,
        name=rf.name,
        vcpus=rf.vcpus,
        ram=rf.ram,
        disk=rf.disk,
        ephemeral=rf.ephemeral,
        is_public=rf.is_public,
        accelerator=accelerator,
        infiniband=lower.get("infiniband", "").lower() == "true",
        benchmarks=benchmarks,
    )


def _appliance_attributes(ri: RawImage, report: RunReport) -> dict[str, Any]:
    raw = ri.properties.get("APPLIANCE_ATTRIBUTES")
    if raw in (None, ""):
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        data = json.loads(str(raw))
    except ValueError as exc:
        report.warn(f"image {ri.id}: APPLIANCE_ATTRIBUTES is not JSON ({exc}); ignored")
        return {}
    if not isinstance(data, dict):
        report.warn(f"image {ri.id}: APPLIANCE_ATTRIBUTES is not a JSON object; ignored")
        return {}
    return data


def _str(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _other_value(raw: Any) -> str | None:
    """An APPLIANCE_ATTRIBUTES value as published text (nested values as compact JSON)."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (dict, list)):
        return json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return _str(raw)


def _image(ri: RawImage, report: RunReport) -> Image:
    props = ri.properties
    attrs = _appliance_attributes(ri, report)
    other: dict[str, str] = {}
    for key, raw in attrs.items():
        value = _other_value(raw)
        if value is not None and str(key).strip():
            other[str(key).strip()] = value
    for key in IMAGE_PROPERTY_KEYS:
        if key not in other and _str(props.get(key)):
            other[key] = str(_str(props.get(key)))
    for key, copy in APPLIANCE_COPIES.items():
        if key in other:
            other.setdefault(copy, other[key])
    description = None
    for k in DESCRIPTION_KEYS:
        description = _str(props.get(k))
        if description:
            break
    version = (
        _str(attrs.get("hv:version"))
        or _str(props.get("vmcatcher_event_hv_version"))
        or _str(props.get("version"))
        or other.get("eu.egi.cloud.tag")
    )
    os_name = _str(props.get("os_distro"))
    size = ri.size if isinstance(ri.size, int) and ri.size > 0 else None
    return Image(
        id=ri.id,
        name=ri.name or ri.id,
        visibility=ri.visibility,
        owner=ri.owner,
        version=version,
        marketplace_url=_marketplace(props),
        description=description,
        os_family=(_str(props.get("os_type")) or "linux").lower(),
        os_name=os_name.lower() if os_name else None,
        os_version=_str(props.get("os_version")),
        platform=_str(props.get("architecture")),
        min_ram=ri.min_ram,
        disk_size=math.ceil(size / 2**30) if size else None,
        other_info=tuple(sorted(other.items())),
    )

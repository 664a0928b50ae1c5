"""One error tree, one classification of OpenStack errors (issue 19).

* every error class of every service hangs under ``TransientError`` or ``PermanentError``
  (or is a ``ConfigError``/``LockHeldError``), transient is said by the type only and
  gives exit 75, and each class is in the drawing of the module that defines it;
* the same keystoneauth1 / novaclient / glanceclient exception becomes the same class,
  with the same exit code, through each service's real translation path: cloud-info's
  ``OpenStackSource``, accounting's ``OpenStackUsageSource``, the images service's
  ``GlanceImages``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import SimpleNamespace
from typing import Any

import pytest
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ks_exc
from novaclient import exceptions as nova_exc

from fedcloud_accounting.extract.openstack import OpenStackUsageSource
from fedcloud_cloudinfo.source import OpenStackSource
from fedcloud_core.errors import (
    ConfigError,
    ExitCode,
    FedcloudError,
    LockHeldError,
    OpenStackRefused,
    OpenStackRequestFailed,
    OpenStackUnavailable,
    PermanentError,
    TransientError,
    exit_code_for,
    is_transient,
)
from fedcloud_core.report import RunReport
from fedcloud_images.glance import GlanceImages

pytestmark = pytest.mark.unit

PACKAGES = (
    "fedcloud_core",
    "fedcloud_cloudinfo",
    "fedcloud_sitebdii",
    "fedcloud_accounting",
    "fedcloud_ssm",
    "fedcloud_images",
    "fedcloud_appliance",
)


def _all_error_classes() -> list[type[FedcloudError]]:
    for pkg in PACKAGES:
        mod = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(mod.__path__, prefix=f"{pkg}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)
    seen: list[type[FedcloudError]] = []
    todo: list[type[FedcloudError]] = [FedcloudError]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return [c for c in seen if c.__module__.startswith(PACKAGES)]


def test_every_error_class_is_in_the_tree_with_the_exit_code_of_its_kind() -> None:
    classes = _all_error_classes()
    assert len(classes) > 30  # the walk found the services' errors
    wrong = []
    for cls in classes:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if "transient" in vars(cls):
            wrong.append(f"{name}: says transient with an attribute, not by its type")
        if cls in (FedcloudError, PermanentError, TransientError):
            continue
        if issubclass(cls, ConfigError | LockHeldError):
            continue
        if not issubclass(cls, PermanentError | TransientError):
            wrong.append(f"{name}: neither a PermanentError nor a TransientError")
        expected = ExitCode.TRANSIENT if issubclass(cls, TransientError) else ExitCode.FAILED
        if cls.exit_code != expected:
            wrong.append(f"{name}: exit code {cls.exit_code}, its kind says {expected}")
    assert wrong == []


def test_every_error_class_is_in_the_drawing_of_its_module() -> None:
    missing = []
    for cls in _all_error_classes():
        if cls.__name__.startswith("_"):
            continue  # a module's private detail
        doc = sys.modules[cls.__module__].__doc__ or ""
        drawn = "+--" in doc
        if cls.__module__.endswith(".errors") or drawn:
            if f" {cls.__name__} " not in doc.replace("\n", " "):
                missing.append(f"{cls.__module__}: {cls.__name__}")
    assert missing == []


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    """``outer`` raised while handling ``inner`` (as keystoneauth and glanceclient do)."""
    try:
        try:
            raise inner
        except type(inner):
            raise outer  # noqa: B904 - the implicit context is the point
    except type(outer) as exc:
        return exc


CASES: list[tuple[str, BaseException, type[FedcloudError], ExitCode]] = [
    ("ks-401", ks_exc.Unauthorized(), OpenStackRefused, ExitCode.FAILED),
    ("ks-403", ks_exc.Forbidden(), OpenStackRefused, ExitCode.FAILED),
    ("ks-connect-failure", ks_exc.ConnectFailure("refused"), OpenStackUnavailable, 75),
    ("ks-connect-timeout", ks_exc.ConnectTimeout("timed out"), OpenStackUnavailable, 75),
    ("ks-503", ks_exc.ServiceUnavailable(), OpenStackUnavailable, ExitCode.TRANSIENT),
    ("ks-500", ks_exc.InternalServerError(), OpenStackUnavailable, ExitCode.TRANSIENT),
    (
        "ks-discovery-after-connect-failure",
        _chained(ks_exc.DiscoveryFailure("no versioned endpoint"), ks_exc.ConnectFailure("x")),
        OpenStackUnavailable,
        ExitCode.TRANSIENT,
    ),
    (
        "ks-discovery-alone",
        ks_exc.DiscoveryFailure("no versioned identity endpoint"),
        OpenStackRequestFailed,
        ExitCode.FAILED,
    ),
    ("ks-no-endpoint", ks_exc.EndpointNotFound(), OpenStackRequestFailed, ExitCode.FAILED),
    ("ks-404", ks_exc.NotFound(), OpenStackRequestFailed, ExitCode.FAILED),
    ("nova-401", nova_exc.Unauthorized(401), OpenStackRefused, ExitCode.FAILED),
    ("nova-403", nova_exc.Forbidden(403), OpenStackRefused, ExitCode.FAILED),
    ("nova-404", nova_exc.NotFound(404), OpenStackRequestFailed, ExitCode.FAILED),
    ("nova-429", nova_exc.RateLimit(429), OpenStackUnavailable, ExitCode.TRANSIENT),
    ("glance-401", glance_exc.HTTPUnauthorized(), OpenStackRefused, ExitCode.FAILED),
    ("glance-403", glance_exc.HTTPForbidden(), OpenStackRefused, ExitCode.FAILED),
    ("glance-503", glance_exc.HTTPServiceUnavailable(), OpenStackUnavailable, 75),
    ("glance-404", glance_exc.HTTPNotFound(), OpenStackRequestFailed, ExitCode.FAILED),
    ("glance-no-connection", glance_exc.CommunicationError("x"), OpenStackUnavailable, 75),
    (
        "glance-invalid-endpoint-after-timeout",
        _chained(glance_exc.InvalidEndpoint("x"), ks_exc.ConnectTimeout("timed out")),
        OpenStackUnavailable,
        ExitCode.TRANSIENT,
    ),
]


class _Raising:
    """Any attribute chain ending in a call raises ``exc`` (a client whose API failed)."""

    def __init__(self, exc: BaseException):
        self._exc = exc

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._exc


def _cloudinfo(exc: BaseException) -> None:
    session = SimpleNamespace(session=SimpleNamespace(hooks={}))
    OpenStackSource(SimpleNamespace(session=session, nova=_Raising(exc))).flavors()


def _accounting(exc: BaseException) -> None:
    clients: Any = SimpleNamespace(keystone=_Raising(exc))
    OpenStackUsageSource(clients).projects()


def _images(exc: BaseException) -> None:
    GlanceImages(_Raising(exc), tag="t", owner="p").scan("list")


SERVICES = {"cloud-info": _cloudinfo, "accounting": _accounting, "images": _images}


@pytest.mark.parametrize(("exc", "cls", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_same_openstack_error_is_the_same_class_and_exit_code_in_every_service(
    exc: BaseException, cls: type[FedcloudError], code: ExitCode
) -> None:
    seen = {}
    for service, call in SERVICES.items():
        with pytest.raises(FedcloudError) as err:
            call(exc)
        report = RunReport(job=service)
        report.fail(err.value)  # how execute() ends a run that raised it
        seen[service] = (type(err.value), exit_code_for(err.value), report.exit_code)
    assert seen == dict.fromkeys(SERVICES, (cls, code, code))
    assert is_transient(exc) is False  # the client's exception itself is not ours


def test_a_revoked_credential_is_not_retried_anywhere() -> None:
    """Issue 19: a 401 was transient (exit 75, "retry later") in accounting only."""
    for call in SERVICES.values():
        with pytest.raises(OpenStackRefused) as err:
            call(ks_exc.Unauthorized())
        assert not is_transient(err.value)
        assert "credentials refused" in str(err.value)


def test_a_programming_error_is_not_taken_for_an_openstack_failure() -> None:
    for service, call in SERVICES.items():
        if service == "cloud-info":
            continue  # cloud-info counts anything its clients raise as that call failing
        with pytest.raises(KeyError):
            call(KeyError("id"))

"""One keystoneauth1 session for every OpenStack client of a job.

Credentials come the ecosystem's way: a named entry of ``clouds.yaml`` or the
``OS_*`` environment variables. Supported auth types: ``password`` / ``v3password``,
``v3applicationcredential`` and ``v3oidcaccesstoken`` (EGI Check-in). Nothing here
does network I/O: the session authenticates lazily on its first request.

:func:`classify_openstack_error` is the one place where an exception of keystoneauth1,
novaclient, glanceclient or keystoneclient becomes one of the appliance's errors; every
service's OpenStack layer calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from keystoneauth1 import loading, session

from . import oidc
from .config.openstack import OpenStackConfig
from .errors import (
    ConfigError,
    FedcloudError,
    OpenStackError,
    OpenStackRefused,
    OpenStackRequestFailed,
    OpenStackUnavailable,
)
from .logs import register_secret

CLOUDS_YAML_PATHS = (
    Path("clouds.yaml"),
    Path.home() / ".config" / "openstack" / "clouds.yaml",
    Path("/etc/openstack/clouds.yaml"),
)

AUTH_TYPE_ALIASES = {
    "password": "v3password",
    "v3password": "v3password",
    "token": "v3token",
    "v3token": "v3token",
    "v3applicationcredential": "v3applicationcredential",
    "applicationcredential": "v3applicationcredential",
    "v3oidcaccesstoken": "v3oidcaccesstoken",
    "oidcaccesstoken": "v3oidcaccesstoken",
}

# OS_* variable -> keystoneauth option name
_ENV_AUTH_KEYS = {
    "OS_AUTH_URL": "auth_url",
    "OS_USERNAME": "username",
    "OS_USER_ID": "user_id",
    "OS_PASSWORD": "password",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_PROJECT_NAME": "project_name",
    "OS_PROJECT_ID": "project_id",
    "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
    "OS_PROJECT_DOMAIN_ID": "project_domain_id",
    "OS_DOMAIN_NAME": "domain_name",
    "OS_DOMAIN_ID": "domain_id",
    "OS_SYSTEM_SCOPE": "system_scope",
    "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
    "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
    "OS_ACCESS_TOKEN": "access_token",
    "OS_IDENTITY_PROVIDER": "identity_provider",
    "OS_PROTOCOL": "protocol",
    "OS_TOKEN": "token",
}
_SECRET_KEYS = ("password", "application_credential_secret", "access_token", "token")


@dataclass
class CloudSettings:
    """The resolved access settings of one cloud (no secrets printed by ``repr``)."""

    auth_type: str
    auth: dict[str, Any] = field(repr=False)
    region_name: str | None = None
    interface: str = "public"
    verify: bool | str = True
    cert: str | None = None
    source: str = "environment"


def find_clouds_yaml(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    candidates = []
    if explicit:
        candidates.append(explicit)
    if environ.get("OS_CLIENT_CONFIG_FILE"):
        candidates.append(Path(environ["OS_CLIENT_CONFIG_FILE"]))
    candidates.extend(CLOUDS_YAML_PATHS)
    for p in candidates:
        if p.is_file():
            return p
    if explicit:
        raise ConfigError(f"clouds.yaml not found at {explicit}", key="openstack.clouds_yaml")
    return None


def _normalise_auth_type(raw: str | None, auth: Mapping[str, Any], source: str) -> str:
    if raw is None:
        if "application_credential_id" in auth or "application_credential_name" in auth:
            raw = "v3applicationcredential"
        elif "access_token" in auth or "identity_provider" in auth:
            raw = "v3oidcaccesstoken"
        elif "token" in auth and "password" not in auth:
            raw = "v3token"
        else:
            raw = "password"
    try:
        return AUTH_TYPE_ALIASES[raw.lower()]
    except KeyError:
        raise ConfigError(
            f"{source}: unsupported auth_type {raw!r} (use one of: password, "
            "v3applicationcredential, v3oidcaccesstoken, token)"
        ) from None


def resolve_cloud(cfg: OpenStackConfig, environ: Mapping[str, str] | None = None) -> CloudSettings:
    """Work out auth type, options, region and TLS settings from clouds.yaml or OS_*."""
    env = os.environ if environ is None else environ
    if cfg.cloud:
        path = find_clouds_yaml(cfg.clouds_yaml, env)
        if path is None:
            raise ConfigError(
                f"cloud {cfg.cloud!r} requested but no clouds.yaml was found "
                f"(looked in $OS_CLIENT_CONFIG_FILE, {', '.join(map(str, CLOUDS_YAML_PATHS))})",
                key="openstack.cloud",
            )
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read clouds.yaml: {exc}") from None
        clouds = doc.get("clouds") or {}
        if cfg.cloud not in clouds:
            raise ConfigError(
                f"{path}: no cloud named {cfg.cloud!r} (have: {', '.join(sorted(clouds)) or 'none'})",
                key="openstack.cloud",
            )
        entry = clouds[cfg.cloud] or {}
        auth = dict(entry.get("auth") or {})
        source = f"{path}: clouds.{cfg.cloud}"
        auth_type = _normalise_auth_type(entry.get("auth_type"), auth, source)
        verify: bool | str = entry.get("verify", True)
        if entry.get("cacert") and verify is not False:
            verify = str(entry["cacert"])
        settings = CloudSettings(
            auth_type=auth_type,
            auth=auth,
            region_name=cfg.region_name or entry.get("region_name"),
            interface=entry.get("interface", cfg.interface)
            if cfg.interface == "public"
            else cfg.interface,
            verify=verify,
            cert=entry.get("cert"),
            source=source,
        )
    else:
        auth = {opt: env[var] for var, opt in _ENV_AUTH_KEYS.items() if env.get(var)}
        if not auth.get("auth_url"):
            raise ConfigError(
                "no OpenStack credentials: set openstack.cloud (a clouds.yaml entry) or the OS_* "
                "variables (OS_AUTH_URL, ...)",
                key="openstack.cloud",
            )
        auth_type = _normalise_auth_type(env.get("OS_AUTH_TYPE"), auth, "OS_AUTH_TYPE")
        verify = env.get("OS_CACERT") or True
        if env.get("OS_INSECURE", "").lower() in ("1", "true", "yes"):
            raise ConfigError(
                "OS_INSECURE is refused: TLS verification stays on (set OS_CACERT instead)"
            )
        settings = CloudSettings(
            auth_type=auth_type,
            auth=auth,
            region_name=cfg.region_name or env.get("OS_REGION_NAME"),
            interface=env.get("OS_INTERFACE", cfg.interface),
            verify=verify,
        )
    if settings.verify is False:
        raise ConfigError(f"{settings.source}: verify: false is refused; give a cacert instead")
    if cfg.cacert:
        settings.verify = str(cfg.cacert)
    for k in _SECRET_KEYS:
        register_secret(settings.auth.get(k))
    return settings


def _plugin_options(auth_type: str, auth: Mapping[str, Any]) -> dict[str, Any]:
    loader: Any = loading.get_plugin_loader(auth_type)
    valid = {o.dest for o in loader.get_options()}
    unknown = sorted(k for k in auth if k.replace("-", "_") not in valid)
    if unknown:
        raise ConfigError(f"auth options not valid for {auth_type}: {', '.join(unknown)}")
    opts = {k.replace("-", "_"): v for k, v in auth.items()}
    if auth_type == "v3oidcaccesstoken":
        opts.setdefault("protocol", "openid")
    return opts


def make_session(cfg: OpenStackConfig, environ: Mapping[str, str] | None = None) -> session.Session:
    """A keystoneauth1 session for all clients (Nova, Glance, Keystone, ...). No I/O here."""
    settings = resolve_cloud(cfg, environ)
    source = oidc.token_source(cfg.oidc, verify=settings.verify)
    if source is not None:
        return _refreshing_session(cfg, settings, source)
    opts = _plugin_options(settings.auth_type, settings.auth)
    try:
        plugin: Any = loading.get_plugin_loader(settings.auth_type).load_from_options(**opts)
    except Exception as exc:  # noqa: BLE001 - keystoneauth raises several types for bad options
        raise ConfigError(
            f"{settings.source}: invalid {settings.auth_type} options: {exc}"
        ) from None
    return session.Session(
        auth=plugin, verify=settings.verify, cert=settings.cert, timeout=cfg.timeout
    )


def _refreshing_session(
    cfg: OpenStackConfig, settings: CloudSettings, source: oidc.AccessTokenSource
) -> session.Session:
    """A session whose v3oidcaccesstoken login asks ``source`` for each access token."""
    if settings.auth_type != "v3oidcaccesstoken":
        raise ConfigError(
            f"a refresh token or token command is configured, but {settings.source} uses "
            f"auth_type {settings.auth_type}: use v3oidcaccesstoken (with identity_provider "
            "and protocol, no access_token)",
            key="openstack.oidc",
        )
    auth = {k: v for k, v in settings.auth.items() if k != "access_token"}
    opts = _plugin_options(settings.auth_type, auth)
    try:
        plugin = oidc.RefreshingOidcAccessToken(token_source=source, **opts)
    except TypeError as exc:
        raise ConfigError(f"{settings.source}: invalid v3oidcaccesstoken options: {exc}") from None
    return session.Session(
        auth=plugin, verify=settings.verify, cert=settings.cert, timeout=cfg.timeout
    )


@dataclass
class OpenStackClients:
    """Lazily built clients sharing one session. Services take what they need."""

    session: session.Session
    region_name: str | None = None
    interface: str = "public"
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(
        cls, cfg: OpenStackConfig, environ: Mapping[str, str] | None = None
    ) -> OpenStackClients:
        settings = resolve_cloud(cfg, environ)
        return cls(make_session(cfg, environ), settings.region_name, settings.interface)

    def _kw(self) -> dict[str, Any]:
        return {"region_name": self.region_name, "interface": self.interface}

    @property
    def nova(self) -> Any:
        if "nova" not in self._cache:
            from novaclient import client as nova_client

            # novaclient names the interface 'endpoint_type' ('interface' is deprecated there)
            self._cache["nova"] = nova_client.Client(
                "2.61",
                session=self.session,
                region_name=self.region_name,
                endpoint_type=self.interface,
            )
        return self._cache["nova"]

    @property
    def glance(self) -> Any:
        if "glance" not in self._cache:
            from glanceclient import Client as GlanceClient

            self._cache["glance"] = GlanceClient("2", session=self.session, **self._kw())
        return self._cache["glance"]

    @property
    def keystone(self) -> Any:
        if "keystone" not in self._cache:
            from keystoneclient.v3 import client as ks_client

            self._cache["keystone"] = ks_client.Client(session=self.session, **self._kw())
        return self._cache["keystone"]

    def endpoint(self, service_type: str) -> str:
        """The catalog URL of a service (Neutron, Cinder, ...) for plain REST calls."""
        url = self.session.get_endpoint(service_type=service_type, **self._kw())
        if not url:
            raise ConfigError(f"no {service_type} endpoint in the catalog")
        return str(url)


# ---------------------------------------------------------------------- error classification

_CLIENT_MODULES = ("keystoneauth1", "keystoneclient", "novaclient", "glanceclient", "requests")


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status a client exception carries: keystoneauth's ``http_status``, novaclient's
    class ``http_status`` (its ``code`` argument is free text), glanceclient's ``code``."""
    for attr in ("http_status", "code", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _verdict(exc: BaseException) -> type[OpenStackError] | None:
    """The class ``exc`` alone says, or None when only its cause can tell."""
    import requests
    from glanceclient import exc as glance_exc
    from keystoneauth1 import exceptions as ks_exc
    from novaclient import exceptions as nova_exc

    if isinstance(
        exc,
        ks_exc.ConnectionError  # ConnectFailure, ConnectTimeout, SSLError, ...
        | glance_exc.CommunicationError
        | requests.ConnectionError
        | requests.Timeout
        | ConnectionError
        | TimeoutError,
    ):
        return OpenStackUnavailable
    if isinstance(exc, nova_exc.RetryAfterException):  # Nova's 413/429 with Retry-After
        return OpenStackUnavailable
    status = _http_status(exc)
    if status in (401, 403):
        return OpenStackRefused
    if status is not None and (status >= 500 or status in (408, 429)):
        return OpenStackUnavailable
    if status is not None and status >= 400:
        return OpenStackRequestFailed
    return None


def classify_openstack_error(exc: BaseException, what: str) -> FedcloudError | None:
    """The appliance error for a failed OpenStack call ``what`` (e.g. "Nova flavors").

    * 401/403 (keystoneauth ``Unauthorized``/``Forbidden``, novaclient's and glanceclient's
      own) -> :class:`OpenStackRefused`: a refused or revoked credential does not heal by
      retrying, so it is permanent in every service;
    * no connection, a timeout, 5xx, 408, 429 -> :class:`OpenStackUnavailable` (transient);
      so is an error raised while handling one of those (keystoneauth's
      ``DiscoveryFailure`` after a refused connection, glanceclient's ``InvalidEndpoint``
      after a ``ConnectTimeout``);
    * any other error of the client libraries (other 4xx, ``EndpointNotFound``, a
      ``DiscoveryFailure`` on its own, an unsupported microversion) ->
      :class:`OpenStackRequestFailed`.

    An appliance error is returned as it is. Anything else (not raised by the client
    libraries: a programming error) gives None: the caller lets it propagate.
    """
    if isinstance(exc, FedcloudError):
        return exc
    if not type(exc).__module__.startswith(_CLIENT_MODULES) and not isinstance(
        exc, ConnectionError | TimeoutError
    ):
        return None
    verdict: type[OpenStackError] | None = None
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and verdict is None:
        seen.add(id(link))
        verdict = _verdict(link)
        link = link.__cause__ or link.__context__
    cls = verdict or OpenStackRequestFailed
    status = _http_status(exc)
    text = str(exc) or type(exc).__name__
    if status is not None and str(status) not in text:
        text += f" (HTTP {status})"
    why = {
        OpenStackRefused: "credentials refused" if status == 401 else "not allowed",
        OpenStackUnavailable: "OpenStack unavailable",
        OpenStackRequestFailed: "request failed",
    }[cls]
    if cls is OpenStackRefused and status not in (401, 403):
        why = "credentials refused or not allowed"
    return cls(f"{what}: {why}: {type(exc).__name__}: {text}", status=status)

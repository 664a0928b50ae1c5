"""Errors of the BDII code (see fedcloud_core.errors for the hierarchy)::

PermanentError
+-- BdiiError                 the BDII code's root                                  exit 1
    +-- LdapUnavailable       slapd / a resource BDII did not answer (also TransientError) 75
    +-- SlapdError            slapd could not be configured, started or stopped (also ToolError)
"""

from __future__ import annotations

from ..errors import PermanentError, ToolError, TransientError


class BdiiError(PermanentError):
    """Root of the BDII errors."""


class LdapUnavailable(TransientError, BdiiError):
    """An LDAP server did not answer (connect/bind/search failed or timed out)."""


class SlapdError(BdiiError, ToolError):
    """slapd failed to start, answer or stop."""

    def __init__(self, message: str, *, returncode: int | None = None):
        ToolError.__init__(self, "slapd", message, returncode=returncode)

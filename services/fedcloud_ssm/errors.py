"""Errors of the SSM sender and receiver.

::

    SsmError (FedcloudError)
    +-- CredentialError      host certificate/key unusable (mismatch, expiring)   permanent
    +-- BadMessage           one message cannot be read or encoded: set aside     per message
    +-- BrokerUnavailable    cannot connect / lost the broker or AMS              transient (75)
    +-- DeliveryError        no receipt / AMS kept failing after retries          transient (75)
    +-- BrokerRefused        the broker or AMS refused us (ERROR frame, 401/403)  permanent
"""

from __future__ import annotations

from fedcloud_core.errors import FedcloudError, PermanentError, TransientError


class SsmError(FedcloudError):
    """Root of the SSM errors."""


class CredentialError(PermanentError, SsmError):
    """The host certificate or key cannot be used (missing, mismatched, expiring)."""


class BadMessage(SsmError):
    """One message cannot be read or encoded; it is set aside with this reason."""


class BrokerUnavailable(TransientError, SsmError):
    """The broker (or AMS) could not be reached; nothing was lost, the next run resends."""


class DeliveryError(TransientError, SsmError):
    """A message was not acknowledged; it stays queued."""


class BrokerRefused(PermanentError, SsmError):
    """The broker or AMS refused the request (authentication, authorisation, protocol error)."""


class MessageTooLarge(SsmError):
    """The transport refused the message for its size (AMS 413)."""

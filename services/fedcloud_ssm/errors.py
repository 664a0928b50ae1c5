"""Errors of the SSM sender and receiver.

::

    SsmError (PermanentError)
    +-- CredentialError      host certificate/key unusable (mismatch, expiring)   permanent
    +-- BadMessage           one message cannot be read or encoded: set aside     per message
    +-- MessageRefused       the broker/AMS refused THIS message (STOMP ERROR     per message
    |                        frame for it, AMS 4xx other than 401/403/404/413):
    |                        set aside
    +-- BrokerUnavailable    cannot connect / lost the broker or AMS              transient (75)
    +-- DeliveryError        no receipt / AMS kept failing after retries          transient (75)
    +-- BrokerRefused        the broker or AMS refused us (ERROR frame about      permanent
    |                        access or the destination, 401/403/404)
    +-- MessageTooLarge      AMS 413: the sender splits the message               per message
"""

from __future__ import annotations

from fedcloud_core.errors import PermanentError, TransientError


class SsmError(PermanentError):
    """Root of the SSM errors."""


class CredentialError(SsmError):
    """The host certificate or key cannot be used (missing, mismatched, expiring)."""


class BadMessage(SsmError):
    """One message cannot be read or encoded; it is set aside with this reason."""


class MessageRefused(SsmError):
    """The broker or AMS refused this one message for what it is (size, content); it is set
    aside with this reason so that it does not block the queue."""


class BrokerUnavailable(TransientError, SsmError):
    """The broker (or AMS) could not be reached; nothing was lost, the next run resends."""


class DeliveryError(TransientError, SsmError):
    """A message was not acknowledged; it stays queued."""


class BrokerRefused(SsmError):
    """The broker or AMS refused the request (authentication, authorisation, protocol error)."""


class MessageTooLarge(SsmError):
    """The transport refused the message for its size (AMS 413)."""

"""Shared core of the fedcloud appliance.

Every service package imports from here and from nowhere else in the project:
config model and loading, logging, errors, the keystoneauth session, the run
framework (lock, report, heartbeat), atomic file writes and the scheduler.
"""

__version__ = "0.1.0"

"""A server's state history from its instance actions -> running and suspended seconds.

Actions that stop a server from running: ``stop`` (SHUTOFF; optional, see
``shutoff_is_suspended``), ``suspend``, ``pause``, ``shelve`` and ``shelveOffload``;
the action that brings it back from each state: ``start``, ``resume``, ``unpause``,
``unshelve`` (a stopped or suspended server may also be shelved). Every
other action (reboot, resize, rebuild, ...) leaves the server running. Values are
cumulative from the server's creation up to the end of the window (or its
termination when earlier); only actions up to that horizon count, so re-running
a window gives the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .facts import Action, Server, epoch

OFF = {
    "stop": "stopped",
    "suspend": "suspended",
    "pause": "paused",
    "shelve": "shelved",
    "shelveOffload": "shelved",
}
# the action that ends each state (Nova refuses the others, e.g. ``start`` of a shelved server)
ON = {"stopped": "start", "suspended": "resume", "paused": "unpause", "shelved": "unshelve"}


@dataclass(frozen=True)
class Usage:
    """Usage of one server from creation to ``horizon``."""

    horizon: datetime  # min(window end, termination)
    wall: int  # seconds running
    suspended: int  # seconds stopped/suspended/paused/shelved (counted ones)
    state: str  # running | stopped | suspended | paused | shelved, at the horizon
    ended: bool  # terminated at or before the window end


def usage(
    created: datetime,
    terminated: datetime | None,
    actions: Iterable[Action],
    until: datetime,
    *,
    shutoff_is_suspended: bool = True,
    launched: bool = True,
) -> Usage | None:
    """Running/suspended seconds of a server; ``None`` when it did not exist before ``until``.

    A server that was never launched (it went to ERROR while building) used nothing.
    """
    ended = terminated is not None and terminated <= until
    horizon = terminated if ended and terminated is not None else until
    if horizon < created:
        return None
    if not launched:
        return Usage(horizon=horizon, wall=0, suspended=0, state="running", ended=ended)
    state = "running"
    since = created  # start of the current state
    wall = suspended = 0
    for act in sorted(actions, key=lambda a: (a.time, a.name)):
        if act.time < created or act.time > horizon:
            continue
        if state == "running":
            new = OFF.get(act.name, state)
        elif act.name == ON[state]:
            new = "running"
        elif act.name in ("shelve", "shelveOffload") and state != "shelved":
            new = "shelved"  # a stopped or suspended server can be shelved
        else:
            continue  # e.g. shelveOffload after shelve, start of a shelved server, reboot
        if new == state:
            continue
        seconds = epoch(act.time) - epoch(since)  # whole epochs: the parts add up exactly
        if _counts_as_running(state, shutoff_is_suspended):
            wall += seconds
        else:
            suspended += seconds
        state, since = new, act.time
    seconds = epoch(horizon) - epoch(since)
    if _counts_as_running(state, shutoff_is_suspended):
        wall += seconds
    else:
        suspended += seconds
    return Usage(horizon=horizon, wall=wall, suspended=suspended, state=state, ended=ended)


def _counts_as_running(state: str, shutoff_is_suspended: bool) -> bool:
    return state == "running" or (state == "stopped" and not shutoff_is_suspended)


# Nova sets launched_at on the compute host and updated_at when it saves the instance
# right after (both to the second): the first spawn shows them equal or a second apart
SAME_SAVE = timedelta(seconds=2)


def history_matters(server: Server, max_build: timedelta) -> bool:
    """Whether ``server``'s instance actions can change its record (else they need no reading).

    - A server that went to ERROR without ever being launched used nothing, whatever
      its actions say (:func:`usage` with ``launched=False``).
    - A server ACTIVE with no operation in progress whose ``updated`` is its
      ``launched_at`` (within :data:`SAME_SAVE`) was last saved by a spawn: nothing
      stopped, suspended, paused or shelved it since, as each of those saves the
      instance. Nova spawns again on rebuild, unshelve, resize (and its revert) and
      rescue, each resetting ``launched_at``, so the spawn must also be the first one:
      ``launched_at`` at most ``max_build`` after the creation (a zero ``max_build``
      turns this off). Its history is then ``create`` alone, as far as the record goes.
    """
    if server.launched is None and server.status == "ERROR":
        return False
    if max_build <= timedelta(0) or server.launched is None or server.updated is None:
        return True
    if server.status != "ACTIVE" or server.task_state or server.terminated is not None:
        return True
    if abs(server.updated - server.launched) > SAME_SAVE:
        return True
    return not (server.created <= server.launched <= server.created + max_build)

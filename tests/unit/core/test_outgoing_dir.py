"""The outgoing queue root is said once (``AppConfig.outgoing_dir``): the accounting job writes
there, ssm send reads there, the status page and the probes count there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fedcloud_core.config import parse_config

pytestmark = pytest.mark.unit

SERVICES = Path(__file__).resolve().parents[3] / "services"
MINIMAL = "site:\n  name: TEST-SITE\n"


def test_outgoing_dir_defaults_below_the_spool_and_follows_the_override() -> None:
    cfg = parse_config(MINIMAL + "paths:\n  spool_dir: /srv/spool\n", environ={})
    assert cfg.outgoing_dir == Path("/srv/spool/outgoing")
    cfg = parse_config(MINIMAL + "accounting:\n  outgoing_dir: /srv/queues\n", environ={})
    assert cfg.outgoing_dir == Path("/srv/queues")


# the default spelt out again (spool_dir / "outgoing") or the override read directly
_COMPUTED_AGAIN = re.compile(r"""spool_dir\s*/\s*["']outgoing["']|accounting\.outgoing_dir\b""")


def test_no_service_computes_the_outgoing_dir_itself() -> None:
    model = SERVICES / "fedcloud_core" / "config" / "model.py"
    offenders = [
        f"{path.relative_to(SERVICES)}:{number}: {line.strip()}"
        for path in SERVICES.rglob("*.py")
        if path != model
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _COMPUTED_AGAIN.search(line)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize(
    "line",
    [
        'outgoing = config.accounting.outgoing_dir or config.paths.spool_dir / "outgoing"',
        "root = cfg.paths.spool_dir / 'outgoing'",
    ],
)
def test_the_scan_sees_a_second_computation(line: str) -> None:
    assert _COMPUTED_AGAIN.search(line)

"""A 1,000-server fake site queues exactly what the extractor queued before issue 15.

The digests in ``golden/fleet-1000.json`` were taken with the extractor that read every
server's instance actions (before the shortcut that skips servers untouched since their
first launch): every later change must queue the same bytes. ``fleet()`` follows
Nova's rules for ``launched_at`` and ``updated``, traps included (servers stopped or
shelved and then re-spawned by a rebuild or an unshelve days after their creation).
``FEDCLOUD_ACCOUNTING_GOLDEN_WRITE=1`` rewrites the file - only with an extractor known
to be right.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from fedcloud_accounting import extractor as accounting_extractor
from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.extractor import Extractor, Window
from fedcloud_core.errors import ExitCode
from unit.accounting.accounting_fakes import FLEET_END, MemoryWriter, fleet, fleet_config

pytestmark = pytest.mark.unit
GOLDEN = Path(__file__).parent / "golden" / "fleet-1000.json"


def digests(writer: MemoryWriter) -> dict[str, object]:
    messages = sorted(f"{q}\n".encode() + body for q, body in writer.messages)
    records: dict[str, str] = {}
    for q, body in writer.messages:
        if q != "cloud":
            continue
        for chunk in body.decode("ascii").split("%%\n"):
            uuid = [ln for ln in chunk.splitlines() if ln.startswith("VMUUID: ")]
            if uuid:
                records[uuid[0][8:]] = hashlib.sha256(chunk.encode()).hexdigest()[:16]
    return {
        "messages": [hashlib.sha256(m).hexdigest() for m in messages],
        "cloud_records": dict(sorted(records.items())),
    }


def test_the_fleet_queues_the_golden_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(accounting_extractor, "__version__", "golden")
    cfg = fleet_config(tmp_path, ip_records=True, accelerator_records=True)
    writer = MemoryWriter()
    store = CheckpointStore(tmp_path / "state" / "accounting" / "checkpoints.json")
    report = Extractor(
        cfg, fleet(1000), writer, store, now=lambda: FLEET_END, window=Window(extract_to=FLEET_END)
    ).run()
    assert report.exit_code == ExitCode.OK, report.render_text()
    got = digests(writer)
    if os.environ.get("FEDCLOUD_ACCOUNTING_GOLDEN_WRITE") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
        pytest.skip(f"golden digests written to {GOLDEN}")
    want = json.loads(GOLDEN.read_text())
    assert len(got["cloud_records"]) == len(want["cloud_records"]) == 1000
    differ = [k for k, v in want["cloud_records"].items() if got["cloud_records"].get(k) != v]
    assert not differ, f"{len(differ)} cloud records differ, e.g. {differ[:5]}"
    assert got["messages"] == want["messages"]

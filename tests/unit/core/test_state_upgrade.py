"""In-place upgrades: state of the previous release is read and migrated with nothing lost;
state of a newer release is refused with a message naming the file and both versions.

The fixtures (``fixtures/state-v1``) were written by the release before versioned state.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedcloud_accounting.action_cache import ActionCache
from fedcloud_accounting.checkpoint import CheckpointStore
from fedcloud_accounting.finals import FinalsStore
from fedcloud_core import statefile
from fedcloud_core.errors import PermanentError, StateVersionError
from fedcloud_core.report import RunReport, load_report, store_report
from fedcloud_images.cache.state import SCHEMA_VERSION, ImageState, State

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "state-v1"
PROJECT = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "v1")
    return tmp_path / "v1"


def _state(root: Path) -> Path:
    return root / "var-lib-fedcloud-appliance"


def _rows(db_path: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(db_path)
    try:
        return {
            "lists": sorted(db.execute("SELECT * FROM lists").fetchall()),
            "images": sorted(db.execute("SELECT * FROM images").fetchall()),
        }
    finally:
        db.close()


# ------------------------------------------------------------------ previous release -> this one


def test_checkpoints_of_the_previous_release_are_kept(old: Path):
    path = _state(old) / "accounting" / "checkpoints.json"
    before = json.loads(path.read_text())["projects"]
    store = CheckpointStore(path)
    loaded = store.load()
    assert {k: v.strftime("%Y-%m-%dT%H:%M:%SZ") for k, v in loaded.items()} == before
    assert len(loaded) == 3
    # the next run moves one project on and keeps the others
    assert store.advance(PROJECT, datetime(2026, 11, 2, tzinfo=UTC))
    after = json.loads(path.read_text())
    assert after["version"] == 1
    assert {k: v for k, v in after["projects"].items() if k != PROJECT} == {
        k: v for k, v in before.items() if k != PROJECT
    }


def test_action_cache_of_the_previous_release_is_kept(old: Path):
    root = _state(old) / "accounting" / "actions"
    raw = json.loads((root / f"{PROJECT}.json").read_text())
    loaded = ActionCache(root).load(PROJECT)
    assert sorted(loaded) == sorted(raw["servers"]) == ["srv-1", "srv-2"]  # srv-0 unsettled
    for sid, (updated, actions) in loaded.items():
        assert updated == raw["servers"][sid]["updated"]
        assert [[a.name, a.time.isoformat()] for a in actions] == raw["servers"][sid]["actions"]


def test_images_state_db_of_the_previous_release_is_migrated_with_every_row(old: Path):
    path = old / "image_data" / "state.sqlite"
    before = _rows(path)
    assert len(before["lists"]) == 2
    assert len(before["images"]) == 3
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0  # unversioned
    st = State(path)
    assert st.last_list("egi-vo-list").version == "20261101"  # type: ignore[union-attr]
    assert st.last_list("registry-egi").list_id is None  # type: ignore[union-attr]
    img = st.image("registry-egi", "egi_vm_images/ubuntu:24.04")
    assert img is not None
    assert img.last_error == "timeout"
    assert img.attempts == 2
    assert len(st.images("egi-vo-list")) == 2
    assert st.glance_scan("egi-vo-list") is None  # the migrations' tables are there, empty
    assert st.members("egi-vo-list") == {}
    st.close()
    assert _rows(path) == before  # nothing lost or changed
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_run_reports_of_the_previous_release_are_read(old: Path):
    state = _state(old)
    for job, status in (
        ("accounting-extract", "ok"),
        ("images-sync", "partial"),
        ("bdii-update", "ok"),
    ):
        raw = json.loads((state / "status" / f"{job}.json").read_text())
        assert "version" not in raw  # the previous release did not version them
        rep = load_report(state, job)
        assert rep is not None
        assert rep["status"] == status
        assert {k: rep[k] for k in raw} == raw  # every field kept
    store_report(state, RunReport(job="images-sync").finish())
    assert load_report(state, "images-sync")["version"] == 1  # type: ignore[index]


# ------------------------------------------------------------------ a newer state is refused


def _bump(path: Path, version: int) -> None:
    doc = json.loads(path.read_text())
    doc["version"] = version
    path.write_text(json.dumps(doc))


def test_newer_checkpoints_are_refused_untouched(old: Path):
    path = _state(old) / "accounting" / "checkpoints.json"
    _bump(path, 7)
    text = path.read_text()
    with pytest.raises(StateVersionError) as err:
        CheckpointStore(path).load()
    msg = str(err.value)
    assert str(path) in msg
    assert "version 7" in msg
    assert "up to 1" in msg
    assert "newer appliance" in msg
    assert "Upgrade and rollback" in msg
    assert isinstance(err.value, PermanentError)
    with pytest.raises(StateVersionError):
        CheckpointStore(path).advance(PROJECT, datetime(2030, 1, 1, tzinfo=UTC))
    assert path.read_text() == text


def test_newer_action_cache_is_refused(old: Path):
    root = _state(old) / "accounting" / "actions"
    _bump(root / f"{PROJECT}.json", 2)
    with pytest.raises(StateVersionError, match=r"action cache has state version 2"):
        ActionCache(root).load(PROJECT)


def test_newer_finals_are_refused_untouched(tmp_path: Path):
    """finals.json is versioned state too (issue 18): a newer release's file stops the run
    instead of being read as empty and overwritten."""
    path = tmp_path / "accounting" / "finals.json"
    store = FinalsStore(path)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    store.save(PROJECT, {"srv-1": when}, when - timedelta(minutes=10), {})
    assert json.loads(path.read_text())["version"] == 1
    assert store.load() == {PROJECT: {"srv-1": when}}
    _bump(path, 3)
    text = path.read_text()
    with pytest.raises(StateVersionError) as err:
        store.load()
    msg = str(err.value)
    assert str(path) in msg
    assert "accounting final records has state version 3" in msg
    assert "up to 1" in msg
    assert path.read_text() == text


def test_newer_images_state_db_is_refused_untouched(old: Path):
    path = old / "image_data" / "state.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    before = path.read_bytes()
    st = State(path)
    with pytest.raises(StateVersionError) as err:
        st.open()  # what images sync does first: the run fails before any work
    with pytest.raises(StateVersionError):
        st.image("egi-vo-list", "img-alma-9")
    assert str(path) in str(err.value)
    assert "version 5" in str(err.value)
    with pytest.raises(StateVersionError):  # still refused: no half-open connection kept
        st.save_image(ImageState("s", "i", "h"))
    assert path.read_bytes() == before


def test_newer_run_report_is_shown_as_unknown_with_the_reason(old: Path):
    state = _state(old)
    _bump(state / "status" / "bdii-update.json", 3)
    rep = load_report(state, "bdii-update")
    assert rep is not None
    assert rep["status"] == "unknown"
    assert "run report has state version 3" in rep["fatal"]


# ------------------------------------------------------------------ the helper itself


def test_migrations_run_in_order_and_keep_the_old_file(tmp_path: Path):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps({"items": ["a", "b"]}))  # unversioned: counts as version 1
    steps = {
        1: lambda d: {"items": dict.fromkeys(d["items"], True)},
        2: lambda d: {**d, "count": len(d["items"])},
    }
    doc = statefile.load_versioned(path, "thing", 3, steps, persist=True)
    assert doc == {"items": {"a": True, "b": True}, "count": 2, "version": 3}
    assert json.loads(path.read_text()) == doc
    assert json.loads((tmp_path / "thing.json.v1").read_text()) == {"items": ["a", "b"]}
    assert statefile.load_versioned(path, "thing", 3, steps) == doc  # idempotent


def test_a_missing_migration_step_is_refused(tmp_path: Path):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps({"version": 1}))
    with pytest.raises(StateVersionError, match="no migration from that version"):
        statefile.load_versioned(path, "thing", 3, {2: lambda d: d})


def test_a_bad_version_field_is_a_value_error(tmp_path: Path):
    path = tmp_path / "thing.json"
    path.write_text(json.dumps({"version": "two"}))
    with pytest.raises(ValueError, match="not a state version"):
        statefile.load_versioned(path, "thing", 1)
    assert statefile.load_versioned(tmp_path / "absent.json", "thing", 1) is None


def test_sqlite_migration_is_one_transaction(tmp_path: Path):
    path = tmp_path / "db.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (a TEXT)")
    db.execute("INSERT INTO t VALUES ('x')")
    db.commit()

    def add_b(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 0")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("UPDATE t SET b = 1")
        raise RuntimeError("step 2 failed")

    with pytest.raises(RuntimeError):
        statefile.sqlite_version(
            db, path=path, kind="t", current=3, migrations={1: add_b, 2: broken}, fresh=False
        )
    assert [r[1] for r in db.execute("PRAGMA table_info(t)")] == ["a"]  # rolled back
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    found = statefile.sqlite_version(
        db, path=path, kind="t", current=2, migrations={1: add_b}, fresh=False
    )
    assert found == 1
    assert db.execute("SELECT a, b FROM t").fetchall() == [("x", 0)]
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()


def test_a_new_database_is_stamped_with_the_current_version(tmp_path: Path):
    st = State(tmp_path / "new.sqlite")
    assert st.last_list("x") is None
    st.close()
    db = sqlite3.connect(tmp_path / "new.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()

"""Core building blocks: atomic writes, run locks, reports, log redaction, LDIF, tool adapter."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import sys
import time

import pytest

from fedcloud_core import ldif
from fedcloud_core.errors import LockHeldError, ToolError
from fedcloud_core.external import run_tool
from fedcloud_core.files import atomic_write, atomic_writer
from fedcloud_core.lock import RunLock
from fedcloud_core.logs import register_secret, setup_logging
from fedcloud_core.report import RunReport, RunStatus, load_report, store_report

pytestmark = pytest.mark.unit


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write(p, "one")
    atomic_write(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["f.txt"]


def test_atomic_writer_leaves_old_content_on_error(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")

    def crash() -> None:
        with atomic_writer(p) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        crash()
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def _hold(lock_dir, ready, release):
    with RunLock(lock_dir, "job"):
        ready.set()
        release.wait(10)


def test_run_lock_excludes_other_process_and_is_freed_on_exit(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    proc.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeldError, match=rf"pid {proc.pid}"):
            RunLock(tmp_path, "job").acquire()
    finally:
        release.set()
        proc.join(10)
    with RunLock(tmp_path, "job", wait=2):
        pass


def test_run_lock_is_released_when_holder_is_killed(tmp_path):
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(tmp_path, ready, release))
    proc.start()
    assert ready.wait(10)
    proc.kill()
    proc.join(10)
    with RunLock(tmp_path, "job", wait=2):  # no stale lock after SIGKILL
        pass


def test_run_lock_wait_gives_up_after_timeout(tmp_path):
    with RunLock(tmp_path, "job"):
        t0 = time.monotonic()
        with pytest.raises(LockHeldError):
            RunLock(tmp_path, "job", wait=0.5).acquire()
        assert time.monotonic() - t0 >= 0.5


def test_report_status_and_storage(tmp_path):
    r = RunReport(job="images-sync")
    assert r.status is RunStatus.OK
    r.count("downloaded", 2)
    r.count("downloaded")
    r.error("image X: checksum mismatch")
    r.finish()
    assert r.status is RunStatus.PARTIAL
    assert r.exit_code == 3
    assert "downloaded=3" in r.summary()
    store_report(tmp_path, r)
    loaded = load_report(tmp_path, "images-sync")
    assert loaded is not None
    assert loaded["status"] == "partial"
    assert loaded["errors"] == ["image X: checksum mismatch"]
    assert (tmp_path / "status" / "images-sync.heartbeat").exists()
    failed = RunReport(job="x", fatal="broker down").finish()
    assert failed.status is RunStatus.FAILED
    assert failed.exit_code == 1


def test_logs_redact_secrets_in_text_and_json():
    register_secret("hunter2-very-secret")
    for fmt in ("text", "json"):
        buf = io.StringIO()
        setup_logging(fmt=fmt, stream=buf)
        log = logging.getLogger("t")
        log.info("password is %s", "hunter2-very-secret")
        log.info("GET https://user:pa55word@host.example/list?token=abc123&x=1")
        log.info("headers {'X-Auth-Token': 'gAAAAAB-token-value'}")
        out = buf.getvalue()
        assert "hunter2" not in out
        assert "pa55word" not in out
        assert "abc123" not in out
        assert "gAAAAAB" not in out
        assert "host.example/list" in out
        if fmt == "json":
            docs = [json.loads(line) for line in out.splitlines()]
            assert docs[0]["level"] == "info"
            assert docs[0]["logger"] == "t"
    setup_logging(stream=sys.stderr)


def test_logs_redact_exception_text():
    register_secret("exc-secret-1234")
    buf = io.StringIO()
    setup_logging(stream=buf)
    try:
        raise ValueError("failed with exc-secret-1234")
    except ValueError:
        logging.getLogger("t").exception("oops")
    assert "exc-secret-1234" not in buf.getvalue()
    assert "ValueError" in buf.getvalue()
    setup_logging(stream=sys.stderr)


def test_ldif_round_trip_with_unsafe_values():
    e = ldif.Entry("GLUE2ResourceID=a b,o=glue")
    e.add("objectClass", "GLUE2Entity", "GLUE2Resource", "GLUE2Entity")
    e.add("GLUE2EntityName", "Café")
    e.add("GLUE2EntityOtherInfo", " leading space", ":colon", "<lt", "multi\nline", None)
    e.add("GLUE2ExecutionEnvironmentVirtualMachine", True)
    e.add("Long", "x" * 200)
    text = ldif.render([e])
    assert "objectClass: GLUE2Entity\nobjectClass: GLUE2Resource\n" in text
    assert "GLUE2EntityName:: " in text
    assert "GLUE2ExecutionEnvironmentVirtualMachine: true" in text
    assert all(len(line) <= 76 for line in text.splitlines())
    (back,) = ldif.parse(text)
    assert back.dn == e.dn
    assert back.attrs == e.attrs


def test_ldif_parse_errors_name_the_line():
    with pytest.raises(ldif.LdifError, match="line 1: an entry must start with 'dn:'"):
        ldif.parse("objectClass: x\n")
    with pytest.raises(ldif.LdifError, match="line 2: bad base64"):
        ldif.parse("dn: o=glue\no:: !!!\n")


def test_tool_adapter_errors_are_typed():
    with pytest.raises(ToolError, match="not installed"):
        run_tool(["definitely-not-a-tool-xyz"])
    with pytest.raises(ToolError, match=r"exit 3: oops"):
        run_tool([sys.executable, "-c", "import sys; sys.stderr.write('oops'); sys.exit(3)"])
    with pytest.raises(ToolError, match="timed out"):
        run_tool([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)
    assert run_tool([sys.executable, "-c", "print('hi')"]).stdout.strip() == b"hi"
    assert os.environ  # the adapter never needs a shell
    # stdout is not quoted in an error unless asked (it may carry a signed message or a key)
    secret = "import sys; print('SECRET'); sys.exit(1)"
    with pytest.raises(ToolError) as info:
        run_tool([sys.executable, "-c", secret])
    assert "SECRET" not in str(info.value)


def test_the_builders_tool_logs_to_a_file_and_names_it_on_failure(tmp_path):
    from fedcloud_core.external import Tool

    py = Tool(sys.executable, timeout=30, missing="not installed (run scripts/dev/ova deps)")
    assert py.available()
    log = tmp_path / "logs" / "step.log"
    script = "import os, sys; print(os.environ['STEP'], flush=True); sys.stderr.write('boom\\n'); sys.exit(2)"
    with pytest.raises(ToolError, match=rf"exit 2 \(full log: {log}\):\n  x\n  boom"):
        py.run(["-c", script], env={"STEP": "x"}, log_file=log)
    assert log.read_text() == "x\nboom\n"
    done = py.run(["-c", "print('ok')"])
    assert (done.returncode, done.stdout) == (0, "ok\n")
    with pytest.raises(ToolError, match=r"run scripts/dev/ova deps"):
        Tool("no-such-build-tool-xyz", missing="not installed (run scripts/dev/ova deps)").run([])

"""The rooms of the project: runtime code imports no test or demo code, tests read only
files of the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from support.repo_paths import REPO, outside_repository

pytestmark = pytest.mark.unit

SERVICES = REPO / "services"
# top-level packages that exist only for tests and the demo (never installed on a site)
NOT_RUNTIME = {"tests", "testbed", "support", "conftest", "demo_env", "fedcloud_dev"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_runtime_module_imports_test_or_demo_code() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in SERVICES.rglob("*.py")
        for name in _imported_modules(path)
        if name.split(".")[0] in NOT_RUNTIME
    }
    assert not offenders, offenders


def test_the_import_scan_sees_a_test_import(tmp_path: Path) -> None:
    """Proves the scan above can fail."""
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom support.pki import make_ca\nimport testbed.layout\n")
    assert {"support.pki", "testbed.layout"} <= _imported_modules(module)


# a path literal that climbs out of the repository or names the material beside it
_OUTSIDE_LITERAL = re.compile(r"""["'](/work/|\.\./shared|\.\./\.\./shared)|["']shared["']\s*/""")


def test_no_test_names_a_path_beside_the_repository() -> None:
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        if path == Path(__file__):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _OUTSIDE_LITERAL.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_reading_beside_the_repository_is_caught() -> None:
    """The suite-wide audit hook (tests/conftest.py) flags a sibling path, not the repo's own."""
    assert outside_repository(str(REPO.parent / "shared" / "spec" / "x.ldif"))
    assert outside_repository(str(REPO / ".." / "shared"))
    assert not outside_repository(str(REPO / "tests" / "fixtures" / "glue"))
    assert not outside_repository("/etc/hostname")

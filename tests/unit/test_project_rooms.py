"""The rooms of the project: runtime code imports no test or demo code, tests read only
files of the repository."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from setuptools import find_packages

from support.repo_paths import REPO, outside_repository

pytestmark = pytest.mark.unit

SERVICES = REPO / "services"
# top-level packages that exist only for tests, the demo and the OVA build (never installed
# on a site)
NOT_RUNTIME = {"tests", "testbed", "support", "conftest", "demo_env", "fedcloud_dev", "ova"}


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


def _names_dev_module(path: Path) -> set[str]:
    """String constants naming a dev/test module (``python -m fedcloud_dev...``, import_module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"fedcloud_dev(\.\w+)*", node.value)
    }


def test_no_runtime_module_runs_a_dev_module() -> None:
    offenders = {
        f"{path.relative_to(REPO)}: {name}"
        for path in SERVICES.rglob("*.py")
        for name in _names_dev_module(path)
    }
    assert not offenders, offenders


# a module whose own docstring says it exists for the tests or the demo
_TEST_OR_DEMO_DOC = re.compile(r"\b(for|used by) (the )?(tests?|demo)\b", re.IGNORECASE)


def _test_or_demo_doc(path: Path) -> bool:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return bool(_TEST_OR_DEMO_DOC.search(doc.split("\n\n")[0]))


def test_no_runtime_module_is_a_test_or_demo_tool() -> None:
    offenders = [str(p.relative_to(REPO)) for p in SERVICES.rglob("*.py") if _test_or_demo_doc(p)]
    assert not offenders, f"{offenders}: move test/demo tools to dev/fedcloud_dev"


def test_the_dev_scans_see_the_test_receiver(tmp_path: Path) -> None:
    """Proves the two scans above can fail: the test receiver as it sat in services/ before."""
    module = tmp_path / "receiver.py"
    module.write_text(
        '"""The receiving side (what the central APEL repository does), for tests and the demo."""\n'
        'CMD = ["python", "-m", "fedcloud_dev.apel_receiver"]\n'
    )
    assert _test_or_demo_doc(module)
    assert _names_dev_module(module) == {"fedcloud_dev.apel_receiver"}


def _pyproject(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def _runtime_packages() -> list[str]:
    """The packages the runtime wheel holds, found as setuptools finds them (pyproject.toml)."""
    find = _pyproject(REPO / "pyproject.toml")["tool"]["setuptools"]["packages"]["find"]
    where = find.get("where", ["."])
    assert where == ["services"], f"the runtime wheel is built from services/ only, not {where}"
    return find_packages(
        where=str(REPO / where[0]),
        include=find.get("include", ("*",)),
        exclude=find.get("exclude", ()),
    )


def test_the_runtime_wheel_holds_no_dev_or_test_package() -> None:
    packages = _runtime_packages()
    assert "fedcloud_ssm" in packages  # the discovery is the real one
    assert not [p for p in packages if p.split(".")[0] in NOT_RUNTIME], packages
    dev = find_packages(where=str(REPO / "dev"))
    assert dev
    assert not set(dev) & set(packages), dev
    assert not (SERVICES / "fedcloud_ssm" / "receiver.py").exists()


def test_console_scripts_point_into_their_own_distribution() -> None:
    """The runtime's commands run runtime code; the test receiver's command ships with dev/."""
    runtime = {p.split(".")[0] for p in _runtime_packages()}
    scripts = _pyproject(REPO / "pyproject.toml")["project"]["scripts"]
    assert "fedcloud-apel-receiver" not in scripts
    assert {t.split(":")[0].split(".")[0] for t in scripts.values()} <= runtime, scripts
    dev_scripts = _pyproject(REPO / "dev" / "pyproject.toml")["project"]["scripts"]
    assert dev_scripts["fedcloud-apel-receiver"] == "fedcloud_dev.apel_receiver:main"
    assert {t.split(".")[0] for t in dev_scripts.values()} == {"fedcloud_dev"}


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

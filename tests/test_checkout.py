"""The checkout itself: what a fresh clone needs is in it, and CI runs what the README says."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md: expected a ```bash block with the install and test commands"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test_command = _readme_commands()[1]
    assert "pytest" in test_command and "--cov" in test_command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


# A path that climbs out of the checkout: above the repository's root by parents[], .parent or ROOT.parent, or an
# absolute path into the machine's work folder. The data the tests use lives in tests/data.
_OUTSIDE = re.compile(r"parents\[[2-9]\]|(\.parent){3}|ROOT\.parent|[\"']/work/")


def test_tests_read_nothing_outside_the_checkout() -> None:
    for path in sorted(set(TESTS.rglob("*.py")) - {Path(__file__)}):
        assert not _OUTSIDE.search(path.read_text()), f"{path}: reads outside the checkout"


def test_the_outside_pattern_finds_each_way_out() -> None:
    for text in ('ROOT.parent / "data"', "Path(__file__).parents[2]", "p.parent.parent.parent", 'Path("/work/x")'):
        assert _OUTSIDE.search(text), text
    assert not _OUTSIDE.search('ROOT / "tests" / "data"')


def test_test_modules_do_not_import_each_other() -> None:
    """Test code used by several modules lives in helpers.py, servers.py or conftest.py, never in another test_*.py."""
    modules = {p.stem for p in TESTS.glob("test_*.py")}
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not modules & {n.split(".")[0] for n in names}, f"{path.name} imports a test module: {names}"

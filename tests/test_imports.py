"""The packages' import graph: ``codec`` is the core and imports none of the others; ``bench``
drives the codec and imports neither side of the call; ``sender`` and ``receiver`` never
import each other (the loopback demo starts the sender as a process of its own)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGES = ("codec", "sender", "receiver", "bench")
#: package -> the packages it must never import
FORBIDDEN = {
    "codec": {"sender", "receiver", "bench"},
    "bench": {"sender", "receiver"},
    "sender": {"receiver", "bench"},
    "receiver": {"sender", "bench"},
}


def imported_packages(path: Path) -> dict[str, int]:
    """Top-level packages a Python file imports (absolute imports, at any depth of the file:
    lazy imports inside functions count too), with the first line of each."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def import_violations(root: Path) -> list[str]:
    """``file:line: package imports other`` for every forbidden edge under ``root``."""
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for imported, line in imported_packages(path).items():
                if imported in forbidden:
                    violations.append(f"{path.relative_to(root)}:{line}: {package} imports {imported}")
    return violations


def test_the_import_graph_runs_one_way() -> None:
    assert import_violations(ROOT) == []


def test_the_checker_sees_lazy_and_dotted_imports(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "codec" / "fine.py").write_text("import numpy\nfrom . import packets\nfrom .render import base\n")
    (tmp_path / "receiver" / "demo.py").write_text("def run():\n    from sender.call import SenderCall\n")
    (tmp_path / "bench" / "speed.py").write_text("import os\nimport receiver.render as render\n")
    (tmp_path / "sender" / "call.py").write_text("from codec import Encoder\n")
    assert import_violations(tmp_path) == [
        "bench/speed.py:2: bench imports receiver",
        "receiver/demo.py:2: receiver imports sender",
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_checked(package: str) -> None:
    assert list((ROOT / package).rglob("*.py")), f"{package}/ has no Python files: the graph test would pass vacuously"

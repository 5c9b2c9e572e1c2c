"""DESIGN.md §4: imports flow one way, and each third-party driver is imported in one module only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "actas"

# Layer of each top-level part of the package; a module may import its own part and lower layers only.
LAYERS = {
    "errors": 0,
    "core": 1,
    "storage": 2,
    "log": 3,
    "scan": 3,
    "publish": 3,
    "audit": 3,
    "simulate": 3,
    "importers": 3,
    "verifier": 3,
    "service": 4,
    "cli": 5,
    "demo": 4,
    "__main__": 6,
}
# Sibling edges the design allows: the simulator appends through the same sequencer ingest uses.
ALLOWED_SIBLINGS = {("simulate", "log")}
# Third parties each part may use at all; `core` needs nothing but the standard library and cryptography.
THIRD_PARTY = {
    "core": {"cryptography"},
    "storage": {"cryptography", "psycopg"},
    "verifier": set(),
    "log": set(),
    "publish": {"jinja2", "markupsafe", "pyarrow"},
    "simulate": {"numpy"},
    "cli": {"click", "rich"},
    "demo": set(),
    "errors": set(),
    "service": {"fastapi", "starlette", "uvicorn", "httpx", "numpy"},  # numpy: the live totals, a batch at a time
    "scan": {"PIL", "segno", "cv2", "zxingcpp", "numpy", "pypdfium2", "pillow_heif"},
}
# Drivers confined to one module each.
DRIVERS = {
    "sqlite3": "storage/sqlite.py",
    "psycopg": "storage/postgres.py",
    "jinja2": "publish/pages.py",
    "pyarrow": "publish/open_data.py",
    "click": None,
    "rich": None,
}
STDLIB = set(sys.stdlib_module_names)


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py"))


def _part(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py") if relative.parts[0] != "__init__.py" else "errors"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_module_respects_layers(path: Path) -> None:
    """Each module imports only its own part, lower layers, the standard library and its allowed packages."""
    part = _part(path)
    for name in _imports(path):
        top = name.split(".")[0]
        if top == "actas":
            target = name.split(".")[1] if "." in name else "errors"
            if target in ("__init__",) or target == part:
                continue
            allowed = LAYERS[target] < LAYERS[part] or (part, target) in ALLOWED_SIBLINGS
            if LAYERS[target] == LAYERS[part] and (part, target) not in ALLOWED_SIBLINGS:
                allowed = False
            assert allowed, f"{path.relative_to(SRC)} imports {name}: {part} may not depend on {target}"
        elif top in STDLIB:
            if top in DRIVERS and DRIVERS[top] is not None:
                assert str(path.relative_to(SRC)) == DRIVERS[top], f"{top} imported outside {DRIVERS[top]}"
        else:
            assert top in THIRD_PARTY.get(part, set()), f"{path.relative_to(SRC)} imports third-party {top}"


# The core is pure: no files, sockets, processes, clock, randomness or environment (DESIGN.md §4). These are
# the standard-library modules that give access to them.
IMPURE = {
    "os",
    "sys",
    "io_open",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "fnmatch",
    "socket",
    "ssl",
    "http",
    "urllib",
    "subprocess",
    "multiprocessing",
    "concurrent",
    "threading",
    "asyncio",
    "signal",
    "select",
    "selectors",
    "time",
    "datetime",
    "random",
    "secrets",
    "uuid",
    "sqlite3",
    "logging",
    "platform",
    "resource",
    "mmap",
    "fcntl",
    "getpass",
    "pwd",
    "locale",
    "ctypes",
    "importlib",
    "pickle",
    "shelve",
}


def test_core_needs_only_stdlib_and_cryptography() -> None:
    """The verifier path (core) runs with a minimal install."""
    for path in (SRC / "core").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in STDLIB or top in {"actas", "cryptography"}, f"{path.name} imports {name}"


def test_core_is_pure() -> None:
    """No core module imports a way to reach files, network, processes, the clock, randomness or the env."""
    for path in (SRC / "core").rglob("*.py"):
        for name in _imports(path):
            assert name.split(".")[0] not in IMPURE, f"core/{path.name} imports {name}"
        text = path.read_text(encoding="utf-8")
        for call in ("open(", "__import__(", "eval(", "exec("):
            assert f" {call}" not in text, f"core/{path.name} calls {call}"
            assert f"({call}" not in text, f"core/{path.name} calls {call}"

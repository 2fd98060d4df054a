"""The layering of docs/architecture.md, enforced: Qt only in app/gui (and in the benchmarks that time it),
gmic_core never imports app, benchmarks live under benchmarks/ only, the main window stays small, and
in the GUI only the task functions that workers run open database sessions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "pyqtgraph", "shiboken6")


def _parse(path: Path) -> ast.Module:
    source = path.read_text()
    try:
        return ast.parse(source, filename=str(path))
    except SystemError:
        # CPython 3.11 before 3.11.8 can raise a spurious "AST constructor recursion depth mismatch"
        # while other threads run (python/cpython#106905). Seen once in CI's form, with a thread of
        # Ray Data's from an earlier test still logging; the source is not at fault.
        return ast.parse(source, filename=str(path))


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_qt_stays_in_app_gui():
    offenders = {
        str(path.relative_to(ROOT)): sorted(qt)
        for path in _sources("gmic_core", "app")
        if (ROOT / "app" / "gui") not in path.parents
        and (qt := {name for name in _imports(path) if name.split(".")[0] in QT_MODULES})
    }
    assert not offenders, f"Qt belongs in app/gui: {offenders}"


def test_core_never_imports_the_application():
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported)
        for path in _sources("gmic_core")
        if (imported := {name for name in _imports(path) if name.split(".")[0] == "app"})
    }
    assert not offenders, f"gmic_core must not import app: {offenders}"


def test_benchmarks_live_under_benchmarks():
    # gmic_core/bench.py is not a benchmark but the library behind `gmic bench`.
    offenders = [
        str(path.relative_to(ROOT))
        for path in _sources("gmic_core", "app", "scripts", "tests")
        if "bench" in path.stem and path.stem != "bench"
    ]
    assert not offenders, f"benchmarks belong in benchmarks/: {offenders}"


WINDOW_LINES = 450  # issue 22: MainWindow is layout and wiring; the session and the work live elsewhere
TASK_MODULES = {"tasks.py", "pacs_tasks.py", "study_tasks.py"}  # the functions that workers run


def test_the_main_window_stays_layout_and_wiring():
    lines = len((ROOT / "app" / "gui" / "window.py").read_text().splitlines())
    assert lines < WINDOW_LINES, f"app/gui/window.py has {lines} lines; move work out of it"


def test_in_the_gui_only_the_task_modules_open_database_sessions():
    """``store.session()`` is called in app/gui only by task functions, which run in workers, never on
    the GUI thread (tests/gui/conftest.py checks the same at run time)."""
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _sources("app/gui")
        if path.name not in TASK_MODULES
        for node in ast.walk(_parse(path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "session"
    ]
    assert not offenders, f"open database sessions in a task function of app/gui/tasks.py: {offenders}"

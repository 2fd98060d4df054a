"""The GUI tests forbid the application the database on the GUI thread (``no_database_on_the_gui_thread``
in conftest.py); a test's own look at the database, on that same thread, goes through
:func:`the_tests_own`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_test_access = threading.local()


@contextmanager
def the_tests_own() -> Iterator[None]:
    """Inside: database sessions opened on this thread are the test's, not the application's."""
    _test_access.on = True
    try:
        yield
    finally:
        _test_access.on = False


def by_the_test() -> bool:
    return getattr(_test_access, "on", False)

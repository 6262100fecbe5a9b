"""Keep TensorFlow's start-up notices off the console.

Loading TensorFlow's libraries writes notices straight to file descriptor 2 through Abseil's
logging, before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` ("oneDNN custom operations are
on", "Could not find cuda drivers", "This TensorFlow binary is optimized to use ...").
:func:`quiet_tensorflow_import` makes the first ``import tensorflow`` of the process run with
descriptor 2 sent to a temporary file, then writes back every line that is not such an
informational notice (warnings of level E and F, and anything else, still show).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
import tempfile
from types import ModuleType

NOTICE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] .*"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*)$"
)
"""An Abseil INFO or WARNING line, or the two lines that go with TensorFlow's notices."""


def drop_notices(captured: bytes) -> bytes:
    """``captured`` without the lines that are start-up notices."""
    lines = captured.splitlines(keepends=True)
    return b"".join(line for line in lines if not NOTICE.match(line.rstrip(b"\r\n")))


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 to quiet
            self.loader.exec_module(module)
            return
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                rest = drop_notices(tmp.read())
                if rest:
                    os.write(2, rest)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, through the other finders, with a quiet loader."""

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 - the finder protocol
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


ASKED = "RLNAS_QUIET_TENSORFLOW"
"""Environment variable the CLI sets when it quiets TensorFlow; worker processes inherit it."""


def quiet_if_asked() -> None:
    """In a worker process: quiet its TensorFlow import if the CLI quieted the parent's."""
    if os.environ.get(ASKED) == "1":
        quiet_tensorflow_import()


def quiet_tensorflow_import() -> None:
    """Make this process's first ``import tensorflow`` keep its start-up notices quiet."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())

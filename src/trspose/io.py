"""Files written whole or not at all, and JSON read with errors that name the file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trspose.errors import DataError


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without error it replaces ``path``.

    A reader, or a crash mid-write, never sees half a file, and the temporary is per process, so torchrun ranks
    writing the same file do not write into one another's. The folder is created; after an error the temporary
    is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_json(data: Any, path: Path | str, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (UTF-8, a final newline) atomically, see :func:`atomic_path`. Returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    return Path(path)


def read_json(path: Path | str, what: str) -> Any:
    """Parse a JSON file, turning every failure into a DataError that names the file and ``what`` it is."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; check the path")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: malformed JSON at line {error.lineno} column {error.colno} ({error.msg}); "
            f"fix or re-create the {what}"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read {what} ({error}); check the file and its permissions") from None
    except (ValueError, RecursionError) as error:  # e.g. an integer of over 4300 digits, nesting too deep
        message = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: unreadable JSON ({message}); fix or re-create the {what}") from None

"""Every file the toolkit writes goes through here: written whole or not at all, and a failed write is one
``WriteError`` naming the file, the system's reason and the free space, never a traceback or a silent success.
JSON is read with errors that name the file."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trspose.errors import DataError, WriteError

# what atomic_path names its temporaries: ``<stem>.<pid>.tmp<suffix>`` beside the final file (the suffix stays
# last, so that writers which choose a format by the file name, OpenCV and matplotlib, still see it)
TEMPORARY = re.compile(r"\.(\d+)\.tmp(\.[^.]+)?$")


def free_megabytes(path: Path | str) -> int | None:
    """Free space on the file system of ``path`` (or of its nearest existing parent), in MB; None if unknown."""
    path = Path(path).absolute()
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free // 2**20
            except OSError:
                return None
    return None


def write_error(path: Path | str, reason: str) -> WriteError:
    """``cannot write PATH: REASON (N MB free)``."""
    free = free_megabytes(path)
    return WriteError(f"cannot write {path}: {reason}" + (f" ({free} MB free)" if free is not None else ""))


def os_reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


def temporary_path(path: Path) -> Path:
    """The temporary that :func:`atomic_path` writes ``path`` to, per process."""
    return path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without error it replaces ``path``.

    A reader, or a crash mid-write, never sees half a file, and the temporary is per process, so torchrun ranks
    writing the same file do not write into one another's. The folder is created. After an error the temporary
    is removed and ``path`` is left as it was; an ``OSError`` (a full disk, no permission) becomes a
    :class:`WriteError` naming ``path``. A kill mid-write can leave the temporary behind:
    :func:`remove_temporaries` clears a folder of them.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(path, os_reason(error)) from None
    temporary = temporary_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_error(path, os_reason(error)) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(folder: Path | str) -> Iterator[Path]:
    """A hidden sibling folder, ``.<name>.partial-<pid>``, to write a whole folder into; when the block ends without
    error it replaces ``folder`` (an existing one is removed first). After an error the sibling is removed and
    ``folder`` is left as it was; an ``OSError`` becomes a :class:`WriteError` naming ``folder``."""
    folder = Path(folder)
    temporary = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir(parents=True)
        yield temporary
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    except OSError as error:  # a full disk (also in a worker process writing into the folder)
        shutil.rmtree(temporary, ignore_errors=True)
        raise write_error(folder, os_reason(error)) from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def remove_temporaries(folder: Path | str) -> list[Path]:
    """Delete the temporaries that writes killed halfway left in ``folder`` (not in its subfolders); returns them.
    Call it only where no other process is writing into ``folder``."""
    folder = Path(folder)
    found = (
        [p for p in folder.iterdir() if p.is_file() and TEMPORARY.search(p.name)] if folder.is_dir() else []
    )
    for path in found:
        path.unlink(missing_ok=True)
    return found


def write_bytes(data: bytes | memoryview, path: Path | str) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`). Returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(text: str, path: Path | str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically. Returns the path."""
    return write_bytes(text.encode("utf-8"), path)


def write_image(image, path: Path | str, params: tuple[int, ...] = ()) -> Path:
    """Write a BGR (or grey) uint8 image; the format follows the file's suffix (.png, .jpg). Encoded in memory
    first, so that a full disk is an ``OSError`` with its reason rather than OpenCV's unchecked ``False``."""
    import cv2

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", image, list(params))
    if not ok:
        raise write_error(
            path, f"OpenCV cannot encode a {getattr(image, 'shape', '?')} image as {path.suffix}"
        )
    return write_bytes(encoded.tobytes(), path)


def append_line(line: str, path: Path | str) -> None:
    """Append one line to a log file (metrics.jsonl); a failed write is a :class:`WriteError`."""
    try:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as error:
        raise write_error(path, os_reason(error)) from None


def finite_or_none(values: dict[str, float]) -> dict[str, float | None]:
    """NaN and infinities (undefined metrics) as None, so JSON writes null rather than the non-standard NaN."""
    import math
    import numbers

    return {
        k: (None if isinstance(v, numbers.Real) and not math.isfinite(v) else v) for k, v in values.items()
    }


def write_json(data: Any, path: Path | str, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON (UTF-8, a final newline) atomically, see :func:`atomic_path`. Returns the path."""
    return write_text(json.dumps(data, indent=indent) + "\n", path)


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

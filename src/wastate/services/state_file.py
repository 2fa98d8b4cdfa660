"""Writing the seed-004 state document to files and reading it back: atomic export, named
backups, and the checks on file and folder arguments.

Every write is atomic (a locked temp file in the same folder, fsync, rename): the target is
either the old file or the complete new one, never half. What goes into the file is
`wastate.services.state_document`'s business; this module only knows files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from wastate.errors import InvalidInput

if sys.platform != "win32":
    import fcntl

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "atomic_write",
    "backup",
    "check_progress",
    "export",
    "load_document",
    "path_argument",
    "unwritable",
]

Writer = Callable[[IO[str]], None]
"""Writes a whole document to an open text file."""


def export(path: Path, write: Writer) -> None:
    """Write `path` atomically with `write`; a path that cannot be written (a folder, read-only,
    …) is `InvalidInput` naming `output_file`."""
    try:
        atomic_write(path, write)
    except OSError as exc:  # the path given cannot be written: a folder, read-only, …
        raise unwritable("output_file", path, exc) from exc


def backup(folder: Path, stem: str, now: datetime, write: Writer) -> str:
    """Write `folder/<stem>_backup_YYYYMMDD_HHMMSS.json` (`now` in UTC; `_2`, `_3`, … when that
    name is taken) atomically with `write`. Returns the path written; a folder that cannot be
    written is `InvalidInput` naming `backup_dir`."""
    try:
        return _backup(folder, stem, now, write)
    except OSError as exc:  # the folder cannot be written: a file, read-only, …
        raise unwritable("backup_dir", folder, exc) from exc


def _backup(folder: Path, stem: str, now: datetime, write: Writer) -> str:
    stamp = now.astimezone(UTC).strftime("%Y%m%d_%H%M%S")
    base = f"{stem}_backup_{stamp}"
    # The temp files a killed backup left carry that backup's name, not this one's.
    every_backup = rf"{re.escape(stem)}_backup_\d{{8}}_\d{{6}}(_\d+)?\.json"
    folder.mkdir(parents=True, exist_ok=True)
    path, attempt = folder / f"{base}.json", 1
    while True:
        try:
            # Claim the name so two backups in one second never overwrite each other.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            attempt += 1
            path = folder / f"{base}_{attempt}.json"
    try:
        atomic_write(path, write, stale=every_backup)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return str(path)


def path_argument(value: object, field: str) -> Path:
    """A file or folder argument as a `Path`; one no file system call could take is refused."""
    if not isinstance(value, str | os.PathLike):
        raise InvalidInput(field, f"must be a path, got {type(value).__name__}")
    try:
        encoded = os.fsencode(value)
    except (TypeError, UnicodeEncodeError) as exc:
        raise InvalidInput(field, "is not a path the file system can encode") from exc
    if b"\x00" in encoded:
        raise InvalidInput(field, "must not contain NUL characters")
    return Path(os.fsdecode(encoded))


# OSErrors that say the path given is wrong (a folder, missing, read-only, too long…), as opposed
# to the machine failing (a full disk, an I/O error), which stays an OSError.
_PATH_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EBUSY,
        errno.EEXIST,
        errno.EINVAL,
        errno.EISDIR,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EPERM,
        errno.EROFS,
        errno.EXDEV,
    }
)


def unwritable(field: str, path: Path, exc: OSError) -> OSError | InvalidInput:
    if exc.errno not in _PATH_ERRNOS:
        return exc
    return InvalidInput(field, f"cannot write {str(path)!r}: {exc.strerror or exc}")


def check_progress(progress: object) -> None:
    if progress is not None and not callable(progress):
        raise InvalidInput("progress", f"must be callable, got {type(progress).__name__}")


def atomic_write(path: Path, write: Callable[[IO[str]], None], *, stale: str | None = None) -> None:
    """Write `path` so that it is either the old file or the complete new one, never half.

    The temp file (`.<name>.XXXXXXXX.tmp`, same folder) is removed on any exception, ^C and the
    signals the CLI turns into one. A process killed outright leaves it behind: the next write
    next to it removes the temp files of `stale` (a file name pattern, default: this target's)
    that no live writer holds locked.
    """
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(folder, stale if stale is not None else re.escape(path.name))
    fd, temp_name = _locked_temp_file(folder, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
            # Renamed while still locked: a cleaner never takes a finished temp file.
            os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)


_TEMP_TAIL = r"\.[a-z0-9_]{8}\.tmp"  # what tempfile.mkstemp(prefix=".<name>.", suffix=".tmp") adds


def _locked_temp_file(folder: Path, name: str) -> tuple[int, str]:
    """A new temp file for `name` in `folder`, open and exclusively locked (POSIX `flock`): the
    lock, released by the kernel whatever way the process ends, is how a cleaner tells a live
    temp file from one left by a killed writer."""
    while True:
        fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        if sys.platform == "win32":  # pragma: no cover - no flock; stale files stay
            return fd, temp_name
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner may have taken the file between its creation and our lock.
            if os.path.samestat(os.fstat(fd), os.stat(temp_name)):
                return fd, temp_name
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise
        os.close(fd)


def _remove_stale_temp_files(folder: Path, name_pattern: str) -> None:
    """Remove `.<name>.XXXXXXXX.tmp` files (`name` matching `name_pattern`) that no writer holds
    locked: what an export killed outright (SIGKILL, power loss) left behind."""
    if sys.platform == "win32":  # pragma: no cover - no flock: a live file cannot be told apart
        return
    pattern = re.compile(rf"\.(?:{name_pattern}){_TEMP_TAIL}")
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live writer
                    if os.path.samestat(os.fstat(fd), os.stat(entry.path, follow_symlinks=False)):
                        os.unlink(entry.path)
                finally:
                    os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); platforms without folder fds skip it."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


MAX_DOCUMENT_DEPTH = 100
"""How deeply a state file may nest arrays and objects (a seed document needs about ten)."""


def load_document(path: Path) -> Any:
    """The JSON in `path`; `InvalidInput` naming `path` when it cannot be read, is not UTF-8 or
    JSON, or nests deeper than `MAX_DOCUMENT_DEPTH`."""
    try:
        with path.open("r", encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise InvalidInput("path", f"cannot read {str(path)!r}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput("path", f"{str(path)!r} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            "path", f"{str(path)!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(
            "path", f"{str(path)!r} nests deeper than {MAX_DOCUMENT_DEPTH} levels"
        ) from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        reason = str(exc).partition(":")[0]
        raise InvalidInput("path", f"{str(path)!r} is not valid JSON ({reason})") from exc
    # What json.load just managed may still be too deep for the recursive checks and encoders
    # after it (and for PostgreSQL's JSONB): one limit, checked without recursion.
    if _depth(document) > MAX_DOCUMENT_DEPTH:
        raise InvalidInput("path", f"{str(path)!r} nests deeper than {MAX_DOCUMENT_DEPTH} levels")
    return document


def _depth(value: Any) -> int:
    """How deeply `value` nests lists and dicts (a scalar: 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest

"""Atomic file writing: outputs appear complete under their final name, or not at all."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Union

from .errors import ParameterError
from .outputs import SUMMARY_FILE


def _default_file_mode() -> int:
    """Permissions of a new file under the current umask (0644 with the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Return the directory that will hold the file ``path``; raise unless a file can be
    written there under that name.

    Raises:
        ParameterError: the parent directory is missing, not a directory or not writable,
            or ``path`` is itself a directory.
    """
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        missing = "is not a directory" if parent.exists() else "does not exist"
        raise ParameterError(f"output directory {parent} {missing}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ParameterError(f"output directory {parent} is not writable")
    if target.is_dir():
        raise ParameterError(f"output {target} is a directory; give a file name")
    return parent


def check_output_dir(path: str | os.PathLike, expected_bytes: int = 0) -> Path:
    """Check, before any computation, that ``path`` is a writable directory or can be made
    one: an existing folder must be writable, a missing one must have a writable nearest
    existing ancestor that is a directory, with ``expected_bytes`` free when known.

    Raises:
        ParameterError: a file stands where the folder (or one of its parents) should be,
            nothing can be written there, or there is not room for the outputs.
    """
    folder = Path(path).resolve()
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ParameterError(f"cannot make output folder {folder}: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ParameterError(f"output folder {folder} cannot be written ({probe} is not writable)")
    free = shutil.disk_usage(probe).free
    if expected_bytes > free:
        raise ParameterError(f"output folder {folder}: {free / 2 ** 20:.0f} MB free, the outputs need about "
                             f"{expected_bytes / 2 ** 20:.0f} MB")
    return folder


#: Suffix of the temporary files; ``.NAME.<random>.tmp`` lies next to ``NAME`` while it is written.
TEMPORARY_SUFFIX = ".tmp"


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden file name next to ``path`` (same file system, so rename is atomic)."""
    target = Path(path)
    parent = check_writable_dir(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=parent)
    except OSError as exc:                 # a read-only or special file system: name the output
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    return Path(tmp)


#: A temporary older than this (s) belongs to a killed run, not to one writing right now.
STALE_TEMPORARY_SECONDS = 60.0


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete the temporaries a killed earlier run left next to ``path`` (those older than
    :data:`STALE_TEMPORARY_SECONDS`, so that a run writing the same folder at the same time
    keeps its own); return how many."""
    target = Path(path)
    count = 0
    now = time.time()
    for stale in target.parent.glob(f".{target.name}.*{TEMPORARY_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if now - stale.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                stale.unlink()
                count += 1
    return count


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Write several files all-or-nothing.

    Yields temporary paths, one per requested path; the caller writes them. When the
    block ends without an exception every temporary file is renamed onto its final name,
    in the order given (give a summary that vouches for the others last); on any exception
    (Ctrl-C included) all temporary files are deleted and no final file is touched.
    Temporaries left by a killed earlier run are removed first.

    Example:
        >>> with atomic_outputs("map.mrc", "mask.mrc") as (tmp_map, tmp_mask):
        ...     write(tmp_map); write(tmp_mask)
    """
    for path in paths:
        check_writable_dir(path)
        remove_stale_temporaries(path)
    temporaries: list[Path] = []
    try:
        for path in paths:                 # one by one: an interruption here still cleans up
            temporaries.append(temporary_sibling(path))
        yield temporaries
        mode = _default_file_mode()
        for tmp, final in zip(temporaries, paths):
            os.chmod(tmp, mode)  # mkstemp makes 0600 files; give the usual permissions
            os.replace(tmp, final)
    except OSError as exc:                 # name the file the user asked for, not our temporary
        finals = {str(tmp): str(final) for tmp, final in zip(temporaries, paths)}
        if exc.filename is None and len(paths) == 1 or str(exc.filename) in finals:
            raise OSError(exc.errno, exc.strerror, finals.get(str(exc.filename), str(paths[0]))) from None
        raise
    finally:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


#: What to write into a file: its bytes, or a function that writes a given path.
FileContent = Union[bytes, Callable[[Path], None]]




def write_files(out_dir: str | os.PathLike, contents: Mapping[str, FileContent],
                stale: tuple[str, ...] = ()) -> list[Path]:
    """Write several files into ``out_dir`` all-or-nothing; return their final paths.

    A :data:`SUMMARY_FILE` among them is renamed last, and an older one is removed before
    the first rename: a folder with a summary holds that run's complete outputs (a kill
    between renames leaves no summary). ``stale`` names files of an earlier run that this
    one does not write (e.g. an automatic mask when a mask is now given): they are removed.
    """
    # summaries last, the folder's own (top-level) one the very last
    names = sorted(contents, key=lambda name: (Path(name).name == SUMMARY_FILE, name == SUMMARY_FILE))
    finals = [Path(out_dir) / name for name in names]
    with atomic_outputs(*finals) as temporaries:
        for name, tmp, final in zip(names, temporaries, finals):
            content = contents[name]
            try:
                if isinstance(content, bytes):
                    tmp.write_bytes(content)
                else:
                    content(tmp)
            except OSError as exc:         # disk full, file-size limit: say which output
                raise OSError(exc.errno, exc.strerror, str(final)) from None
        for name in names:                 # the old summary goes before any new file lands
            if Path(name).name == SUMMARY_FILE:
                with contextlib.suppress(FileNotFoundError):
                    (Path(out_dir) / name).unlink()
        for name in stale:
            if name not in contents:
                with contextlib.suppress(FileNotFoundError):
                    (Path(out_dir) / name).unlink()
    return finals


@contextlib.contextmanager
def output_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Create ``path`` if needed; if the block fails, remove it again when it was created here
    and is still empty (so a failed run leaves nothing behind)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{folder} exists and is not a directory")
    check_output_dir(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise

"""Atomic file writing: outputs appear complete under their final name, or not at all."""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Mapping, Union

from .errors import ParameterError
from .interrupts import deferred_interrupts
from .outputs import SUMMARY_FILE


def _default_file_mode() -> int:
    """Permissions of a new file under the current umask (0644 with the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder``, found by making one (and removing it): the
    permission bits say yes to root on a read-only export, an immutable folder or one that
    another user's sticky bit guards; only making a file tells."""
    try:
        with deferred_interrupts():
            fd, probe = tempfile.mkstemp(prefix=f".deepres-probe.{_owner_tag()}.", suffix=TEMPORARY_SUFFIX,
                                         dir=folder)
            os.close(fd)
            os.unlink(probe)
    except OSError:
        return False
    return True


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Return the directory that will hold the file ``path``; raise unless a file can be
    written there under that name (found by writing one, before any computation).

    Raises:
        ParameterError: the parent directory is missing, not a directory or not writable,
            or ``path`` is itself a directory.
    """
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        missing = "is not a directory" if parent.exists() else "does not exist"
        raise ParameterError(f"output directory {parent} {missing}")
    if target.is_dir():
        raise ParameterError(f"output {target} is a directory; give a file name")
    if not _can_write_in(parent):
        raise ParameterError(f"output directory {parent} is not writable")
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
    if not _can_write_in(probe):
        raise ParameterError(f"output folder {folder} cannot be written ({probe} is not writable)")
    free = shutil.disk_usage(probe).free
    if expected_bytes > free:
        raise ParameterError(f"output folder {folder}: {free / 2 ** 20:.0f} MB free, the outputs need about "
                             f"{expected_bytes / 2 ** 20:.0f} MB")
    return folder


#: Suffix of the temporary files; ``.NAME.<host>-<pid>.<random>.tmp`` lies next to ``NAME``
#: while it is written (same file system, so the rename is atomic).
TEMPORARY_SUFFIX = ".tmp"
#: A temporary of another machine (a shared folder) older than this (s) belongs to a killed
#: run; on this machine a temporary is stale as soon as the process that made it is gone.
STALE_TEMPORARY_SECONDS = 60.0


def _owner_tag() -> str:
    """``<host>-<pid>``: who made a temporary (dots and dashes of the host name kept out)."""
    host = socket.gethostname().split(".")[0].replace("-", "_") or "host"
    return f"{host}-{os.getpid()}"


def _is_stale(path: Path, tag: str, now: float) -> bool:
    """Whether the temporary ``path``, made by ``tag`` (``<host>-<pid>``), belongs to no running
    process: its process on this machine is gone, or it comes from elsewhere and is old."""
    host, _, pid = tag.rpartition("-")
    if host == _owner_tag().rpartition("-")[0] and pid.isdigit():
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:                            # alive, another user's
            return False
        return False
    try:
        return now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS
    except FileNotFoundError:
        return False


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden file next to ``path`` (same file system, so rename is atomic), whose
    folder :func:`check_writable_dir` has checked."""
    target = Path(path)
    parent = target.resolve().parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_owner_tag()}.", suffix=TEMPORARY_SUFFIX, dir=parent)
    except OSError as exc:                 # a read-only or special file system: name the output
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    return Path(tmp)


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete the temporaries a killed earlier run left next to ``path`` (:func:`_is_stale`:
    its process is gone), keeping those of a run writing the same folder right now; return
    how many."""
    target = Path(path)
    count, now = 0, time.time()
    prefix = f".{target.name}."
    for stale in target.parent.glob(f"{glob.escape(prefix)}*{TEMPORARY_SUFFIX}"):
        tag = stale.name[len(prefix):].split(".")[0]
        if _is_stale(stale, tag, now):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                count += 1
    return count


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Write several files all-or-nothing.

    Yields temporary paths, one per requested path; the caller writes them. When the
    block ends without an exception every temporary file is renamed onto its final name,
    in the order given (give a summary that vouches for the others last); on any exception
    (an interrupt included) all temporary files are deleted and no final file is touched.
    Temporaries left by a killed earlier run are removed first. The temporaries are made,
    and renamed, with interrupts held (:func:`.interrupts.deferred_interrupts`): none is
    made without being on the clean-up list.

    Example:
        >>> with atomic_outputs("map.mrc", "mask.mrc") as (tmp_map, tmp_mask):
        ...     write(tmp_map); write(tmp_mask)
    """
    for path in paths:
        check_writable_dir(path)
        remove_stale_temporaries(path)
    temporaries: list[Path] = []
    try:
        for path in paths:
            with deferred_interrupts():
                temporaries.append(temporary_sibling(path))
        yield temporaries
        mode = _default_file_mode()
        with deferred_interrupts():
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

#: Hidden folders of a run folder while a run writes it: the new files (staged), and the
#: files they replace while they are swapped in; ``<prefix><host>-<pid>.<random>``.
STAGING_PREFIX = ".deepres-new."
PREVIOUS_PREFIX = ".deepres-old."


def _remove_stale_runs(folder: Path) -> None:
    """Remove the staging folders of killed earlier runs in ``folder`` (see :func:`_is_stale`)."""
    now = time.time()
    for prefix in (STAGING_PREFIX, PREVIOUS_PREFIX):
        for stale in folder.glob(f"{glob.escape(prefix)}*"):
            if stale.is_dir() and _is_stale(stale, stale.name[len(prefix):].split(".")[0], now):
                shutil.rmtree(stale, ignore_errors=True)


def _write_content(content: FileContent, path: Path, final: Path) -> None:
    try:
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
    except OSError as exc:                 # disk full, file-size limit: say which output
        raise OSError(exc.errno, exc.strerror, str(final)) from None


def _swap_in(folder: Path, staged: Path, names: list[str], stale: tuple[str, ...]) -> None:
    """Move the staged files onto their final names in ``folder`` (a summary last), the files
    they replace (and the ``stale`` ones) aside first; on any failure put everything back:
    the folder is the old one or the new one. Runs with interrupts held."""
    previous = Path(tempfile.mkdtemp(prefix=f"{PREVIOUS_PREFIX}{_owner_tag()}.", dir=folder))
    done: list[tuple[Path, Path | None, bool]] = []      # (final, its old file set aside, new file placed)
    made: list[Path] = []
    mode = _default_file_mode()
    try:
        with deferred_interrupts():
            try:
                summaries = [name for name in names if Path(name).name == SUMMARY_FILE]
                old_names = summaries + [name for name in stale if name not in names] + \
                    [name for name in names if name not in summaries]
                for index, name in enumerate(old_names):       # the old summary goes first
                    final = folder / name
                    if final.is_file() or final.is_symlink():
                        aside = previous / str(index)
                        os.replace(final, aside)
                        done.append((final, aside, False))
                for name in names:                              # summaries last
                    final = folder / name
                    for parent in reversed(final.relative_to(folder).parents[:-1]):
                        if not (folder / parent).is_dir():
                            (folder / parent).mkdir()
                            made.append(folder / parent)
                    os.chmod(staged / name, mode)
                    os.replace(staged / name, final)
                    done.append((final, None, True))
            except BaseException:
                for final, aside, placed in reversed(done):
                    with contextlib.suppress(OSError):
                        if placed:
                            final.unlink()
                        else:
                            os.replace(aside, final)
                for directory in reversed(made):
                    with contextlib.suppress(OSError):
                        directory.rmdir()
                raise
    finally:
        shutil.rmtree(previous, ignore_errors=True)


def _ordered(names) -> list[str]:
    """Summaries last, the folder's own (top-level) one the very last."""
    return sorted(names, key=lambda name: (Path(name).name == SUMMARY_FILE, name == SUMMARY_FILE))


class RunFolder:
    """The skeleton of every job's output folder, from before the computation to the last
    rename.

    Entering checks the folder and makes it (a missing one, and a hidden staging folder in
    it: the proof that files can be written there), before any computation; :meth:`write`
    writes the outputs into the staging folder and swaps them in all at once; leaving removes
    the staging folder, and, when the job failed, the folder itself if this run made it and
    it is empty. A run folder is therefore the old one or the new one, never a mix, whatever
    happens (a full disk, an interrupt, a failed rename). Staging folders of killed earlier
    runs are removed on entry.

    Example:
        >>> with RunFolder(out_dir, expected_bytes=volume.nbytes) as run:
        ...     result = compute()
        ...     run.write({RESOLUTION_FILE: lambda tmp: write_map(tmp, result), SUMMARY_FILE: summary.to_json()})
    """

    def __init__(self, path: str | os.PathLike, expected_bytes: int = 0):
        self.path = Path(path)
        self.expected_bytes = expected_bytes
        self.created = False
        self.staged: Path | None = None

    def __enter__(self) -> "RunFolder":
        check_output_dir(self.path, self.expected_bytes)
        with deferred_interrupts():
            self.created = not self.path.exists()
            try:
                self.path.mkdir(parents=True, exist_ok=True)
                _remove_stale_runs(self.path)
                self.staged = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{_owner_tag()}.", dir=self.path))
            except OSError as exc:
                self._remove_if_empty()
                raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        return self

    def check_room(self, expected_bytes: int) -> None:
        """Raise before the computation when the outputs (about ``expected_bytes``) cannot fit."""
        check_output_dir(self.path, expected_bytes)

    def write(self, contents: Mapping[str, FileContent], stale: tuple[str, ...] = ()) -> list[Path]:
        """Write the outputs (name relative to the folder -> content) and swap them in; an
        older :data:`SUMMARY_FILE` goes first and the new ones come last, so a folder with a
        summary holds one run's complete outputs. ``stale`` names files of an earlier run that
        this one does not write (an automatic mask when a mask is now given): they go too."""
        names = _ordered(contents)
        for name in names:
            staged = self.staged / name
            staged.parent.mkdir(parents=True, exist_ok=True)
            _write_content(contents[name], staged, self.path / name)
        _swap_in(self.path, self.staged, names, stale)
        return [self.path / name for name in names]

    def __exit__(self, kind, value, traceback) -> None:
        with deferred_interrupts():
            if self.staged is not None:
                shutil.rmtree(self.staged, ignore_errors=True)
            if kind is not None:
                self._remove_if_empty()

    def _remove_if_empty(self) -> None:
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()


def write_files(out_dir: str | os.PathLike, contents: Mapping[str, FileContent],
                stale: tuple[str, ...] = ()) -> list[Path]:
    """Write several files into ``out_dir`` all-or-nothing (:meth:`RunFolder.write`); return
    their final paths."""
    with RunFolder(out_dir) as run:
        return run.write(contents, stale)

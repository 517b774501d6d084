"""Atomic file writing: outputs appear complete under their final name, or not at all."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping, Union

from .errors import ParameterError


def _default_file_mode() -> int:
    """Permissions of a new file under the current umask (0644 with the usual 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Return the directory that will hold ``path``; raise if it does not exist.

    Raises:
        ParameterError: the parent directory is missing or is not a directory.
    """
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise ParameterError(f"output directory {parent} does not exist")
    return parent


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh hidden file name next to ``path`` (same file system, so rename is atomic)."""
    target = Path(path)
    parent = check_writable_dir(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_outputs(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Write several files all-or-nothing.

    Yields temporary paths, one per requested path; the caller writes them. When the
    block ends without an exception every temporary file is renamed onto its final name;
    on any exception all temporary files are deleted and no final file is touched.

    Example:
        >>> with atomic_outputs("map.mrc", "mask.mrc") as (tmp_map, tmp_mask):
        ...     write(tmp_map); write(tmp_mask)
    """
    for path in paths:
        check_writable_dir(path)
    temporaries: list[Path] = []
    try:
        temporaries = [temporary_sibling(p) for p in paths]
        yield temporaries
        mode = _default_file_mode()
        for tmp, final in zip(temporaries, paths):
            os.chmod(tmp, mode)  # mkstemp makes 0600 files; give the usual permissions
            os.replace(tmp, final)
    finally:
        for tmp in temporaries:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


#: What to write into a file: its bytes, or a function that writes a given path.
FileContent = Union[bytes, Callable[[Path], None]]


def write_files(out_dir: str | os.PathLike, contents: Mapping[str, FileContent]) -> list[Path]:
    """Write several files into ``out_dir`` all-or-nothing; return their final paths."""
    names = list(contents)
    finals = [Path(out_dir) / name for name in names]
    with atomic_outputs(*finals) as temporaries:
        for name, tmp in zip(names, temporaries):
            content = contents[name]
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                content(tmp)
    return finals


@contextlib.contextmanager
def output_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Create ``path`` if needed; if the block fails, remove it again when it was created here
    and is still empty (so a failed run leaves nothing behind)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"{folder} exists and is not a directory")
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()
        raise

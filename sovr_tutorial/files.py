"""File helpers: hashing and atomic writes, shared by data, checkpoints and results."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so a large file never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path, write_fn) -> Path:
    """Call ``write_fn(binary_file)`` on a temp file next to ``path``, fsync, rename.

    A kill at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # the rename itself must reach the disk too, or a power cut could undo it
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_between(path, begin: str, end: str, block: str) -> bool:
    """Replace the text between the marker lines ``begin`` and ``end`` of a generated block
    in ``path`` (markdown) by ``block``; True if the file changed."""
    path = Path(path)
    text = path.read_text()
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} markers to write between")
    head, rest = text.split(begin, 1)
    new = f"{head}{begin}\n{block}{end}{rest.split(end, 1)[1]}"
    if new != text:
        atomic_write_text(path, new)
    return new != text

"""Writing folders (models, datasets, run stages, downloads) so they appear complete or not at all.

A folder is built in a temporary sibling of its target (`staging_dir`) and renamed into place
(`publish`); a rename within one filesystem is atomic, so a crash or an error leaves either the old
folder or the new one, never a half-written model that looks finished.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def is_populated(path: Path) -> bool:
    """True for a file, or a folder with anything in it."""
    if not path.exists():
        return False
    return not path.is_dir() or any(path.iterdir())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def clean_stale_siblings(target: Path) -> list[Path]:
    """Remove the staging folders a killed process left beside `target` (named with their owner's
    pid: `.<name>.<pid>.<random>.tmp`). The old copy an interrupted replace moved aside
    (`.<name>.<pid>.old-<random>`) is kept unless `target` itself is back in place."""
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid, _, rest = path.name[len(target.name) + 2 :].partition(".")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if rest.startswith("old-") and not target.exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def staging_dir(target: Path) -> Path:
    """A fresh empty temporary sibling of `target` to build into (the caller removes it on failure);
    staging folders of killed processes are cleaned up first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_siblings(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    # mkdtemp makes the directory private (0700); a model directory is as readable as any other.
    tmp.chmod(0o755)
    return tmp


@contextlib.contextmanager
def staged(target: Path) -> Iterator[Path]:
    """`staging_dir(target)`, removed again unless it was published (renamed away) in the block."""
    tmp = staging_dir(target)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, target: Path, *, replace: bool = False) -> Path:
    """Rename the finished folder `tmp` to `target`. With `replace`, an existing `target` is moved
    aside first and deleted only once the new folder is in place; without it, a populated `target`
    makes the rename fail (OSError). Returns `target`."""
    if replace and is_populated(target):
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.old-", dir=target.parent))
        os.replace(target, trash / "old")
        try:
            os.replace(tmp, target)
        except OSError:
            os.replace(trash / "old", target)  # put the old folder back
            trash.rmdir()
            raise
        shutil.rmtree(trash, ignore_errors=True)
        return target
    os.replace(tmp, target)
    return target


def make_readable(folder: Path) -> None:
    """Give every file in `folder` mode 0644: safetensors 0.8 writes its files private (0600), but a
    saved model is as readable as its config."""
    for file in folder.iterdir():
        if file.is_file():
            file.chmod(0o644)

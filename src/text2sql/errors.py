"""Errors a user sees.

Every error raised for bad input is a `Text2SQLError`: the CLI prints its message as one line and
exits non-zero, without a traceback unless `--debug` is given. Messages name the problem and the fix.
"""

from __future__ import annotations

import errno


class Text2SQLError(Exception):
    """Bad input or an unusable environment; the message says what is wrong and how to fix it."""

    exit_code = 2


class ConfigError(Text2SQLError):
    """The run configuration is invalid."""


class DataError(Text2SQLError):
    """An input data file or database cannot be used."""


class OutputExistsError(Text2SQLError):
    """An output would overwrite something that is already there."""


class MissingExtraError(Text2SQLError):
    """An optional dependency is needed for a feature that was asked for."""

    def __init__(self, feature: str, package: str, extra: str):
        super().__init__(f"{feature} needs the '{package}' package: pip install 'text2sql[{extra}]'")


def filesystem_error(exc: OSError) -> str | None:
    """One line for a file-system failure a user can fix (no permission, a read-only or full disk);
    None for any other OSError, which is a bug to report with its traceback."""
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied writing or reading{where}; choose a folder you can write to (output_dir, --output)"
    if exc.errno == errno.EROFS:
        return f"{where.strip() or 'the output folder'} is on a read-only file system; choose another output folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"no space left on the device{' writing' + where if where else ''}; free some space or choose an "
            "output folder on another disk (nothing half-written is kept)"
        )
    return None


def first_line(exc: BaseException | None) -> str:
    """The first line of an exception's message (its type name when it has none): what a one-line
    error quotes of a library's multi-line exception."""
    if exc is None:
        return ""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

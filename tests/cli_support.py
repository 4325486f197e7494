"""Calling the `text2sql` command in-process and checking its one-line errors."""

from __future__ import annotations

from text2sql.cli import main


def run_cli(capsys, *args):
    """(exit code, stdout, stderr) of `text2sql ARGS` run in this process."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    """A non-zero exit with exactly one `error:` line holding every needle, and no traceback."""
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]

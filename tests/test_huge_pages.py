"""Large tensors on huge pages: the `text2sql` command sets torch's switch before torch loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from text2sql.huge_pages import ENV, kernel_mode

needs_huge_pages = pytest.mark.skipif(
    sys.platform != "linux" or kernel_mode() in (None, "never"), reason="the kernel gives no transparent huge pages"
)


def _python(code: str, **env: str) -> list[str]:
    """Run `code` in a fresh interpreter (torch not loaded yet) and return its printed lines."""
    clean = {k: v for k, v in os.environ.items() if k != ENV}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True, timeout=300
    )
    return done.stdout.split()


USES = "from text2sql.huge_pages import torch_uses_huge_pages; print(torch_uses_huge_pages())"


@needs_huge_pages
def test_the_command_turns_them_on_before_torch_loads():
    # main() with no verb prints its help and returns; whatever the verb, torch loads after it.
    lines = _python(
        "import contextlib, io, os\n"
        "from text2sql.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main([])\n"
        f"print(os.environ['{ENV}'])\n" + USES
    )
    assert lines == ["1", "True"]


def test_without_the_switch_torch_places_large_tensors_as_it_always_did():
    assert _python(USES) == ["False"]
    assert _python("from text2sql.huge_pages import use_huge_pages\nuse_huge_pages()\n" + USES, **{ENV: "0"}) == [
        "False"
    ]


def test_too_late_once_torch_is_loaded():
    code = "import os, torch\nfrom text2sql.huge_pages import use_huge_pages\n"
    code += f"print(use_huge_pages(), os.environ.get('{ENV}'))\n" + USES
    assert _python(code) == ["False", "None", "False"]


def test_the_kernel_mode_is_read_from_its_brackets(tmp_path):
    mode = tmp_path / "enabled"
    mode.write_text("always [madvise] never\n")
    assert kernel_mode(mode) == "madvise"
    assert kernel_mode(tmp_path / "missing") is None

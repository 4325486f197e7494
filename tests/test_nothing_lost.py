"""A refused or failed command leaves every file as it was and says why in one line: --resume with no
checkpoint, a full or read-only disk, too few rows, a chat file without answers, a port in use; a
prepare killed with SIGKILL leaves no stage that looks finished, and the next run cleans up after it."""

import errno
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_support import assert_one_line_error, run_cli

FAST = ["data.max_samples.train=32", "data.max_samples.validation=4", "data.max_samples.test=4"]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_resume_without_a_checkpoint_changes_nothing(capsys, tmp_path):
    out = tmp_path / "run"
    assert run_cli(capsys, "prepare", f"output_dir={out}", *FAST)[0] == 0
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", f"output_dir={out}", *FAST, "training.learning_rate=1e-3", "--resume")
    assert_one_line_error(code, err, "--resume: no complete checkpoint")
    assert snapshot(out) == before


@pytest.mark.parametrize(
    ("error", "needle"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "/data/x.arrow"), "no space left on the device"),
        (PermissionError(errno.EACCES, "Permission denied", "/data/x.arrow"), "permission denied"),
        (OSError(errno.EROFS, "Read-only file system", "/data/x.arrow"), "read-only file system"),
    ],
)
def test_a_full_or_read_only_disk_is_one_line_and_leaves_no_stage(capsys, monkeypatch, tmp_path, error, needle):
    from datasets import DatasetDict

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(DatasetDict, "save_to_disk", fail)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "prepare", f"output_dir={out}", *FAST)
    assert_one_line_error(code, err, needle)
    assert not (out / "data").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".data.")]  # the staging folder went too


def test_too_few_rows_to_split_is_one_line(capsys, tmp_path):
    data = tmp_path / "one.json"
    data.write_text(json.dumps([{"input_text": "How many?", "sql": "SELECT 1"}]))
    code, _, err = run_cli(capsys, "prepare", f"data.train={data}", f"output_dir={tmp_path / 'run'}")
    assert_one_line_error(code, err, "too few to split off a test share", "data.test_size=0")


def test_a_chat_file_without_answers_says_so(capsys, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "How many singers?"}]}) + "\n")
    code, _, err = run_cli(capsys, "prepare", f"data.train={data}", f"output_dir={tmp_path / 'run'}")
    assert_one_line_error(code, err, "all 1 dropped (1 with no assistant turn)", "assistant message")


def test_a_port_in_use_is_one_line_before_the_model_loads(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "serve", "--model", "no/such-model", "--port", port)
    assert_one_line_error(code, err, f"port {port} on 127.0.0.1 is already in use", "--port")


def test_a_killed_prepare_leaves_no_finished_stage_and_is_cleaned_up(capsys, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "text2sql", "prepare", f"output_dir={out}", "data.max_samples.train=2000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):  # wait until it is building its staging folder, then kill it hard
            if out.is_dir() and any(p.name.startswith(".data.") for p in out.iterdir()):
                break
            if proc.poll() is not None:
                pytest.fail("prepare finished before it could be killed")
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert not (out / "data" / "stage.json").exists()  # nothing that looks finished
    assert [p for p in out.iterdir() if p.name.startswith(".data.")]  # what it was building is still there

    code, _, err = run_cli(capsys, "prepare", f"output_dir={out}", *FAST)
    assert code == 0, err
    assert (out / "data" / "stage.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".data.")]  # the next run cleaned it up

"""Two `text2sql tune` workers share one study through `tuning.storage=postgresql://...` (a real
server): both run real trials, together they run n_trials, and neither takes the other's running
trial for one that was cut off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

optuna = pytest.importorskip("optuna")

CONFIG = {
    "model": {"name_or_path": "tiny:llama"},
    "finetune": {"method": "full"},
    "data": {"max_samples": {"train": 32, "validation": 16, "test": 8}},
    "training": {"max_steps": 2, "logging_steps": 1},
    "evaluation": {"max_new_tokens": 16},
    "callbacks": {"progress": "lines"},
    "tuning": {
        "n_trials": 4,
        "sampler": "random",
        "study_name": "shared",
        "search_space": {"training.learning_rate": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}},
    },
}


def test_two_workers_share_one_study(postgres_server, tmp_path):
    postgres_server.create_database("studies")
    storage = postgres_server.url("studies")
    CONFIG["tuning"]["storage"] = storage
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    # The second worker: the same command with its own output_dir (its trial folders), as the README shows.
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "text2sql", "tune", str(path), f"output_dir={tmp_path / name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TEXT2SQL_THREADS": "1"},
        )
        for name in ("worker-a", "worker-b")
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=storage.replace("postgresql://", "postgresql+psycopg://"))
    ran = [t for t in study.trials if not t.user_attrs.get("surplus")]  # surplus: asked at the end, closed unrun
    assert [t.state for t in ran] == [optuna.trial.TrialState.COMPLETE] * 4  # exactly n_trials, together
    assert len({t.user_attrs["worker"] for t in ran}) == 2  # both workers ran trials
    for name in ("worker-a", "worker-b"):
        assert list((tmp_path / name / "tuning").glob("trial-*")), f"{name} ran no trial"

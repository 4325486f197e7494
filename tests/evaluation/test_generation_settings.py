"""A model is evaluated, predicted and served with the generation settings its run saved, and an
answer cut by the token limit is reported as `truncated`, not as a syntax error."""

import json
import shutil

import pytest

from text2sql.config import load_config, save_config
from text2sql.evaluation.evaluate import evaluate
from text2sql.serving.predict import predict
from text2sql.serving.server import build_server


@pytest.fixture(scope="module")
def run_model(tmp_path_factory, tiny_llama_path):
    """The tiny model as its run left it: config.yaml beside it with evaluation.max_new_tokens=5."""
    folder = tmp_path_factory.mktemp("run") / "model"
    shutil.copytree(tiny_llama_path, folder)
    save_config(load_config(None, ["evaluation.max_new_tokens=5"]), folder)
    return folder


def test_evaluate_alone_uses_the_runs_max_new_tokens(run_model, tmp_path):
    result = evaluate(
        "bundled", tmp_path / "a", model=str(run_model), max_samples=3, compute_loss=False, progress=False
    )
    assert result.metrics["run"]["generation"]["max_new_tokens"] == 5
    # The random model runs on to the limit: every wrong answer was cut, none is a "syntax error".
    assert {s.error for s in result.scored} == {"truncated"}
    assert all("reached the token limit" in s.error_detail for s in result.scored)
    assert result.metrics["error_counts"] == {"truncated": 3}
    given = evaluate(
        "bundled",
        tmp_path / "b",
        model=str(run_model),
        max_samples=1,
        max_new_tokens=3,
        compute_loss=False,
        progress=False,
    )
    assert given.metrics["run"]["generation"]["max_new_tokens"] == 3  # a flag still wins


def test_predict_and_serve_answer_as_long_as_the_run_did(run_model):
    answer = predict(str(run_model), "How many flights are there?", db="airline", execute=True)
    assert answer.answer.completion_tokens == 5
    assert answer.result.category == "truncated" and "token limit" in answer.result.error
    server = build_server(str(run_model))
    try:
        assert server.settings.serving.max_tokens == 5
    finally:
        server.engine.close()
    server = build_server(str(run_model), max_tokens=9)
    try:
        assert server.settings.serving.max_tokens == 9
    finally:
        server.engine.close()


def test_a_run_evaluates_with_its_settings_and_records_them(run_model, tmp_path):
    metrics_path = tmp_path / "c" / "metrics.json"
    evaluate("bundled", tmp_path / "c", model=str(run_model), max_samples=1, compute_loss=False, progress=False)
    assert json.loads(metrics_path.read_text())["run"]["generation"]["max_new_tokens"] == 5

"""`evaluate` scores exactly what `predict` (and so `serve`) answers: one generator, one stop rule,
one prompt builder, whatever batching each uses."""

import pytest
import torch

from text2sql.data import bundled
from text2sql.evaluation.evaluate import evaluate
from text2sql.serving.predict import predict


@pytest.fixture(scope="module")
def chatty_model(tmp_path_factory, tiny_llama_path):
    """The tiny Llama with larger random weights, so its answers depend on the prompt."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("chatty")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(folder)
    return folder


def test_evaluate_and_predict_return_identical_sql(chatty_model, tmp_path):
    result = evaluate(
        "bundled",
        tmp_path / "eval",
        model=str(chatty_model),
        split="test",
        max_samples=8,
        batch_size=3,
        max_new_tokens=12,
        compute_loss=False,
        progress=False,
    )
    rows = result.evalset.rows
    assert len({s.predicted_sql for s in result.scored}) > 1  # the answers differ, so a mix-up would show
    for row, scored in zip(rows, result.scored):
        answer = predict(str(chatty_model), row.question, db=str(bundled.db_path(row.db_id)), max_new_tokens=12)
        assert answer.sql == scored.predicted_sql, row.id

"""The micro-batching engine alone: a full queue, token budgets per request, backends, flags checked early."""

import pytest

from serving_support import ScriptedBackend
from text2sql.errors import MissingExtraError
from text2sql.inference.generate import RawOutput, Sampling
from text2sql.inference.loading import load_for_inference
from text2sql.serving.engine import Engine, EngineBusy, GenerationRequest
from text2sql.serving.server import build_server

HEAD = "CREATE TABLE head(age INTEGER)"


class _Blocking:
    """A backend that holds its first batch until released."""

    def __init__(self):
        import threading

        self.entered, self.release = threading.Event(), threading.Event()

    def generate(self, prompts, max_new_tokens, sampling):
        self.entered.set()
        self.release.wait(10)
        return [RawOutput([2], hit_eos=True) for _ in prompts]


def test_full_queue_is_busy_and_work_resumes(merged_model):
    im = load_for_inference(str(merged_model), load_weights=False)
    backend = _Blocking()
    engine = Engine(backend, im.builder, batch_size=1, batch_wait_ms=0, max_queue=1).start()
    try:
        first = engine.submit(GenerationRequest("a"))
        assert backend.entered.wait(10)
        second = engine.submit(GenerationRequest("b"))  # waits in the queue
        with pytest.raises(EngineBusy):
            engine.submit(GenerationRequest("c"))
        backend.release.set()
        assert first.result(10).finish_reason == "stop" and second.result(10).completion_tokens == 1
    finally:
        backend.release.set()
        engine.close()


def test_each_request_gets_its_own_token_budget(merged_model):
    im = load_for_inference(str(merged_model), load_weights=False)
    engine = Engine(ScriptedBackend(im.tokenizer, lambda p: "SELECT a, b, c FROM t WHERE x = 1"), im.builder)
    short, long = engine.generate_batch([GenerationRequest("p", max_new_tokens=2), GenerationRequest("p", 64)])
    assert (short.completion_tokens, short.finish_reason) == (2, "length")
    assert long.finish_reason == "stop" and long.text == "SELECT a, b, c FROM t WHERE x = 1"
    assert engine.stats.batches == 1 and engine.stats.max_batch == 2


def test_vllm_backend_needs_the_extra(merged_model):
    pytest.importorskip("fastapi")
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed")
    with pytest.raises(MissingExtraError, match="text2sql\\[vllm\\]"):
        build_server(str(merged_model), backend="vllm")


def test_seq2seq_models_are_served_too(tiny_t5_path):
    from text2sql.serving.engine import build_engine

    im = load_for_inference(str(tiny_t5_path))
    engine = build_engine(im)
    prompt = im.builder.prompt_text("How many heads?", HEAD + ";")
    greedy, sampled = engine.generate_batch([GenerationRequest(prompt, 4), GenerationRequest(prompt, 3, Sampling(0.8))])
    assert greedy.prompt_tokens == len(im.builder.encode_prompts([prompt])[0])
    assert greedy.completion_tokens <= 4 and sampled.completion_tokens <= 3


def test_serve_flags_are_checked_before_the_model_loads(capsys):
    from text2sql.cli import main

    code = main(["serve", "--model", "no/such/model", "--batch-size", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: invalid serving setting: batch_size") and "Traceback" not in err

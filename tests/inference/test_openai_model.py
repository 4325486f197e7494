"""An OpenAI-compatible endpoint as a model: the real `openai` client against a scripted server on
loopback: retries, errors in one line, bounded concurrency, and answers cached so a rerun pays nothing."""

from __future__ import annotations

import contextlib
import json
import sys

import pytest

from openai_support import Reply, ScriptedEndpoint
from serving_support import free_port, running
from text2sql.errors import MissingExtraError
from text2sql.inference.answer_cache import AnswerCache, cache_file
from text2sql.inference.openai_model import Decoding, EndpointError, OpenAIModel

MESSAGES = [{"role": "system", "content": "Answer with SQL."}, {"role": "user", "content": "Question: how many?"}]


@contextlib.contextmanager
def serving(script, **kwargs):
    endpoint = ScriptedEndpoint(script, **kwargs)
    with running(endpoint.app()) as url:
        yield endpoint, f"{url}/v1"


def model(url: str, tmp_path=None, **kwargs) -> OpenAIModel:
    cache = AnswerCache(cache_file(tmp_path, url, "m")) if tmp_path is not None else None
    return OpenAIModel("openai:m", base_url=url, api_key="k", cache=cache, **kwargs)


def test_rate_limits_and_server_errors_are_retried_with_the_clients_backoff():
    failures = iter([429, 500, 503])

    def script(body):
        status = next(failures, 200)
        return Reply("SELECT 1", status=status)

    with serving(script) as (server, url):
        answer = model(url, max_retries=3).complete(MESSAGES, Decoding(max_tokens=16))
    assert answer.text == "SELECT 1" and server.count == 4
    assert (answer.prompt_tokens, answer.completion_tokens) == (100, 10) and answer.seconds > 0
    # what was asked: the messages as given, greedy, the token limit
    body = server.requests[-1]
    assert body["messages"] == MESSAGES and body["temperature"] == 0 and body["max_tokens"] == 16
    assert body["model"] == "m" and "top_p" not in body and "n" not in body


@pytest.mark.parametrize(
    "reply, needles",
    [
        (Reply(status=429, error="Rate limit reached"), ("still rate limiting after 2 retries", "429", "concurrency")),
        (Reply(status=500, error="boom"), ("failed with 500 after 2 retries", "boom", "answers so far are kept")),
        (Reply(status=404, error="The model `m` does not exist"), ("has no model 'm'", "404", "/models")),
        (Reply(status=400, error="bad field"), ("refused the request (400: bad field)",)),
    ],
)
def test_an_endpoint_that_keeps_failing_is_one_line(reply, needles):
    with serving(lambda body: reply) as (server, url):
        with pytest.raises(EndpointError) as caught:
            model(url, max_retries=2).complete(MESSAGES)
    message = str(caught.value)
    assert "\n" not in message and url in message
    for needle in needles:
        assert needle in message
    retried = reply.status in (429, 500)
    assert server.count == (3 if retried else 1)


def test_a_wrong_key_is_refused_in_one_line():
    with serving(lambda body: "SELECT 1", api_key="right") as (server, url):
        with pytest.raises(EndpointError, match=r"refused the API key \(401.*set OPENAI_API_KEY"):
            OpenAIModel("openai:m", base_url=url, api_key="wrong", max_retries=3).complete(MESSAGES)
        assert OpenAIModel("openai:m", base_url=url, api_key="right").ask(MESSAGES) == "SELECT 1"


def test_an_unreachable_endpoint_and_a_slow_one_are_one_line(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError, match="cannot reach .*check --base-url / OPENAI_BASE_URL"):
        model(url, max_retries=0).complete(MESSAGES)
    with serving(lambda body: Reply("SELECT 1", delay=1.0)) as (server, url):
        with pytest.raises(EndpointError, match=r"did not answer within 0.3 s \(1 retries\)"):
            model(url, timeout=0.3, max_retries=1).complete(MESSAGES)
    assert server.count == 2  # asked once, retried once after the timeout
    # OpenAI's own endpoint needs a key; without one nothing is sent
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(EndpointError, match="needs an API key; set OPENAI_API_KEY"):
        OpenAIModel("openai:gpt-4o-mini")


def test_the_base_url_and_key_come_from_the_environment(monkeypatch):
    with serving(lambda body: "SELECT 2", api_key="env-key") as (server, url):
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        monkeypatch.setenv("OPENAI_API_KEY", "env-key")
        m = OpenAIModel("openai:m")
        assert m.base_url == url and m.ask(MESSAGES) == "SELECT 2"


def test_concurrency_is_bounded_and_answers_keep_their_order():
    def script(body):
        return Reply(f"SELECT {body['messages'][-1]['content'][-1]}", delay=0.15)

    conversations = [[{"role": "user", "content": f"q{i}"}] for i in range(9)]
    with serving(script) as (server, url):
        answers = model(url, concurrency=3).complete_many(conversations)
    assert [a.text for a in answers] == [f"SELECT {i}" for i in range(9)]
    assert server.most_in_flight == 3


def test_sampled_answers_ask_again_when_an_endpoint_returns_fewer_than_n():
    with serving(lambda body: Reply(["SELECT 1", "SELECT 2"], choices=1)) as (server, url):
        answer = model(url).complete(MESSAGES, Decoding(temperature=0.8, top_p=0.9, n=3, seed=7))
    assert answer.texts == ["SELECT 1"] * 3 and server.count == 3
    assert [b["n"] for b in server.requests[:2]] == [3, 2]
    assert server.requests[0]["seed"] == 7 and server.requests[0]["top_p"] == 0.9
    assert answer.completion_tokens == 30


def test_a_rerun_is_answered_from_the_cache_and_a_torn_line_is_ignored(tmp_path):
    conversations = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    with serving(lambda body: "SELECT 1") as (server, url):
        first = model(url, tmp_path).complete_many(conversations)
        assert server.count == 4 and not any(a.cached for a in first)
        again = model(url, tmp_path).complete_many(conversations)
        assert server.count == 4 and all(a.cached for a in again)
        assert [a.record() for a in again] == [a.record() for a in first]
        # a crash cut the last line short: it is asked again, and the next answer gets a line of its own
        path = cache_file(tmp_path, url, "m")
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
        resumed = model(url, tmp_path)
        assert len(resumed.cache) == 3 and resumed.cache.torn == 1
        resumed.complete_many(conversations)
        assert server.count == 5
        records = [json.loads(line) for line in path.read_text().splitlines()[-1:]]
        assert records[0]["texts"] == ["SELECT 1"]
        # another setting is another question
        model(url, tmp_path).complete(conversations[0], Decoding(max_tokens=9))
        assert server.count == 6


def test_without_the_openai_package_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)  # what `import openai` finds when it is not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'text2sql\[openai\]'"):
        OpenAIModel("openai:m", base_url="http://127.0.0.1:9/v1")

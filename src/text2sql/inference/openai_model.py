"""Any OpenAI-compatible endpoint as a model: a hosted LLM, vLLM, Ollama or `text2sql serve`.

    model = OpenAIModel("openai:gpt-4o-mini")                      # OPENAI_BASE_URL, OPENAI_API_KEY
    model = OpenAIModel("qwen2.5", base_url="http://localhost:11434/v1")
    answer = model.complete(messages, Decoding(max_tokens=256))    # texts, usage, latency
    answers = model.complete_many(conversations, Decoding(max_tokens=256))
    sql_text = model.ask(messages)                                 # the first answer's text

A model spec `openai:NAME` names one wherever a model is named. Requests go through the official
`openai` client (`pip install 'text2sql[openai]'`), which reads the base URL from `OPENAI_BASE_URL`
and the key from `OPENAI_API_KEY` and retries 429 and 5xx answers (and timeouts) with its own
backoff, `max_retries` times. An endpoint other than OpenAI's may need no key: without one, a
placeholder is sent (a server that wants a key answers 401, which names the variable to set).

`complete_many` keeps `concurrency` requests in flight. It asks the first question not yet answered
alone, so an unreachable endpoint, a refused key or an unknown model stops it at once, and every
answer goes into the `AnswerCache` as it arrives: a rerun, or a run stopped by Ctrl-C or an error,
asks only the rest. Every failure is an `EndpointError`: one line naming the endpoint, the problem
and the fix.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from text2sql.errors import ConfigError, MissingExtraError, Text2SQLError, first_line
from text2sql.inference.answer_cache import AnswerCache, answer_key
from text2sql.progress import progress as progress_bar

PREFIX = "openai:"
OPENAI_URL = "https://api.openai.com/v1"  # the client's default when OPENAI_BASE_URL is unset
NO_KEY = "none"  # sent to an endpoint other than OpenAI's when OPENAI_API_KEY is unset

Messages = Sequence[dict[str, str]]


class EndpointError(Text2SQLError):
    """The endpoint could not answer: unreachable, a refused key, an unknown model, rate limits or
    server errors that outlasted the retries."""


def is_endpoint(spec: str | None) -> bool:
    """Whether a model spec names an OpenAI-compatible endpoint (`openai:NAME`)."""
    return bool(spec) and str(spec).startswith(PREFIX)


def endpoint_name(spec: str) -> str:
    """NAME of `openai:NAME` (a bare name is taken as it is); ConfigError when it is empty."""
    name = spec[len(PREFIX) :] if is_endpoint(spec) else spec
    if not name.strip():
        raise ConfigError(f"{spec!r} names no model; write openai:NAME, e.g. openai:gpt-4o-mini")
    return name.strip()


def resolve_base_url(base_url: str | None) -> str:
    """The endpoint asked: `base_url`, else `$OPENAI_BASE_URL`, else OpenAI's."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")


def require_openai() -> Any:
    try:
        import openai
    except ImportError:
        raise MissingExtraError("an openai: model", "openai", "openai") from None
    return openai


@dataclass(frozen=True)
class Decoding:
    """How answers are drawn: temperature 0 is greedy; `n` answers per request (an endpoint that
    returns fewer is asked again for the rest); `seed` where the endpoint honours one."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None

    def request(self) -> dict[str, Any]:
        """The request fields: greedy requests send temperature 0 and no top_p."""
        fields: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.temperature > 0:
            fields["top_p"] = self.top_p
        if self.n > 1:
            fields["n"] = self.n
        if self.seed is not None:
            fields["seed"] = self.seed
        return fields


@dataclass
class Answer:
    """One request's answers: texts and finish reasons (`length`: cut by max_tokens), the tokens
    the endpoint counted (None when it reports no usage), the seconds it took (retries included),
    and whether it came from the cache (its tokens and seconds are those of the original request)."""

    texts: list[str]
    finish_reasons: list[str | None] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float = 0.0
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("cached")
        return data


class OpenAIModel:
    """A model behind an OpenAI-compatible chat endpoint (see the module docstring).

    `spec`: `openai:NAME` or NAME. `base_url` / `api_key`: default `$OPENAI_BASE_URL` /
    `$OPENAI_API_KEY`. `timeout`: seconds per request; `max_retries`: the client's retries of 429,
    5xx and timeouts; `concurrency`: requests in flight in `complete_many`; `cache`: where answers
    are kept (None: nowhere)."""

    def __init__(
        self,
        spec: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 4,
        cache: AnswerCache | None = None,
    ):
        self.spec = spec if is_endpoint(spec) else PREFIX + spec
        self.name = endpoint_name(spec)
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = max(1, concurrency)
        self.cache = cache
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url == OPENAI_URL:
            raise EndpointError(
                f"{self.spec} at {OPENAI_URL} needs an API key; set OPENAI_API_KEY (or --base-url / "
                "OPENAI_BASE_URL for another endpoint)"
            )
        openai = require_openai()
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key or NO_KEY, timeout=timeout, max_retries=max_retries
        )

    # ------------------------------------------------------------------ asking

    def ask(self, messages: Messages, decoding: Decoding | None = None) -> str:
        """The first answer's text to one conversation."""
        return self.complete(messages, decoding).text

    def complete(self, messages: Messages, decoding: Decoding | None = None) -> Answer:
        """The answers to one conversation (from the cache when it holds them)."""
        decoding = decoding or Decoding()
        key = self.key(messages, decoding)
        found = self.cache.get(key) if self.cache is not None else None
        if found is not None:
            return _from_record(found)
        answer = self._request(messages, decoding)
        if self.cache is not None:
            self.cache.put(key, answer.record())
        return answer

    def complete_many(
        self,
        conversations: Sequence[Messages],
        decoding: Decoding | None = None,
        *,
        progress: bool = False,
        desc: str = "asking",
    ) -> list[Answer]:
        """The answers to every conversation, in order, `concurrency` requests at a time; the first
        unanswered one is asked alone first. Raises EndpointError at the first request that fails."""
        decoding = decoding or Decoding()
        results: list[Answer | None] = [None] * len(conversations)
        pending = []
        for i, messages in enumerate(conversations):
            found = self.cache.get(self.key(messages, decoding)) if self.cache is not None else None
            if found is not None:
                results[i] = _from_record(found)
            else:
                pending.append(i)
        bar = progress_bar(len(conversations), desc, unit="q", enabled=progress)
        try:
            bar.update(len(conversations) - len(pending))
            if pending:
                first = pending.pop(0)
                results[first] = self.complete(conversations[first], decoding)
                bar.update(1)
            for i, answer in self._in_parallel(conversations, pending, decoding):
                results[i] = answer
                bar.update(1)
        finally:
            bar.close()
        return results  # type: ignore[return-value]

    def _in_parallel(self, conversations: Sequence[Messages], indices: list[int], decoding: Decoding):
        """(index, answer) as answers arrive. Daemon threads: an interrupted run exits at once, its
        requests in flight abandoned (what was answered is in the cache already)."""
        todo: queue.Queue[int] = queue.Queue()
        for i in indices:
            todo.put(i)
        done: queue.Queue[tuple[int, Answer | None, BaseException | None]] = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((i, self.complete(conversations[i], decoding), None))
                except BaseException as exc:  # handed to the caller's thread, which raises it
                    stop.set()  # no new request after a failure, before the caller has even seen it
                    done.put((i, None, exc))

        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(self.concurrency, len(indices)))]
        for thread in threads:
            thread.start()
        try:
            for _ in indices:
                i, answer, exc = done.get()
                if exc is not None:
                    raise exc
                yield i, answer
        finally:
            stop.set()

    def key(self, messages: Messages, decoding: Decoding) -> str:
        return answer_key(self.base_url, self.name, messages, asdict(decoding))

    def _request(self, messages: Messages, decoding: Decoding) -> Answer:
        """One answer set from the endpoint; an endpoint that returns fewer than `n` choices is asked
        for the rest (tokens and seconds add up)."""
        texts: list[str] = []
        reasons: list[str | None] = []
        prompt_tokens: int | None = 0
        completion_tokens: int | None = 0
        start = time.perf_counter()
        while len(texts) < decoding.n:
            missing = decoding.n - len(texts)
            asked = Decoding(decoding.max_tokens, decoding.temperature, decoding.top_p, missing, decoding.seed)
            response = self._create(messages, asked)
            choices = list(getattr(response, "choices", None) or [])
            if not choices:
                raise EndpointError(
                    f"{self.spec} at {self.base_url} answered without any choice; check that it serves chat completions"
                )
            for choice in choices[:missing]:
                message = getattr(choice, "message", None)
                texts.append(str(getattr(message, "content", None) or ""))
                reasons.append(getattr(choice, "finish_reason", None))
            usage = getattr(response, "usage", None)
            prompt_tokens = _add(prompt_tokens, getattr(usage, "prompt_tokens", None) if usage else None)
            completion_tokens = _add(completion_tokens, getattr(usage, "completion_tokens", None) if usage else None)
        return Answer(texts, reasons, prompt_tokens, completion_tokens, time.perf_counter() - start)

    def _create(self, messages: Messages, decoding: Decoding) -> Any:
        openai = self._openai
        try:
            return self._client.chat.completions.create(model=self.name, messages=list(messages), **decoding.request())
        except openai.APITimeoutError:
            raise EndpointError(
                f"{self.spec} at {self.base_url} did not answer within {self.timeout:g} s ({self.max_retries} "
                "retries); raise evaluation.request_timeout (--request-timeout) or check the server"
            ) from None
        except openai.APIConnectionError as exc:
            raise EndpointError(
                f"cannot reach {self.base_url} ({_cause(exc)}); check --base-url / OPENAI_BASE_URL and that the "
                "server is running"
            ) from None
        except openai.AuthenticationError as exc:
            raise EndpointError(
                f"{self.base_url} refused the API key (401: {_message(exc)}); set OPENAI_API_KEY to a valid key"
            ) from None
        except openai.PermissionDeniedError as exc:
            raise EndpointError(
                f"{self.base_url} denied access to {self.name!r} (403: {_message(exc)}); use a key allowed to use it"
            ) from None
        except openai.NotFoundError as exc:
            raise EndpointError(
                f"{self.base_url} has no model {self.name!r} (404: {_message(exc)}); check the name after openai: "
                f"(GET {self.base_url}/models lists them) and the base URL"
            ) from None
        except openai.RateLimitError as exc:
            raise EndpointError(
                f"{self.base_url} is still rate limiting after {self.max_retries} retries (429: {_message(exc)}); "
                "lower evaluation.concurrency or raise evaluation.max_retries and run again: answers so far are kept"
            ) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            if status >= 500:
                raise EndpointError(
                    f"{self.base_url} failed with {status} after {self.max_retries} retries ({_message(exc)}); run "
                    "again later: answers so far are kept"
                ) from None
            raise EndpointError(
                f"{self.base_url} refused the request ({status}: {_message(exc)}); check the model name and settings"
            ) from None
        except openai.OpenAIError as exc:  # a body that is not a chat completion, and the like
            raise EndpointError(f"{self.spec} at {self.base_url}: {first_line(exc)}") from None

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "source": "endpoint",
            "name": self.name,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            "cache": str(self.cache.path) if self.cache is not None else None,
        }


def _from_record(record: dict[str, Any]) -> Answer:
    texts = [str(t) for t in record.get("texts", [])]
    return Answer(
        texts=texts,
        finish_reasons=list(record.get("finish_reasons") or [None] * len(texts)),
        prompt_tokens=record.get("prompt_tokens"),
        completion_tokens=record.get("completion_tokens"),
        seconds=float(record.get("seconds") or 0.0),
        cached=True,
    )


def _add(total: int | None, value: Any) -> int | None:
    return None if total is None or not isinstance(value, int) else total + value


def _message(exc: Any) -> str:
    """The endpoint's own error message (OpenAI's shape), else the exception's first line."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return first_line(Exception(str(inner["message"])))[:200]
        if isinstance(inner, str) and inner:
            return inner.splitlines()[0][:200]
    return first_line(exc)[:200]


def _cause(exc: BaseException) -> str:
    """The reason under a connection error ('Connection refused'), else its own first line."""
    inner = exc.__cause__ or exc.__context__
    while inner is not None and (inner.__cause__ or inner.__context__) is not None:
        inner = inner.__cause__ or inner.__context__
    return first_line(inner or exc)[:200]

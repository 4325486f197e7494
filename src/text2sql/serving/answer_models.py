"""The models an `Answerer` asks: the served engine (its generations batched with every other caller's,
on queue slots held for the request), an engine run on the caller's thread (`predict`), and an
OpenAI-compatible endpoint (`predict --model openai:NAME`).

Each makes a prompt from an `Example` the way its model reads one (the model's own PromptBuilder, or
the endpoint's default chat prompt) and answers `Request`s in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Protocol

from text2sql.data.example import Example
from text2sql.inference.endpoint_prompts import endpoint_builder, endpoint_messages
from text2sql.inference.generate import GREEDY, Sampling
from text2sql.inference.openai_model import Decoding, OpenAIModel
from text2sql.serving import engine as engines
from text2sql.serving.errors import Busy, PromptTooLong


@dataclass(frozen=True)
class Request:
    """One generation to make: a prompt (text, or chat messages for an endpoint) and how to decode it."""

    prompt: Any
    max_tokens: int
    sampling: Sampling = GREEDY
    stop: tuple[str, ...] = ()


class Model(Protocol):
    """What an Answerer needs of a model."""

    def prompt(self, example: Example) -> Any:
        """What `generate` is asked with for `example`, shown as the model was trained to read it."""
        ...

    def reserve(self, count: int) -> AbstractContextManager[Any]:
        """Room for `count` generations, held until the block ends; Busy when there is none."""
        ...

    async def generate(self, requests: Sequence[Request], held: Any = None) -> list[engines.Generation]:
        """One generation per request, in order, made on the room `held`; PromptTooLong when a prompt
        leaves no room to answer."""
        ...


def _too_long(exc: Exception) -> PromptTooLong:
    return PromptTooLong(f"{exc}; shorten the schema or the question")


def _engine_requests(requests: Sequence[Request]) -> list[engines.GenerationRequest]:
    return [engines.GenerationRequest(r.prompt, r.max_tokens, r.sampling, r.stop) for r in requests]


class ServedModel:
    """The engine's worker: generations are queued on slots reserved all at once, and cancelling the
    call drops those still queued."""

    def __init__(self, engine: engines.Engine):
        self.engine = engine

    def prompt(self, example: Example) -> str:
        return self.engine.builder.example_prompt(example)

    def reserve(self, count: int) -> engines.Reservation:
        try:
            return self.engine.reserve(count)
        except engines.EngineBusy as exc:
            raise Busy(f"server busy: {exc} (serving.max_queue); retry later") from None

    async def generate(
        self, requests: Sequence[Request], held: engines.Reservation | None = None
    ) -> list[engines.Generation]:
        try:
            return await self.engine.generate_many(_engine_requests(requests), held)
        except engines.PromptTooLong as exc:
            raise _too_long(exc) from None


class LocalModel:
    """An engine whose worker is not started: every call generates at once on the caller's thread (one
    backend call per sampling setting), for one question at a time."""

    def __init__(self, engine: engines.Engine):
        self.engine = engine

    def prompt(self, example: Example) -> str:
        return self.engine.builder.example_prompt(example)

    def reserve(self, count: int) -> AbstractContextManager[None]:
        return nullcontext()  # nobody else queues here

    async def generate(self, requests: Sequence[Request], held: Any = None) -> list[engines.Generation]:
        results = self.engine.generate_batch(_engine_requests(requests))
        for result in results:
            if isinstance(result, Exception):
                raise _too_long(result)
        return [r for r in results if isinstance(r, engines.Generation)]


class EndpointModel:
    """A model behind an OpenAI-compatible chat endpoint, asked the default prompt with the whole schema
    in the database's dialect. Equal requests in a row are one call for that many choices."""

    def __init__(self, endpoint: OpenAIModel, dialect: str | None):
        self.endpoint = endpoint
        self.builder = endpoint_builder(dialect=dialect)

    def prompt(self, example: Example) -> Any:
        [messages] = endpoint_messages(self.builder, [example])
        return messages

    def reserve(self, count: int) -> AbstractContextManager[None]:
        return nullcontext()  # the endpoint queues for itself

    async def generate(self, requests: Sequence[Request], held: Any = None) -> list[engines.Generation]:
        generations: list[engines.Generation] = []
        for request, same in groupby(requests):
            n = len(list(same))
            decoding = Decoding(request.max_tokens, request.sampling.temperature, request.sampling.top_p, n)
            reply = await asyncio.to_thread(self.endpoint.complete, request.prompt, decoding)
            reasons = list(reply.finish_reasons) + [None] * n
            for i, text in enumerate(reply.texts[:n]):
                # The reply counts its tokens for all n choices together: they go to the first one.
                generations.append(
                    engines.Generation(
                        text=text,
                        prompt_tokens=(reply.prompt_tokens or 0) if i == 0 else 0,
                        completion_tokens=(reply.completion_tokens or 0) if i == 0 else 0,
                        finish_reason=reasons[i] or "stop",
                    )
                )
        return generations

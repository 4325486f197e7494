"""OpenAI's server-sent events for chat and completion answers: the `stream: true` form of a finished
answer. The SQL is sent whole, since only a complete answer has its SQL extracted."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import StreamingResponse

from text2sql.serving.openai_schema import ChatCompletion, Completion


def streamed_chat(completion: ChatCompletion) -> StreamingResponse:
    """A chat completion as OpenAI streams it: per choice a role chunk, a content chunk, a chunk with
    the finish reason, then [DONE]. The SQL is sent whole: only a complete answer has its SQL extracted."""
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    chunks = []
    for c in completion.choices:
        for delta, finish in (
            ({"role": "assistant", "content": ""}, None),
            ({"content": c.message.content}, None),
            ({}, c.finish_reason),
        ):
            chunks.append(
                {**base, "choices": [{"index": c.index, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            )
    return _events(chunks)


def streamed_completion(completion: Completion) -> StreamingResponse:
    """A completion as OpenAI streams it: per choice its text, then its finish reason, then [DONE]."""
    base = {"id": completion.id, "object": "text_completion", "created": completion.created, "model": completion.model}
    chunks = []
    for c in completion.choices:
        for text, finish in ((c.text, None), ("", c.finish_reason)):
            chunks.append(
                {**base, "choices": [{"index": c.index, "text": text, "finish_reason": finish, "logprobs": None}]}
            )
    return _events(chunks)


def _events(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def lines():
        for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

"""Request and response bodies: the OpenAI chat and completion formats, and `/v1/sql`.

Unknown request fields are ignored (clients send many: presence_penalty, logprobs, user, ...), as
OpenAI-compatible servers do. `db_id` is an extension on the OpenAI requests: with no CREATE TABLE
statements in the request, the schema is read from that database (`extra_body={"db_id": ...}`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Bounds on list fields (the body-size limit bounds everything else). What a request may generate
# (prompts or instances × n) is bounded by the server's serving.max_generations_per_request.
MAX_STOP = 4  # as OpenAI


def _encodable(value: Any) -> Any:
    """JSON may carry lone surrogates ("\\ud800") that no tokenizer can encode: refuse them here, as
    this request's own 422, before they reach a batch shared with other requests."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text holds a lone surrogate (invalid Unicode); send valid UTF-8") from None
    elif isinstance(value, (list, tuple)):
        for item in value:
            _encodable(item)
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: Any) -> Any:
        return _encodable(value)


class ContentPart(_Request):
    type: str = "text"
    text: str = ""


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.type == "text")


class _Generation(_Request):
    model: str | None = Field(None, description="Ignored: the server answers with the model it serves.")
    max_tokens: int | None = Field(None, gt=0, description="Most tokens to generate (bounded by the server).")
    temperature: float | None = Field(None, ge=0, le=2, description="0 or absent: greedy decoding.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling, when temperature > 0.")
    stop: str | list[str] | None = Field(None, description="Generation is cut at the first of these strings.")
    n: int | None = Field(None, ge=1, description="Choices per prompt (serving.max_generations_per_request bounds it).")
    stream: bool | None = Field(
        None, description="Server-sent events as OpenAI streams them; the SQL arrives as one piece once extracted."
    )
    db_id: str | None = Field(None, description="Extension: read the schema from this database of --db-dir.")

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0, description="Newer name of max_tokens; wins over it.")


class CompletionRequest(_Generation):
    prompt: str | list[str] = Field(..., description="The question, optionally with CREATE TABLE statements.")


class SqlRequest(_Request):
    question: str = Field(..., min_length=1, description="The question to answer with SQL.")
    db_id: str | None = Field(None, description="A database of --db-dir: its schema goes into the prompt.")
    schema_text: str | None = Field(
        None, alias="schema", description="CREATE TABLE statements, when the database is not on the server."
    )
    evidence: str | None = Field(None, description="An optional hint (BIRD's 'evidence').")
    execute: bool = Field(False, description="Run the SQL read-only on db_id and return its rows.")
    max_tokens: int | None = Field(None, gt=0, description="Most tokens to generate (bounded by the server).")
    n: int = Field(1, ge=1, description="Candidates: the greedy answer plus n - 1 sampled ones; each one is returned.")
    vote: bool = Field(
        False, description="Run the n candidates on db_id and answer with the one most of them agree with by result."
    )
    temperature: float = Field(0.8, gt=0, le=2, description="Sampling temperature of the extra candidates.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling of the extra candidates.")


# ------------------------------------------------------------------------------------ responses


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "text2sql"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class SqlCandidate(BaseModel):
    sql: str
    ok: bool = Field(description="True when its check passed (run with execute or vote, else compiled or parsed).")
    error: str | None = None
    votes: int | None = Field(
        None, description="With vote: candidates (itself included) whose result equals its result; 0 when it failed."
    )
    chosen: bool = Field(False, description="True for the candidate that is the answer (`sql`).")


class SqlResponse(BaseModel):
    sql: str = Field(description="The model's SQL (one statement, no commentary).")
    columns: list[str] | None = Field(None, description="Result columns when executed; else null.")
    rows: list[list[Any]] | None = Field(None, description="Result rows when executed (at most serving.max_rows).")
    error: str | None = Field(None, description="Why the SQL failed to parse, compile or run; null when it did not.")
    error_category: str | None = Field(None, description="syntax, schema, timeout, forbidden, runtime or no_database.")
    truncated: bool = Field(False, description="True when the result had more rows than were returned.")
    attempts: int = Field(description="Model calls it took: 1, plus one per repair.")
    db_id: str | None = None
    candidates: list[SqlCandidate] | None = Field(
        None, description="With n > 1: every candidate of the last round, the greedy one first; null with n = 1."
    )
    usage: Usage


class VertexPredictRequest(BaseModel):
    """Vertex AI's prediction request: each instance is a `/v1/sql` request."""

    instances: list[SqlRequest] = Field(..., min_length=1, description="The questions, each as /v1/sql takes it.")
    parameters: dict[str, Any] | None = Field(None, description="Ignored: every setting goes in the instance.")


class VertexPredictResponse(BaseModel):
    predictions: list[SqlResponse]

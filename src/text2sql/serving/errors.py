"""What stops a question from being answered, as errors any front end can report: the HTTP app maps each
class to a status code (`app.STATUS`), the command line prints the message as one line.

Every message names the problem and the fix; `details` holds extra fields an error body carries
(`known_ids` of an unknown database).
"""

from __future__ import annotations

from typing import Any

from text2sql.errors import Text2SQLError


class AnswerError(Text2SQLError):
    """A question that cannot be answered as asked, or not now."""

    def __init__(self, message: str, **details: Any):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(AnswerError):
    """Fields that contradict each other, one over its own limit, or no question at all."""


class BadRequest(AnswerError):
    """A request that cannot be served as sent (no prompt, too many stop strings)."""


class TooManyGenerations(BadRequest):
    """More generations than one request may make (serving.max_generations_per_request)."""


class PromptTooLong(BadRequest):
    """A prompt that leaves the model no room to answer within its context."""


class UnknownDatabase(AnswerError):
    """A db_id the server does not have; `known_ids` lists those it has."""

    def __init__(self, db_id: str, known_ids: list[str]):
        super().__init__(f"unknown db_id {db_id!r}; known ids: {', '.join(known_ids) or '(none)'}", known_ids=known_ids)
        self.db_id = db_id
        self.known_ids = known_ids


class DatabaseUnavailable(AnswerError):
    """A database that cannot be reached (a server that is down, a file that went away)."""


class Busy(AnswerError):
    """The model's queue has no room for the request's generations: retry later."""


class ClientGone(AnswerError):
    """The caller left before the answer was ready; nothing more is generated for it."""

"""What one request to a server may ask of the model, from the `serving` settings: answer lengths
(serving.max_tokens, serving.max_tokens_limit), generations (serving.max_generations_per_request) and
the repair rounds that fit within them (serving.max_repairs).

Every check runs before anything is generated, so a request over a limit costs the model nothing.
"""

from __future__ import annotations

from text2sql.config import EvaluationConfig, ServingConfig
from text2sql.serving.errors import InvalidRequest, TooManyGenerations


class RequestLimits:
    def __init__(self, serving: ServingConfig):
        self.serving = serving

    def max_tokens(self, requested: int | None) -> int:
        """The answer length of a request: its own, else the server's default; InvalidRequest above the limit."""
        serving = self.serving
        if requested is None:
            # build_server resolves an unset default to the model's own; a bare app uses the evaluation default.
            return serving.max_tokens if serving.max_tokens is not None else EvaluationConfig().max_new_tokens
        if requested > serving.max_tokens_limit:
            raise InvalidRequest(f"max_tokens {requested} is above this server's limit of {serving.max_tokens_limit}")
        return requested

    def check_generations(self, count: int, what: str) -> None:
        """TooManyGenerations when a request (`what` says how it counts) asks for more than one request may make."""
        limit = self.serving.max_generations_per_request
        if count > limit:
            raise TooManyGenerations(
                f"{what} asks for {count} generations; this server makes at most {limit} per request "
                "(serving.max_generations_per_request): lower n or send fewer"
            )

    def repairs(self, ns: list[int]) -> list[int]:
        """Repair rounds each question of one request (asked with n candidates each) may run:
        serving.max_repairs, or fewer where a round (n more generations) would take the request past
        serving.max_generations_per_request. Earlier questions get their rounds first."""
        spare = self.serving.max_generations_per_request - sum(ns)
        rounds = []
        for n in ns:
            allowed = min(self.serving.max_repairs, spare // n)
            spare -= allowed * n
            rounds.append(allowed)
        return rounds

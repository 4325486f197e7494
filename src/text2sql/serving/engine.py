"""One loaded model answering many callers: a queue and a micro-batcher in front of `generate`.

torch must not run one model from many threads at once, and on any device most of a batch's cost
is paid once per forward pass, not once per row. So callers only enqueue prompts; a single worker
thread takes the first waiting request, keeps collecting for at most `batch_wait_ms` (or until
`batch_size` are waiting) and runs them as ONE batched generate call. While a batch runs, new
requests queue up, and the next batch starts as soon as it ends, without waiting.

The worker also does all tokenizing and decoding, so the tokenizer is only ever used from one
thread. Results come back as `concurrent.futures.Future`s (`submit`) or awaitables (`generate`).

Admission is all or nothing: `reserve(k)` holds k of the `max_queue` slots at once or raises
EngineBusy with nothing queued, so a request is never half generated for a full queue. A slot counts
a generation from its admission until the worker takes it up (or its caller cancels it: a cancelled
generation frees its slot at once and is skipped, never generated).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from text2sql.errors import ConfigError
from text2sql.inference.generate import GREEDY, Generator, RawOutput, Sampling

log = logging.getLogger(__name__)

_STOP = object()


class EngineBusy(Exception):
    """The queue is full: the caller should retry later (HTTP 503)."""


class PromptTooLong(Exception):
    """The prompt leaves no room to generate within the model's context (HTTP 400)."""


@dataclass
class GenerationRequest:
    prompt: str  # the exact prompt text (PromptBuilder.prompt_text), tokenized by the worker
    max_new_tokens: int = 256
    sampling: Sampling = GREEDY
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    """The model's answer to one request, with real token counts for `usage`."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (max_new_tokens reached)


@dataclass
class EngineStats:
    requests: int = 0
    batches: int = 0
    dropped: int = 0  # generations cancelled while queued, skipped by the worker
    batch_sizes: Counter = field(default_factory=Counter)  # rows per generate call → how many calls

    @property
    def max_batch(self) -> int:
        return max(self.batch_sizes, default=0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "batches": self.batches,
            "dropped": self.dropped,
            "max_batch": self.max_batch,
            "batch_sizes": dict(sorted(self.batch_sizes.items())),
        }


class Reservation:
    """Queue slots held by one admitted caller: its generations are queued against them and are never
    refused midway. `release()` (or leaving the `with` block) hands back the slots not used."""

    def __init__(self, engine: Engine, slots: int):
        self._engine = engine
        self.left = slots

    def take(self) -> None:
        if self.left < 1:
            raise RuntimeError("every reserved slot is used; reserve as many as you submit")
        self.left -= 1

    def release(self) -> None:
        left, self.left = self.left, 0
        self._engine._free(left)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Engine:
    """A model behind a micro-batching queue. `start()` launches the worker; `close()` stops it.

    `generate_batch` runs requests directly on the caller's thread (for one-shot use such as
    `text2sql predict`); never call it while the worker runs.
    """

    def __init__(
        self,
        backend: Generator,
        builder: Any,
        *,
        context_length: int | None = None,
        batch_size: int = 16,
        batch_wait_ms: float = 10.0,
        max_queue: int = 1024,
    ):
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.backend = backend
        self.builder = builder  # the training-time PromptBuilder: its tokenizer and encoding rule
        self.tokenizer = builder.tokenizer
        self.context_length = context_length
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000.0
        self.stats = EngineStats()
        self.max_queue = max_queue
        # Unbounded: admission (`_waiting`, at most max_queue) bounds what is put in it.
        self._queue: queue.Queue = queue.Queue()
        self._waiting = 0  # generations admitted (reserved or queued) and not yet taken up by the worker
        self._admission = threading.Lock()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Engine:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, name="text2sql-engine", daemon=True)
                self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)
        # Requests still queued behind the stop will never run: tell their callers.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                self._free(1)
                item[1].set_exception(RuntimeError("the server is shutting down"))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ callers

    @property
    def waiting(self) -> int:
        """Generations admitted and not yet taken up by the worker (reserved slots included)."""
        with self._admission:
            return self._waiting

    def reserve(self, count: int) -> Reservation:
        """Hold `count` queue slots at once; EngineBusy, with nothing held, when they would pass max_queue."""
        with self._admission:
            if self._waiting + count > self.max_queue:
                raise EngineBusy(
                    f"{count} more generations would pass the queue of {self.max_queue} ({self._waiting} already waiting)"
                )
            self._waiting += count
        return Reservation(self, count)

    def _free(self, count: int) -> None:
        with self._admission:
            self._waiting -= count

    def submit(self, request: GenerationRequest, reservation: Reservation | None = None) -> Future:
        """Queue one request on a slot of `reservation` (else on a free slot: EngineBusy when there is
        none); the future resolves to a `Generation` (or raises PromptTooLong). Cancelling the future
        before the worker takes it up frees its slot and drops it."""
        if not self.running:
            raise RuntimeError("the engine is not running; call start() first")
        held = reservation if reservation is not None else self.reserve(1)
        held.take()
        future: Future = Future()
        future.add_done_callback(self._on_done)
        self._queue.put((request, future))
        return future

    def _on_done(self, future: Future) -> None:
        # Cancelled while queued: the worker will skip it, so its slot is free now.
        if future.cancelled():
            self._free(1)

    async def generate(self, request: GenerationRequest, reservation: Reservation | None = None) -> Generation:
        return await asyncio.wrap_future(self.submit(request, reservation))

    async def generate_many(
        self, requests: Sequence[GenerationRequest], reservation: Reservation | None = None
    ) -> list[Generation]:
        """Every request's generation, queued all at once (on `reservation`, else on slots reserved here:
        EngineBusy with nothing queued when they do not all fit). Cancelling the call drops those not
        yet taken up by the worker."""
        held = reservation if reservation is not None else self.reserve(len(requests))
        try:
            if held.left < len(requests):
                raise RuntimeError(f"{len(requests)} generations on a reservation with {held.left} slots left")
            futures = [self.submit(r, held) for r in requests]
        finally:
            if reservation is None:
                held.release()  # only the slots not taken
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    # ------------------------------------------------------------------ worker

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            deadline = time.monotonic() + self.batch_wait
            stop = False
            while len(batch) < self.batch_size:
                try:
                    # Whatever is already waiting joins at once; then wait out the window.
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            # A caller that gave up (client disconnected) cancelled its future: skip its prompt.
            live = [(r, f) for r, f in batch if f.set_running_or_notify_cancel()]
            self._free(len(live))  # the cancelled ones freed their slots when they were cancelled
            self.stats.dropped += len(batch) - len(live)
            if live:
                self._run(live)
            if stop:
                return

    def _run(self, batch: list[tuple[GenerationRequest, Future]]) -> None:
        try:
            results = self.generate_batch([r for r, _ in batch])
        except Exception as exc:
            if len(batch) > 1:
                # One bad request must not fail its neighbours: run each alone, so only it fails.
                log.warning("a batch of %d failed (%s); running its requests one by one", len(batch), exc)
                for item in batch:
                    self._run([item])
                return
            log.exception("generation failed")  # the caller gets the error; the worker keeps serving
            batch[0][1].set_exception(exc)
            return
        for (_, future), result in zip(batch, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    # ------------------------------------------------------------------ generation

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[Generation | PromptTooLong]:
        """Tokenize, generate (one backend call per distinct sampling setting) and decode."""
        ids = self._encode([r.prompt for r in requests])
        results: list[Generation | PromptTooLong | None] = [None] * len(requests)
        groups: dict[Sampling, list[int]] = {}
        budgets: list[int] = []
        for i, (request, prompt) in enumerate(zip(requests, ids)):
            budget = request.max_new_tokens
            if self.context_length is not None:
                room = self.context_length - len(prompt)
                if room < 1:
                    results[i] = PromptTooLong(
                        f"the prompt is {len(prompt)} tokens; this model reads at most {self.context_length}"
                    )
                    budget = 0
                budget = min(budget, room)  # answers near the context end stop with finish_reason length
            budgets.append(budget)
            if results[i] is None:
                groups.setdefault(request.sampling, []).append(i)
        for sampling, members in groups.items():
            # One call per group, as long as its longest request; shorter ones are cut below.
            longest = max(budgets[i] for i in members)
            outputs = self.backend.generate([ids[i] for i in members], longest, sampling)
            self.stats.batches += 1
            self.stats.batch_sizes[len(members)] += 1
            for i, output in zip(members, outputs):
                results[i] = self._finish(requests[i], len(ids[i]), output, budgets[i])
        self.stats.requests += len(requests)
        return results  # type: ignore[return-value]

    def _encode(self, prompts: list[str]) -> list[list[int]]:
        return self.builder.encode_prompts(prompts)

    def _finish(self, request: GenerationRequest, prompt_tokens: int, output: RawOutput, budget: int) -> Generation:
        tokens = output.token_ids[:budget]
        hit_eos = output.hit_eos and len(tokens) == len(output.token_ids)
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        stopped = False
        if request.stop:
            cut = _first_stop(text, request.stop)
            if cut is not None:
                text, stopped = text[:cut], True
                tokens = tokens[: _tokens_until_stop(self.tokenizer, tokens, request.stop)]
        finish = "stop" if (hit_eos or stopped or len(tokens) < budget) else "length"
        return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=len(tokens), finish_reason=finish)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    positions = [text.find(s) for s in stops if s]
    positions = [p for p in positions if p >= 0]
    return min(positions) if positions else None


def _tokens_until_stop(tokenizer: Any, tokens: list[int], stops: Sequence[str]) -> int:
    """The fewest leading tokens whose text already holds a stop string (what the model really had
    to generate before it could be stopped): a binary search, as holding one only becomes true."""
    lo, hi = 1, len(tokens)
    while lo < hi:
        mid = (lo + hi) // 2
        if _first_stop(tokenizer.decode(tokens[:mid], skip_special_tokens=True), stops) is not None:
            hi = mid
        else:
            lo = mid + 1
    return hi


def build_engine(
    im: Any, *, backend: str = "hf", batch_size: int = 16, batch_wait_ms: float = 10.0, max_queue: int = 1024
) -> Engine:
    """An engine over an `InferenceModel` from `load_for_inference` (weights loaded for "hf"; for
    "vllm" load it with `load_weights=False`: vLLM loads the weights itself)."""
    return Engine(
        im.generator(backend),
        im.builder,
        context_length=im.context_length(),
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        max_queue=max_queue,
    )

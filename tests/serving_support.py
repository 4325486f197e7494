"""Helpers for the serving tests: a uvicorn server in a thread, and a backend that answers from a script."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from text2sql.inference.generate import RawOutput, Sampling


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a background thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class ScriptedBackend:
    """Answers with `script(prompt_text)` instead of running a model: deterministic SQL for tests of
    the protocol, the repair loop and execution. Records every prompt and sampling setting."""

    def __init__(self, tokenizer, script: Callable[[str], str], delay: float = 0.0):
        self.tokenizer = tokenizer
        self.script = script
        self.delay = delay
        self.prompts: list[str] = []
        self.samplings: list[Sampling] = []
        self.calls = 0

    def generate(self, prompts, max_new_tokens: int, sampling: Sampling) -> list[RawOutput]:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)  # lets concurrent requests pile up into one batch
        outputs = []
        for ids in prompts:
            prompt = self.tokenizer.decode(ids)
            self.prompts.append(prompt)
            self.samplings.append(sampling)
            answer = self.tokenizer.encode(self.script(prompt), add_special_tokens=False)
            eos = [self.tokenizer.eos_token_id]
            outputs.append(
                RawOutput(answer + eos, hit_eos=True)
                if len(answer) < max_new_tokens
                else RawOutput(answer[:max_new_tokens], hit_eos=False)
            )
        return outputs

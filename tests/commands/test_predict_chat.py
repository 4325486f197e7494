"""`text2sql predict --chat`: a conversation in a real pseudo-terminal (line editing, the arrow-key history,
SQL and rows for each question, errors that do not end it), lines from a pipe, and one-line errors."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from cli_support import assert_one_line_error, run_cli
from openai_support import ScriptedEndpoint, question_of
from serving_support import running
from text2sql.data import bundled

AIRLINE = bundled.db_path("airline")
JFK = "SELECT flight_number FROM flights WHERE origin_code = 'JFK'"
JFK_COUNT = "SELECT COUNT(*) FROM flights WHERE origin_code = 'JFK'"
ALL_COUNT = "SELECT COUNT(*) FROM flights"


def script(body: dict) -> str:
    """The endpoint's answers: a follow-up only when the earlier JFK turn is in the prompt."""
    question = question_of(body)
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    if question.startswith("Remove"):
        return "DELETE FROM flights"
    if question == "How many are there?":
        return JFK_COUNT if f"SQL: {JFK}" in user else ALL_COUNT
    return JFK


def rows_of(sql: str) -> list[tuple]:
    with sqlite3.connect(f"file:{AIRLINE}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def endpoint():
    server = ScriptedEndpoint(script)
    with running(server.app()) as url:
        yield server, f"{url}/v1"


class Terminal:
    """A command on a pseudo-terminal: what it writes is read until a pattern shows up."""

    def __init__(self, args: list[str]):
        master, slave = os.openpty()
        env = {**os.environ, "TERM": "dumb", "INPUTRC": os.devnull, "OPENAI_API_KEY": "unused"}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.fd = master
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 90.0) -> str:
        """The output up to and including the first match of `pattern` (a regex) not read before."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                before, self.seen = self.seen[: found.end()], self.seen[found.end() :]
                return before
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.seen!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the command ended and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the command ended before {pattern!r}; it wrote {self.seen!r}")
                self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def ask(self, question: str) -> str:
        """Type a question at the prompt; the output up to the next prompt."""
        self.send(question + "\r")
        return self.expect(r"\n> ")

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.fd)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def chat_command(base_url: str) -> list[str]:
    return [sys.executable, "-m", "text2sql.cli", "predict", "--chat", "--db", "airline", "--model",
            "openai:scripted", "--base-url", base_url]  # fmt: skip


def test_a_conversation_in_a_terminal(endpoint):
    server, base_url = endpoint
    term = Terminal(chat_command(base_url))
    try:
        banner = term.expect(r"> ")
        assert "each follows up on the ones before" in banner

        out = term.ask("Which flights take off from JFK?")
        assert JFK in out and f"({len(rows_of(JFK))} rows)" in out

        out = term.ask("How many are there?")  # a follow-up: about JFK's flights
        [(jfk_flights,)] = rows_of(JFK_COUNT)
        assert JFK_COUNT in out and re.search(rf"\n{jfk_flights}\s*\n\(1 row\)", out)
        assert (
            "Previous questions:\nQ: Which flights take off from JFK?\nSQL: " + JFK
            in (server.requests[-1]["messages"][-1]["content"])
        )

        asked = server.count
        out = term.ask("\x1b[A")  # the up arrow brings the last question back (readline's history)
        assert JFK_COUNT in out and server.count == asked + 1
        assert question_of(server.requests[-1]) == "How many are there?"
        assert server.requests[-1]["messages"][-1]["content"].count("Q: ") == 2  # now after two turns

        out = term.ask("Remove the flights")  # fails to run: one error line, and the conversation goes on
        assert "DELETE FROM flights" in out and "error: the SQL failed:" in out and "Traceback" not in out

        assert "(a new conversation)" in term.ask("new")
        out = term.ask("How many are there?")
        [(every,)] = rows_of(ALL_COUNT)
        assert ALL_COUNT + "\n" in out.replace(JFK_COUNT, "") and re.search(rf"\n{every}\s*\n\(1 row\)", out)

        term.send("exit\r")
        assert term.wait() == 0
    finally:
        term.close()
    assert rows_of(ALL_COUNT) == [(every,)]  # the DELETE never ran


def test_end_of_input_leaves(endpoint):
    _, base_url = endpoint
    term = Terminal(chat_command(base_url))
    try:
        term.expect(r"> ")
        term.send("\x04")  # Ctrl-D
        assert term.wait() == 0
    finally:
        term.close()


def test_questions_from_a_pipe(capsys, monkeypatch, endpoint):
    _, base_url = endpoint
    monkeypatch.setattr(sys, "stdin", io.StringIO("Which flights take off from JFK?\n\nHow many are there?\n"))
    code, out, err = run_cli(capsys, *chat_command(base_url)[3:])
    assert code == 0 and err.startswith("Ask questions on airline")
    lines = out.splitlines()
    [(jfk_flights,)] = rows_of(JFK_COUNT)
    assert lines[0] == JFK and lines[-5] == JFK_COUNT  # the second question followed up on the first
    assert lines[-2:] == [str(jfk_flights), "(1 row)"]


def test_bad_chat_input_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", "--model", "tiny:llama", "--db", "airline", "--chat", "How many?")
    assert_one_line_error(code, err, "--chat reads its questions from the terminal")
    code, _, err = run_cli(capsys, "predict", "--model", "tiny:llama", "--db", "airline")
    assert_one_line_error(code, err, "no question", "--chat")
    code, _, err = run_cli(capsys, "predict", "--model", "tiny:llama", "--db", str(tmp_path / "none.sqlite"), "--chat")
    assert_one_line_error(code, err, "not found")
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE t (a INTEGER);\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "predict", "--model", "tiny:llama", "--schema", str(schema), "--chat", "--vote",
                           "--n", "3")  # fmt: skip
    assert_one_line_error(code, err, "--vote needs --db")

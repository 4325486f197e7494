"""Follow-up questions when serving: `/v1/chat/completions` reads the earlier turns of a chat as history,
`Answerer.answer(history=...)` and `predict`'s conversation put them in the prompt, and that prompt is the
prompt training built for the same conversation, token for token."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from types import SimpleNamespace

import pytest
from datasets import load_from_disk
from openai import OpenAI

from repo import FIXTURES
from serving_support import ScriptedBackend, running
from stage_support import prepare_with_model
from text2sql.config import ServingConfig, load_config
from text2sql.data import bundled
from text2sql.data.schema import schema_text
from text2sql.inference.generate import HFGenerator, RawOutput
from text2sql.inference.loading import load_for_inference
from text2sql.serving import questions
from text2sql.serving.answer_models import ServedModel
from text2sql.serving.answering import Answerer, Target
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.engine import Engine
from text2sql.serving.predict import Conversation, open_session

CHAT = FIXTURES / "chat_followups.jsonl"
AIRLINE = bundled.db_path("airline")
JFK = "SELECT flight_number FROM flights WHERE origin_code = 'JFK'"
LONGER = JFK + " AND duration_minutes > 300"
COUNT = "SELECT COUNT(*) FROM flights WHERE origin_code = 'JFK' AND duration_minutes > 300"
QUESTIONS = ("Which flights take off from JFK?", "Only those longer than 300 minutes.", "How many are there?")


def conversation_messages() -> list[dict[str, str]]:
    """The fixture's JFK conversation as a chat request: every message but the last answer."""
    record = json.loads(CHAT.read_text(encoding="utf-8").splitlines()[0])
    return record["messages"][:-1]


def script(prompt: str) -> str:
    """Answers by what the prompt says: a follow-up only when the earlier turns are in it."""
    if "Question: How many are there?" in prompt:
        return COUNT if f"SQL: {LONGER}" in prompt else "SELECT COUNT(*) FROM flights"
    if "Question: Only those longer than 300 minutes." in prompt:
        return LONGER if f"SQL: {JFK}" in prompt else "SELECT flight_number FROM flights WHERE duration_minutes > 300"
    return JFK


class RecordingBackend(ScriptedBackend):
    """The scripted backend, keeping the token ids of every prompt as the model would get them."""

    def __init__(self, tokenizer, script):
        super().__init__(tokenizer, script)
        self.ids: list[list[int]] = []

    def generate(self, prompts, max_new_tokens, sampling):
        self.ids.extend(list(p) for p in prompts)
        return super().generate(prompts, max_new_tokens, sampling)


@pytest.fixture(scope="module")
def trained_prompt(merged_model, tmp_path_factory) -> list[int]:
    """The prompt ids `prepare` made for the conversation's third turn, as training reads them."""
    out = tmp_path_factory.mktemp("run") / "chat"
    cfg = load_config(
        None,
        [f"output_dir={out}", f"model.name_or_path={merged_model}", f"data.train={CHAT}", f"data.validation={CHAT}",
         f"data.test={CHAT}", f"data.db_dir={bundled.database_dir()}"],
    )  # fmt: skip
    train = load_from_disk(str(prepare_with_model(cfg).path))["train"]
    row = next(r for r in train if r["id"] == "chat-jfk-t3")
    return row["input_ids"][: row["prompt_length"]]


@pytest.fixture(scope="module")
def served(merged_model):
    im = load_for_inference(str(merged_model), load_weights=False)
    backend = RecordingBackend(im.tokenizer, script)
    engine = Engine(backend, im.builder, context_length=1024, batch_size=4, batch_wait_ms=5)
    settings = ServerSettings(model_name="scripted", serving=ServingConfig(max_tokens=64))
    with running(create_app(engine, settings)) as url:
        yield SimpleNamespace(
            backend=backend,
            builder=im.builder,
            engine=engine,
            client=OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0),
        )
    engine.close()


def test_a_chat_request_reads_its_earlier_turns_as_history():
    messages = [(m["role"], m["content"]) for m in conversation_messages()]
    question = questions.from_messages(messages)
    assert question.question == "How many are there?"
    assert question.history == [(QUESTIONS[0], JFK), (QUESTIONS[1], LONGER)]  # the reasoning is not SQL
    lone = questions.from_messages([("user", "How many flights?")])
    assert lone.history == []
    unanswered = questions.from_messages([("user", "Hello?"), ("user", "How many flights?")])
    assert unanswered.history == []  # a question nobody answered is no turn


def test_the_openai_client_gets_follow_up_answers(served):
    messages = conversation_messages()
    out = served.client.chat.completions.create(model="m", messages=messages, extra_body={"db_id": "airline"})
    assert out.choices[0].message.content == COUNT
    assert (
        f"Previous questions:\nQ: {QUESTIONS[0]}\nSQL: {JFK}\nQ: {QUESTIONS[1]}\nSQL: {LONGER}"
        in (served.backend.prompts[-1])
    )
    # Without the earlier turns the same question is a question of its own.
    alone = served.client.chat.completions.create(model="m", messages=[messages[-1]], extra_body={"db_id": "airline"})
    assert alone.choices[0].message.content == "SELECT COUNT(*) FROM flights"
    assert "Previous questions" not in served.backend.prompts[-1]


def test_served_prompt_is_the_training_prompt_token_for_token(served, trained_prompt):
    served.client.chat.completions.create(model="m", messages=conversation_messages(), extra_body={"db_id": "airline"})
    assert served.backend.ids[-1] == trained_prompt


def test_the_answerer_takes_history(served):
    answerer = Answerer(ServedModel(served.engine))
    target = Target(schema_text(AIRLINE), str(AIRLINE), "airline")
    history = [(QUESTIONS[0], JFK), (QUESTIONS[1], LONGER)]
    answer = asyncio.run(answerer.answer(QUESTIONS[2], target, max_tokens=64, execute=True, history=history))
    assert answer.sql == COUNT and answer.result is not None and answer.result.ok
    assert served.backend.prompts[-1] == served.builder.prompt_text(QUESTIONS[2], schema_text(AIRLINE), None, history)


def test_predict_conversation_prompt_is_the_training_prompt(monkeypatch, merged_model, trained_prompt):
    im = load_for_inference(str(merged_model), load_weights=False)
    seen: list[list[int]] = []

    def fake_generate(self, prompts, max_new_tokens, sampling=None, **kwargs):
        outputs = []
        for ids in prompts:
            seen.append(list(ids))
            answer = script(im.tokenizer.decode(ids))
            outputs.append(
                RawOutput(
                    im.tokenizer.encode(answer, add_special_tokens=False) + [im.tokenizer.eos_token_id], hit_eos=True
                )
            )
        return outputs

    monkeypatch.setattr(HFGenerator, "generate", fake_generate)
    chat = Conversation(open_session(str(merged_model), db="airline"), execute=True)
    answers = [chat.ask(q) for q in QUESTIONS]
    assert [a.sql for a in answers] == [JFK, LONGER, COUNT]
    assert seen[-1] == trained_prompt
    with sqlite3.connect(AIRLINE) as conn:
        assert answers[-1].result.rows == conn.execute(COUNT).fetchall()
    chat.restart()
    assert chat.ask(QUESTIONS[2]).sql == "SELECT COUNT(*) FROM flights"  # a new conversation

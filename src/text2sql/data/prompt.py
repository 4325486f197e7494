"""The one prompt builder: training, evaluation, `predict` and `serve` all turn examples into model
input here, so the text a model is trained on and the text it is asked at inference cannot drift
apart (the most common silent failure in this field).

Decoder models: the conversation [system, user] is rendered with a chat template and
`add_generation_prompt=True`; that text is the prompt. The target (SQL, or reasoning followed by a
```sql block) is tokenized on its own and followed by EOS. Prompt and target are tokenized
separately and concatenated, so the prompt tokens at training time are exactly the tokens an
inference call produces for the same example. Labels are -100 on every prompt token.

Seq2seq models (T5): the encoder input is the user message; the decoder target is the SQL.

A follow-up question carries the earlier turns of its conversation (`Example.history`): the last
`prompt.history_turns` of them go into the user message, oldest first, between the hint and the question:

    Previous questions:
    Q: Which flights leave from JFK?
    SQL: SELECT flight_number FROM flights WHERE origin_code = 'JFK'
    Q: Only those in March.
    SQL: SELECT ...

    Question: How many are there?

Training rows hold the gold SQL of the earlier turns; `predict --chat` and the chat route hold the SQL
that was answered. When the prompt is over budget, older turns are dropped before the schema is pruned
(`text2sql.data.context`).

The user message (question, evidence, schema text, stored values, descriptions, earlier turns) is text
from users and databases: only the template around it may hold special tokens. `encode_prompts` finds that frame in
each prompt text and, when the user message holds the string of a special or added token (`</s>`,
`<|im_start|>`), encodes the message as plain text between the frame's tokens
(`text2sql.data.control_tokens`). Every other prompt is encoded as one string, exactly as before.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from text2sql.config import DEFAULT_SYSTEM_PROMPT, Config, PromptConfig
from text2sql.data.context import FittedPrompt, SchemaSettings, fit_prompts
from text2sql.data.control_tokens import ControlTokens
from text2sql.data.example import Example, Turn
from text2sql.data.templates import DEFAULT_TEMPLATE_BY_MODEL_TYPE, get_template
from text2sql.errors import DataError
from text2sql.sql.targets import DISPLAY_NAMES, dialect_of

IGNORE_INDEX = -100
# How prompt text becomes token ids; prepared data made under an earlier rule is prepared again.
# 2: text from databases and users is tokenized as plain text, never as special tokens.
PROMPT_ENCODING = 2
_MARKER = "\x00USER\x00"  # stands for the user message when the template's frame is found
# Earlier turns of a conversation a prompt shows at most, unless prompt.history_turns says otherwise.
HISTORY_TURNS: int = PromptConfig.model_fields["history_turns"].default


def history_text(history: Sequence[Turn]) -> str:
    """The earlier turns as the user message shows them, oldest first (see the module docstring); ""
    when there are none."""
    if not history:
        return ""
    lines = ["Previous questions:"]
    for question, sql in history:
        lines += [f"Q: {question.strip()}", f"SQL: {sql.strip()}"]
    return "\n".join(lines)


def user_message(question: str, schema: str = "", evidence: str | None = None, history: Sequence[Turn] = ()) -> str:
    """The user turn: the schema, the hint, the earlier turns of the conversation, then the question."""
    parts = []
    if schema.strip():
        parts.append(f"Database schema:\n{schema.strip()}")
    if evidence and evidence.strip():
        parts.append(f"Hint: {evidence.strip()}")
    if history:
        parts.append(history_text(history))
    parts.append(f"Question: {question.strip()}")
    return "\n\n".join(parts)


def target_text(example: Example, keep_reasoning: bool = True) -> str:
    """What the model learns to answer: the SQL, or reasoning then a ```sql block."""
    if keep_reasoning and example.reasoning and example.reasoning.strip():
        return f"{example.reasoning.strip()}\n\n```sql\n{example.sql.strip()}\n```"
    return example.sql.strip()


def resolve_dialect(cfg: Config) -> str:
    """The SQL dialect a run's prompts name: prompt.dialect, else data.target_dialect, else the
    dialect of data.db or of data.databases, else SQLite's."""
    if cfg.prompt.dialect != "auto":
        return cfg.prompt.dialect
    if cfg.data.target_dialect:
        return cfg.data.target_dialect
    for target in (cfg.data.db, *cfg.data.databases.values()):
        if target:
            return dialect_of(target.replace("{db_id}", "x"))
    return "sqlite"


def prompt_budget(cfg: Config, kind: str) -> int:
    """Most prompt tokens a run's model reads: data.max_prompt_tokens, else, for a decoder, what
    data.max_length leaves for the answer's evaluation.max_new_tokens (at most a quarter of it is
    set aside: a long answer limit must not starve short prompts), for seq2seq data.max_source_length."""
    d = cfg.data
    if d.max_prompt_tokens is not None:
        return d.max_prompt_tokens
    if kind == "seq2seq":
        return d.max_source_length
    return d.max_length - min(cfg.evaluation.max_new_tokens, d.max_length // 4)


@dataclass(frozen=True)
class Frame:
    """The template's text before and after the user message. `verbatim`: the template inserts any
    message unchanged, so prompts are spliced, not rendered."""

    before: str
    after: str
    verbatim: bool


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    prompt: FittedPrompt | None = None  # how the prompt was fitted (pruned, within budget)


class PromptBuilder:
    """Renders and tokenizes prompts for one tokenizer and model kind.

    `kind` is "decoder" or "seq2seq"; `template` is "auto" (the tokenizer's own chat template when
    it has one, else the built-in one for `model_type`) or a built-in template name. `history_turns`:
    the most earlier turns of a conversation a prompt shows (`fit`).
    """

    def __init__(
        self,
        tokenizer: Any,
        kind: str,
        *,
        template: str = "auto",
        system: str = DEFAULT_SYSTEM_PROMPT,
        model_type: str | None = None,
        keep_reasoning: bool = True,
        dialect: str = "sqlite",
        schema: SchemaSettings | None = None,
        history_turns: int = HISTORY_TURNS,
    ):
        if kind not in ("decoder", "seq2seq"):
            raise ValueError(f"kind must be 'decoder' or 'seq2seq', not {kind!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.dialect = dialect
        # Not str.format: a user's system prompt may hold other braces.
        self.system = system.replace("{dialect}", DISPLAY_NAMES.get(dialect, dialect))
        self.keep_reasoning = keep_reasoning
        # Schema text beyond the row's own (pruning to a budget, value hints) needs these settings.
        self.schema = schema or SchemaSettings()
        self.history_turns = history_turns
        self.template_name, self.chat_template = self._resolve_template(template, model_type)
        self._system_in_template = True
        self._frames: dict[bool, Frame | None] = {}  # by _system_in_template
        self._expected: dict[bool, list[int]] = {}
        self._fast_ids: bool | None = None

    @classmethod
    def from_config(cls, tokenizer: Any, kind: str, model_type: str | None, cfg: Config) -> PromptBuilder:
        """The builder for a run's `prompt` settings: what prepare, training callbacks and inference
        share, so that they render the same prompts."""
        return cls(
            tokenizer,
            kind,
            template=cfg.prompt.template,
            system=cfg.prompt.system,
            model_type=model_type,
            keep_reasoning=cfg.data.keep_reasoning,
            dialect=resolve_dialect(cfg),
            schema=SchemaSettings(
                cfg.data.schema_format, cfg.data.schema_sample_rows, cfg.data.value_hints, prompt_budget(cfg, kind)
            ),
            history_turns=cfg.prompt.history_turns,
        )

    def _resolve_template(self, template: str, model_type: str | None) -> tuple[str, str | None]:
        if self.kind == "seq2seq":
            return "seq2seq", None
        if template == "auto":
            own = getattr(self.tokenizer, "chat_template", None)
            if own:
                return "tokenizer", None
            template = DEFAULT_TEMPLATE_BY_MODEL_TYPE.get(model_type or "", "plain")
        return template, get_template(template)

    # ------------------------------------------------------------------ text

    def messages(
        self, question: str, schema: str = "", evidence: str | None = None, history: Sequence[Turn] = ()
    ) -> list[dict[str, str]]:
        return self._conversation(user_message(question, schema, evidence, history))

    def _conversation(self, user: str) -> list[dict[str, str]]:
        if not self.system:
            return [{"role": "user", "content": user}]
        if not self._system_in_template:
            return [{"role": "user", "content": f"{self.system}\n\n{user}"}]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def prompt_text(
        self, question: str, schema: str = "", evidence: str | None = None, history: Sequence[Turn] = ()
    ) -> str:
        """The exact text given to the model for one question, after the earlier turns `history` (all of
        them: `fit` decides how many a prompt shows)."""
        user = user_message(question, schema, evidence, history)
        if self.kind == "seq2seq":
            return user
        try:
            return self._render(user)
        except Exception as exc:  # jinja2 TemplateError: some templates reject a system turn
            if self._system_in_template and "system" in str(exc).lower():
                self._system_in_template = False
                return self._render(user)
            raise

    def _render(self, user: str) -> str:
        frame = self._frame()
        if frame is not None and frame.verbatim:
            return frame.before + user + frame.after
        text = self._render_jinja(self._conversation(user))
        if frame is not None and text == frame.before + user + frame.after:
            return text  # `encode_prompts` finds the user message in it
        if self.controls.found_in(user):
            # The template changes the message, so the message cannot be told apart from the frame when
            # encoding: its special-token strings are split before rendering instead.
            return self._render_jinja(self._conversation(self.controls.neutralise(user)))
        return text

    def _render_jinja(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def _frame(self) -> Frame | None:
        """The text before and after the user message for the current turn layout (None when the
        template does not place the message once).

        Rendering jinja per row costs ~100 µs; for most templates the prompt is a fixed frame around the
        user message, so prompts are spliced. Checked on two probes: a template that transforms the
        content (trims it, escapes it) renders each row, and its frame only serves to find the message.
        """
        layout = self._system_in_template
        if layout in self._frames:
            return self._frames[layout]
        self._frames[layout] = None
        try:
            rendered = self._render_jinja(self._conversation(_MARKER))
        except Exception:
            return None
        if rendered.count(_MARKER) != 1:
            return None
        before, after = rendered.split(_MARKER)
        verbatim = all(
            self._render_jinja(self._conversation(probe)) == before + probe + after
            for probe in (" Question: a 'b'  \n", "x\n\nCREATE TABLE t (a)")
        )
        self._frames[layout] = Frame(before, after, verbatim)
        return self._frames[layout]

    def fit(self, examples: Sequence[Example], *, gold: bool = False) -> list[FittedPrompt]:
        """Each example's prompt, its schema pruned to the budget and with value hints as the
        settings say, after its last `history_turns` earlier turns (`text2sql.data.context`);
        `gold=True` (training) also keeps what the SQL uses."""
        return fit_prompts(
            examples,
            self.schema,
            self.prompt_text,
            self.encode_prompts,
            gold=gold,
            dialect=self.dialect,
            history_turns=self.history_turns,
        )

    def example_prompt(self, example: Example) -> str:
        """The prompt an inference call gives the model for `example`."""
        return self.fit([example])[0].text

    # ------------------------------------------------------------------ tokens

    @functools.cached_property
    def controls(self) -> ControlTokens:
        """The tokenizer's special and added tokens, which only the template may write."""
        return ControlTokens(self.tokenizer)

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """The ids of prompt texts from `prompt_text`: the template's own special tokens as tokens,
        the user message as plain text (see the module docstring). Decoder prompts carry their
        special tokens in the rendered text (as apply_chat_template with tokenize=True does); T5
        inputs get the tokenizer's own </s>. A text outside the template's frame is encoded whole
        when it holds no special token, and refused (DataError) when it holds others than the
        template's own."""
        texts = list(prompts)
        expected = self._expected_controls()
        ids = self._ids(texts, add_special=self.kind == "seq2seq")
        for n, text in enumerate(texts):
            span = self._user_span(text)
            if span is not None and self.controls.found_in(text, *span):
                ids[n] = self._encode_plain_user(text, span)
            elif (found := self.controls.sequence(ids[n])) != expected:
                # Another spelling of a token string (a normalizer's), or tokens the frame cannot explain.
                if span is None and found:
                    raise DataError(
                        "a prompt holds text the tokenizer reads as one of its special tokens, and the chat "
                        "template changes the user message so it cannot be kept plain; remove that text from the "
                        "question, schema or data, or use a template that inserts the message as it is"
                    )
                if span is not None:
                    ids[n] = self._encode_plain_user(text, span)
        return ids

    def _user_span(self, text: str) -> tuple[int, int] | None:
        """Where the user message lies in a prompt text: all of it for seq2seq, inside the template's
        frame for decoders; None when the text is not in the frame."""
        if self.kind == "seq2seq":
            return 0, len(text)
        frame = self._frame()
        if frame is None or len(text) < len(frame.before) + len(frame.after):
            return None
        if not (text.startswith(frame.before) and text.endswith(frame.after)):
            return None
        return len(frame.before), len(text) - len(frame.after)

    def _expected_controls(self) -> list[int]:
        """The control token ids a prompt holds when its user message holds none: the template's own
        (for T5, the </s> the tokenizer appends)."""
        if self._system_in_template not in self._expected:
            text = self.prompt_text("x")  # also settles whether the template takes a system turn
            ids = self._ids([text], add_special=self.kind == "seq2seq")[0]
            self._expected[self._system_in_template] = self.controls.sequence(ids)
        return self._expected[self._system_in_template]

    def _encode_plain_user(self, text: str, span: tuple[int, int]) -> list[int]:
        """The frame's text with its tokens, the user message between as plain text."""
        start, end = span
        head, user, tail = text[:start], text[start:end], text[end:]
        ids = self._ids([head], add_special=False)[0] if head else []
        ids += self.controls.plain_ids(user, continued=bool(head))
        if tail:
            ids += self._continued(tail)
        if self.kind == "seq2seq":
            ids = self._added_around(ids)
        if self.controls.sequence(ids) != self._expected_controls():
            raise DataError(
                "a prompt's user message cannot be encoded without the tokenizer's special tokens; remove the "
                "special-token text from the question, schema or data"
            )
        return ids

    def _continued(self, text: str) -> list[int]:
        """Trusted text that follows other text: encoded after a newline that is then dropped, so a
        SentencePiece tokenizer adds no start-of-text prefix space."""
        newline = self._ids(["\n"], add_special=False)[0]
        ids = self._ids(["\n" + text], add_special=False)[0]
        if newline and ids[: len(newline)] == newline:
            return ids[len(newline) :]
        return self._ids([text], add_special=False)[0]

    def _added_around(self, ids: list[int]) -> list[int]:
        """`ids` with what the tokenizer adds around every input (T5's </s>)."""
        full = self._ids(["x"], add_special=True)[0]
        bare = self._ids(["x"], add_special=False)[0]
        for k in range(len(full) - len(bare) + 1):
            if full[k : k + len(bare)] == bare:
                return full[:k] + ids + full[k + len(bare) :]
        raise DataError("the tokenizer changes the text it wraps in special tokens; its inputs cannot be kept plain")

    def encode_targets(self, targets: Sequence[str]) -> list[list[int]]:
        if self.kind == "seq2seq":
            return self._ids(list(targets), add_special=True, target=True)
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no EOS token; set one so generation knows where SQL ends")
        return [seq + [eos] for seq in self._ids(list(targets), add_special=False)]

    def _ids(self, texts: list[str], *, add_special: bool, target: bool = False) -> list[list[int]]:
        if self._use_backend():
            encodings = self.tokenizer.backend_tokenizer.encode_batch_fast(texts, add_special_tokens=add_special)
            return [e.ids for e in encodings]
        if target:
            return self.tokenizer(text_target=texts, add_special_tokens=add_special)["input_ids"]
        return self.tokenizer(texts, add_special_tokens=add_special)["input_ids"]

    def _use_backend(self) -> bool:
        """Call the Rust tokenizer directly (skips ~40% Python overhead) when it gives the same ids."""
        if self._fast_ids is None:
            backend = getattr(self.tokenizer, "backend_tokenizer", None)
            probe = ['Database schema:\nCREATE TABLE "naïve" (a)\n\nQuestion: Zoë\'s café?', "SELECT 1"]
            self._fast_ids = False
            if backend is not None and hasattr(backend, "encode_batch_fast"):
                for add_special in (False, True):
                    fast = [e.ids for e in backend.encode_batch_fast(probe, add_special_tokens=add_special)]
                    if fast != self.tokenizer(probe, add_special_tokens=add_special)["input_ids"]:
                        return False
                self._fast_ids = True
        return self._fast_ids

    def encode_batch(self, examples: Sequence[Example], *, gold: bool = False) -> list[Encoded]:
        prompts = self.fit(examples, gold=gold)
        targets = self.encode_targets([target_text(e, self.keep_reasoning) for e in examples])
        return [self._join(p, t) for p, t in zip(prompts, targets)]

    def encode(self, example: Example) -> Encoded:
        return self.encode_batch([example])[0]

    def _join(self, fitted: FittedPrompt, target: list[int]) -> Encoded:
        prompt = fitted.ids
        if self.kind == "seq2seq":
            return Encoded(input_ids=prompt, labels=target, prompt_length=len(prompt), prompt=fitted)
        return Encoded(
            input_ids=prompt + target,
            labels=[IGNORE_INDEX] * len(prompt) + target,
            prompt_length=len(prompt),
            prompt=fitted,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "template": self.template_name,
            "system": self.system,
            "dialect": self.dialect,
            "schema_budget": self.schema.budget,
            "value_hints": self.schema.value_hints,
            "history_turns": self.history_turns,
        }

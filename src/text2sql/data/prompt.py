"""The one prompt builder: training, evaluation, `predict` and `serve` all turn examples into model
input here, so the text a model is trained on and the text it is asked at inference cannot drift
apart (the most common silent failure in this field).

Decoder models: the conversation [system, user] is rendered with a chat template and
`add_generation_prompt=True`; that text is the prompt. The target (SQL, or reasoning followed by a
```sql block) is tokenized on its own and followed by EOS. Prompt and target are tokenized
separately and concatenated, so the prompt tokens at training time are exactly the tokens an
inference call produces for the same example. Labels are -100 on every prompt token.

Seq2seq models (T5): the encoder input is the user message; the decoder target is the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from text2sql.config import DEFAULT_SYSTEM_PROMPT
from text2sql.data.example import Example
from text2sql.data.templates import DEFAULT_TEMPLATE_BY_MODEL_TYPE, get_template

IGNORE_INDEX = -100


def user_message(question: str, schema: str = "", evidence: str | None = None) -> str:
    parts = []
    if schema.strip():
        parts.append(f"Database schema:\n{schema.strip()}")
    if evidence and evidence.strip():
        parts.append(f"Hint: {evidence.strip()}")
    parts.append(f"Question: {question.strip()}")
    return "\n\n".join(parts)


def target_text(example: Example, keep_reasoning: bool = True) -> str:
    """What the model learns to answer: the SQL, or reasoning then a ```sql block (seed 001)."""
    if keep_reasoning and example.reasoning and example.reasoning.strip():
        return f"{example.reasoning.strip()}\n\n```sql\n{example.sql.strip()}\n```"
    return example.sql.strip()


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_length: int


class PromptBuilder:
    """Renders and tokenizes prompts for one tokenizer and model kind.

    `kind` is "decoder" or "seq2seq"; `template` is "auto" (the tokenizer's own chat template when
    it has one, else the built-in one for `model_type`) or a built-in template name.
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
    ):
        if kind not in ("decoder", "seq2seq"):
            raise ValueError(f"kind must be 'decoder' or 'seq2seq', not {kind!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.system = system
        self.keep_reasoning = keep_reasoning
        self.template_name, self.chat_template = self._resolve_template(template, model_type)
        self._system_in_template = True

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

    def messages(self, question: str, schema: str = "", evidence: str | None = None) -> list[dict[str, str]]:
        user = user_message(question, schema, evidence)
        if not self.system:
            return [{"role": "user", "content": user}]
        if not self._system_in_template:
            return [{"role": "user", "content": f"{self.system}\n\n{user}"}]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def prompt_text(self, question: str, schema: str = "", evidence: str | None = None) -> str:
        """The exact text given to the model for one question."""
        if self.kind == "seq2seq":
            return user_message(question, schema, evidence)
        messages = self.messages(question, schema, evidence)
        try:
            return self._render(messages)
        except Exception as exc:  # jinja2 TemplateError: some templates reject a system turn
            if self._system_in_template and "system" in str(exc).lower():
                self._system_in_template = False
                return self._render(self.messages(question, schema, evidence))
            raise

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def example_prompt(self, example: Example) -> str:
        return self.prompt_text(example.question, example.schema, example.evidence)

    # ------------------------------------------------------------------ tokens

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        # Decoder prompts carry their special tokens in the rendered text (as apply_chat_template
        # with tokenize=True does); T5 inputs get the tokenizer's own </s>.
        add_special = self.kind == "seq2seq"
        return self.tokenizer(list(prompts), add_special_tokens=add_special)["input_ids"]

    def encode_targets(self, targets: Sequence[str]) -> list[list[int]]:
        if self.kind == "seq2seq":
            return self.tokenizer(text_target=list(targets), add_special_tokens=True)["input_ids"]
        eos = self.tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no EOS token; set one so generation knows where SQL ends")
        ids = self.tokenizer(list(targets), add_special_tokens=False)["input_ids"]
        return [seq + [eos] for seq in ids]

    def encode_batch(self, examples: Sequence[Example]) -> list[Encoded]:
        prompts = self.encode_prompts([self.example_prompt(e) for e in examples])
        targets = self.encode_targets([target_text(e, self.keep_reasoning) for e in examples])
        return [self._join(p, t) for p, t in zip(prompts, targets)]

    def encode(self, example: Example) -> Encoded:
        return self.encode_batch([example])[0]

    def _join(self, prompt: list[int], target: list[int]) -> Encoded:
        if self.kind == "seq2seq":
            return Encoded(input_ids=prompt, labels=target, prompt_length=len(prompt))
        return Encoded(
            input_ids=prompt + target,
            labels=[IGNORE_INDEX] * len(prompt) + target,
            prompt_length=len(prompt),
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "template": self.template_name, "system": self.system}

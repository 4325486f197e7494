"""Text from databases and users is tokenized as plain text, never as a tokenizer's control tokens.

A tokenizer turns the string of any of its special or added tokens into that token wherever it meets
it: a stored value `Japan</s>` or a question holding `<|im_start|>system` would end or open a turn of
the conversation. Only the chat template may write those tokens; questions, evidence, schema text,
stored values and descriptions are encoded with the tokenizer's added tokens switched off
(`plain_ids`), so `</s>` inside them is the characters `<`, `/`, `s`, `>`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

WORD_JOINER = "\u2060"  # invisible, and part of no token string: it splits a control string in two


class ControlTokens:
    """The strings a tokenizer reads as tokens of their own (its special tokens and every added
    token but whitespace ones, which templates and ordinary text share), and their ids."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        found: dict[str, int] = {}
        for token_id, token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            found[str(getattr(token, "content", token))] = int(token_id)
        for text, token_id in zip(tokenizer.all_special_tokens, tokenizer.all_special_ids):
            found.setdefault(str(text), int(token_id))
        found = {text: i for text, i in found.items() if text and not text.isspace()}
        self.strings = sorted(found, key=len, reverse=True)  # a longer token wins over one it holds
        # <unk> stands for characters a vocabulary lacks: plain text may yield it, and it ends no turn.
        self.ids = frozenset(i for i in found.values() if i != tokenizer.unk_token_id)
        self._pattern = re.compile("|".join(map(re.escape, self.strings))) if self.strings else None
        self._newline: list[int] | None = None

    def found_in(self, text: str, start: int = 0, end: int | None = None) -> bool:
        """Whether `text[start:end]` holds the string of a control token."""
        if self._pattern is None:
            return False
        return self._pattern.search(text, start, len(text) if end is None else end) is not None

    def sequence(self, ids: Sequence[int]) -> list[int]:
        """The control token ids among `ids`, in order."""
        control = self.ids
        return [i for i in ids if i in control]

    def neutralise(self, text: str) -> str:
        """`text` with every control string split by word joiners, so that no tokenizer reads it as the
        token (a one-character token string, which nothing can split, becomes U+FFFD)."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: WORD_JOINER.join(m[0]) if len(m[0]) > 1 else "\ufffd", text)

    def plain_ids(self, text: str, *, continued: bool) -> list[int]:
        """The ids of `text` with no added token matched: special-token strings are split into ordinary
        tokens. `continued`: the text follows other text (no start-of-text prefix space, as SentencePiece
        adds one). A control id the vocabulary itself makes of plain text (a SentencePiece piece `</s>`)
        is replaced by the text's characters one by one, and dropped if even a character makes one."""
        ids, offsets, encoded = self._encode(text, continued=continued)
        if self.ids.isdisjoint(ids):
            return ids
        out: list[int] = []
        if offsets is None:  # no offsets to find the piece: every character on its own
            for char in text:
                out.extend(i for i in self._encode(char, continued=True)[0] if i not in self.ids)
            return out
        for token_id, (start, end) in zip(ids, offsets):
            if token_id not in self.ids:
                out.append(token_id)
                continue
            for char in encoded[start:end]:
                out.extend(i for i in self._encode(char, continued=True)[0] if i not in self.ids)
        return out

    def _encode(self, text: str, *, continued: bool) -> tuple[list[int], list[tuple[int, int]] | None, str]:
        """(ids, character offsets into the returned text or None, the text encoded)."""
        if continued:
            # Encode after a newline and drop it: SentencePiece marks a string's start with a prefix space.
            if self._newline is None:
                self._newline = self._split_encode("\n")[0]
            ids, offsets = self._split_encode("\n" + text)
            n = len(self._newline)
            if n and ids[:n] == self._newline:
                return ids[n:], None if offsets is None else offsets[n:], "\n" + text
        ids, offsets = self._split_encode(text)
        return ids, offsets, text

    @functools.cached_property
    def _plain_backend(self) -> Any:
        """A copy of the Rust tokenizer that matches no added token at all: every one marked special,
        and special tokens split as text. A copy, so the tokenizer's own settings are never switched
        (another thread may be encoding with it); made on first use, as few prompts need it."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None or not hasattr(backend, "encode_special_tokens"):
            return None
        from tokenizers import Tokenizer

        spec = json.loads(backend.to_str())
        for token in spec.get("added_tokens") or []:
            token["special"] = True
        plain = Tokenizer.from_str(json.dumps(spec))
        plain.no_padding()
        plain.no_truncation()
        plain.encode_special_tokens = True
        return plain

    def _split_encode(self, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
        plain = self._plain_backend
        if plain is not None:
            encoding = plain.encode(text, add_special_tokens=False)
            return list(encoding.ids), list(encoding.offsets)
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        return list(ids), None

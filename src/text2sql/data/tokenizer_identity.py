"""What identifies a tokenizer: prepared token ids are valid only for the tokenizer that made them, and
a model folder moved or renamed keeps its tokenizer, so the identity is its content, not its path."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Identifies a tokenizer by vocabulary, special tokens and chat template (not by its path)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    digest.update(str(getattr(tokenizer, "chat_template", "") or "").encode())
    return digest.hexdigest()[:16]

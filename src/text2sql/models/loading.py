"""Resolve a model name to something transformers can load, and load its config, tokenizer and model.

A model name is one of:

- `tiny:<arch>[?options]`: a tiny model built locally and cached (see `text2sql.models.tiny`);
- a `.gguf` file (local, gs://, s3://) or `smollm2-135m-instruct`: converted once into a cached
  folder (`text2sql.models.gguf`);
- a local directory holding a saved model;
- `gs://...` or `s3://...`: a remote directory, downloaded once into the local cache (`text2sql.storage`);
- `projects/P/locations/L/models/ID[@VERSION]`: a Vertex AI Model Registry model, its artifact folder
  fetched the same way (`text2sql.models.registry`);
- anything else: a Hugging Face hub id such as `TinyLlama/TinyLlama-1.1B-Chat-v1.0`.

Every failure to find or load a model is a `ConfigError` whose one-line message names the model and
the fix. transformers is imported inside the functions to keep CLI start-up fast.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.errors import ConfigError, first_line
from text2sql.models.gguf import gguf_model_path, is_gguf
from text2sql.models.registry import artifact_uri, parse_model_resource
from text2sql.models.tiny import tiny_model_path
from text2sql.paths import is_hub_id
from text2sql.storage import StorageError, fetch

log = logging.getLogger("text2sql.models")

KINDS = ("decoder", "seq2seq")
REMOTE_SCHEMES = ("gs", "s3")

# 'name' or 'namespace/name': huggingface_hub's REPO_ID_REGEX, without importing huggingface_hub.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def resolve_model(name_or_path: str) -> str:
    """Turn a model name into a local directory or a hub id that `from_pretrained` accepts.

    `tiny:` specs are built (once) and give their cache directory; an existing local directory gives
    its absolute path; a hub id is returned unchanged. A path that cannot be a hub id and does not
    exist, or a remote URL, raises ConfigError.
    """
    name = str(name_or_path).strip()
    if not name:
        raise ConfigError("the model name is empty: give a hub id, a local directory or tiny:<arch>")
    if name.startswith("tiny:"):
        return str(tiny_model_path(name))
    if is_gguf(name):
        return str(gguf_model_path(name))
    registered = parse_model_resource(name)
    if registered is not None:  # the Vertex AI Model Registry: its artifact folder, through the cache
        uri = artifact_uri(registered)
        return _fetch_remote(uri) if _URL.match(uri) else resolve_model(uri)
    if _URL.match(name):
        return _fetch_remote(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return os.path.abspath(path)
    if path.exists():
        raise ConfigError(f"model path {name} is a file: give the directory that holds config.json")
    if not is_hub_id(name):
        raise ConfigError(f"model directory {name} does not exist: check the path, or give a hub id")
    return name


@dataclass
class ResolvedModel:
    """A model as a command needs it before any weights load, resolved once and handed down: where
    it is, its kind ("decoder" or "seq2seq"), `config.model_type` and its tokenizer."""

    name: str  # as the user wrote it: a hub id, a folder, tiny:<arch>, a URL
    path: str  # a local folder or hub id that from_pretrained accepts
    kind: str
    model_type: str
    tokenizer: Any
    trust_remote_code: bool = False


def open_model(name_or_path: str, *, trust_remote_code: bool = False) -> ResolvedModel:
    """Resolve `name_or_path` and read its config and tokenizer (no weights)."""
    path = resolve_model(name_or_path)
    kind, model_type = model_kind(path, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    return ResolvedModel(name_or_path, path, kind, model_type, tokenizer, trust_remote_code)


def model_kind(name_or_path: str, *, trust_remote_code: bool = False) -> tuple[str, str]:
    """(kind, model_type) from the model's config alone: kind is "seq2seq" for encoder-decoder
    models (T5, BART, ...) and "decoder" otherwise."""
    return _kind_of(load_config(name_or_path, trust_remote_code=trust_remote_code))


def load_config(name_or_path: str, *, trust_remote_code: bool = False):
    """The model's `PretrainedConfig`, without loading weights."""
    path = resolve_model(name_or_path)
    with _load_errors(name_or_path, path):
        return _auto_config(path, trust_remote_code)


def _auto_config(path: str, trust_remote_code: bool):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


def _kind_of(config) -> tuple[str, str]:
    kind = "seq2seq" if getattr(config, "is_encoder_decoder", False) else "decoder"
    return kind, config.model_type


def load_tokenizer(
    name_or_path: str,
    *,
    trust_remote_code: bool = False,
    padding_side: str | None = None,
):
    """The model's tokenizer, ready to pad batches.

    A tokenizer without a pad token (GPT-2 and many Llama checkpoints) gets its eos token as pad.
    With pad == eos a collator that masks pad ids out of the labels also masks the final eos, and
    the model never learns to stop: mask by attention, not by token id. `padding_side="left"` is
    what batched generation with a decoder needs; None keeps the tokenizer's own setting.
    """
    from transformers import AutoTokenizer

    if padding_side not in (None, "left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', not {padding_side!r}")
    path = resolve_model(name_or_path)
    with _load_errors(name_or_path, path):
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(
                f"the tokenizer of {name_or_path} has neither a pad nor an eos token: "
                "text2sql needs an eos token to end each answer"
            )
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_model(
    name_or_path: str,
    *,
    kind: str | None = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    **kwargs: Any,
):
    """Load the model with `AutoModelForCausalLM` (kind "decoder") or `AutoModelForSeq2SeqLM`
    (kind "seq2seq"); `kind=None` reads it from the config. `attn_implementation="sdpa"` falls back
    to eager attention for architectures that have no sdpa kernel.

    `dtype` is a `torch.dtype`, a name such as "bfloat16", or "auto" (the dtype in config.json);
    None keeps the transformers default, which in transformers 5 is "auto". Other keyword arguments
    (`device_map`, `quantization_config`, ...) go to `from_pretrained` unchanged.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown model kind '{kind}': use one of {', '.join(KINDS)}")
    path = resolve_model(name_or_path)
    if kind is None:
        with _load_errors(name_or_path, path):
            kind, _ = _kind_of(_auto_config(path, trust_remote_code))
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    auto_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    with _load_errors(name_or_path, path):
        try:
            return auto_class.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
        except ValueError as exc:
            # PyTorch's fused attention (the default) where the architecture has it, else its own kernel.
            if attn_implementation != "sdpa" or "scaled_dot_product_attention" not in str(exc):
                raise
            log.info("%s has no sdpa attention; loading it with eager attention", name_or_path)
            kwargs["attn_implementation"] = "eager"
            return auto_class.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)


def _fetch_remote(url: str) -> str:
    """Copy a remote model directory (gs://, s3://, ...) into the local cache and return its path.

    `text2sql.storage.fetch` downloads it once and reuses the copy while the remote is unchanged.
    """
    try:
        path = fetch(url)  # a missing gcsfs/s3fs is a MissingExtraError naming the extra; left as is
    except StorageError as exc:
        raise ConfigError(f"model {url}: {exc}") from exc
    if not path.is_dir():
        raise ConfigError(f"model {url} is a file: give the folder that holds config.json")
    return str(path)


class _load_errors:
    """Turn the library's load failures into one-line ConfigErrors that name the model and the fix."""

    def __init__(self, name: str, path: str):
        self.name, self.path = name, path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None or not issubclass(exc_type, (OSError, ValueError)):
            return False
        reason = first_line(exc)
        if os.path.isdir(self.path):
            message = f"cannot load model {self.name} from {self.path}: {reason}"
        else:
            message = (
                f"cannot load model '{self.name}' from the Hugging Face hub ({reason}): "
                "check the name or the network, or set a local path"
            )
        raise ConfigError(message) from exc

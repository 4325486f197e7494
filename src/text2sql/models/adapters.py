"""What a model folder holds: a PEFT adapter, a standalone model, or neither; and the run config
that trained it (the prompt settings inference must reuse).

Adapters written by `text2sql train` record the user's original base model spec (a hub id or
`tiny:<arch>`, not a machine-local cache path) in `adapter_config.json`, so they load anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from text2sql.config import load_config
from text2sql.errors import ConfigError
from text2sql.models.loading import load_model, model_kind, resolve_model

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter was trained on, as recorded in its adapter_config.json."""
    cfg_path = Path(path) / ADAPTER_CONFIG
    try:
        data = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} holds no {ADAPTER_CONFIG}; point at a folder written by 'text2sql train'") from None
    except ValueError:
        raise ConfigError(f"{cfg_path} is not valid JSON; the adapter folder is damaged") from None
    base = data.get("base_model_name_or_path")
    if not base:
        raise ConfigError(f"{cfg_path} names no base model; pass the base model with --base")
    return str(base)


def run_config(path: str | Path):
    """The resolved text2sql config saved beside a model or adapter, or None when there is none."""

    cfg_path = Path(path) / "config.yaml"
    if not cfg_path.is_file():
        return None
    return load_config(cfg_path)


def load_adapter_model(
    adapter_dir: str | Path,
    *,
    base: str | None = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
    is_trainable: bool = False,
):
    """Base model + adapter as a `PeftModel`; `base` overrides the base recorded in the adapter."""
    from peft import PeftModel

    base_spec = base or adapter_base(adapter_dir)
    base_path = resolve_model(base_spec)
    kind, _ = model_kind(base_path, trust_remote_code=trust_remote_code)
    model = load_model(base_path, kind=kind, dtype=dtype, trust_remote_code=trust_remote_code)
    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)

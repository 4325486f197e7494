"""Load any model spec for inference, with the prompt settings it was trained with.

    im = load_for_inference("runs/x/adapter")         # adapter folder: base + adapter
    im = load_for_inference("runs/x/merged")          # merged (standalone) model folder
    im = load_for_inference("TinyLlama/TinyLlama-1.1B-Chat-v1.0")   # a base model: the baseline
    prompt = im.builder.prompt_text(question, schema)

`evaluate`, `predict` and `serve` all start here, so a model is always asked in the words it was
trained on: the `PromptBuilder` is built from the config.yaml saved beside the model (prompt.template,
prompt.system, data.keep_reasoning), and `read_options` renders schemas as training did
(data.schema_format, data.schema_sample_rows). A folder without config.yaml, or a hub id, gets the
defaults, which are what `text2sql train` uses unless told otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.prompt import PromptBuilder
from text2sql.data.readers import ReadOptions
from text2sql.errors import ConfigError
from text2sql.inference.generate import Generator, HFGenerator
from text2sql.inference.vllm import VllmGenerator
from text2sql.models.adapters import adapter_base, is_adapter_dir, load_adapter_model, run_config
from text2sql.models.loading import load_config, load_model, load_tokenizer, model_kind, resolve_model
from text2sql.threads import use_threads

log = logging.getLogger(__name__)

# Files that show a folder holds its own tokenizer (an adapter folder may not).
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# Where a run directory keeps its models, most finished first (used only when the spec is a folder
# that holds neither a model nor an adapter itself).
_RUN_SUBFOLDERS = ("merged", "model", "adapter", "final", "checkpoints/final")


@dataclass
class InferenceModel:
    """A model ready to answer, and everything needed to ask it the way it was trained.

    `source` is "merged" (a standalone fine-tuned folder), "adapter" (base + LoRA adapter), or
    "base" (a folder or hub id with no text2sql config: a baseline). `model` is None when loaded
    with `load_weights=False` (e.g. for the vLLM backend, which loads weights itself).
    """

    spec: str
    path: str  # the folder or hub id the weights come from (the adapter folder for adapters)
    source: str
    kind: str  # "decoder" | "seq2seq"
    model_type: str
    tokenizer: Any
    builder: PromptBuilder
    model: Any = None
    base: str | None = None  # adapters: the base model spec
    config: Config | None = None  # the run config saved beside the model, if any
    schema_format: str = "sql"
    schema_sample_rows: int = 0
    merged_adapter: bool = False
    trust_remote_code: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def read_options(
        self, base: ReadOptions | None = None, *, db_dir: str | None = None, db: str | None = None
    ) -> ReadOptions:
        """Reader options that render schemas exactly as this model saw them in training."""
        opts = ReadOptions(**vars(base)) if base is not None else ReadOptions()
        opts.schema_format = self.schema_format
        opts.schema_sample_rows = self.schema_sample_rows
        if db_dir is not None:
            opts.db_dir = db_dir
        if db is not None:
            opts.db = db
        return opts

    def generator(self, backend: str = "hf") -> Generator:
        """The one generator for this model: transformers on the loaded weights, or vLLM (which loads
        the weights itself: load the model with `load_weights=False`)."""
        if backend == "hf":
            if self.model is None:
                raise ConfigError("the hf backend needs the model's weights; load it with load_weights=True")
            return HFGenerator(self.model, self.tokenizer, self.kind)
        if backend != "vllm":
            raise ConfigError(f"unknown backend {backend!r}; use hf or vllm")
        if self.kind != "decoder":
            raise ConfigError("--backend vllm serves decoder models only; use --backend hf for seq2seq (T5) models")

        if self.source == "adapter":
            return VllmGenerator(
                resolve_model(self.base or ""),
                self.tokenizer,
                adapter_path=self.path,
                trust_remote_code=self.trust_remote_code,
            )
        return VllmGenerator(self.path, self.tokenizer, trust_remote_code=self.trust_remote_code)

    def context_length(self) -> int | None:
        """The longest input (prompt + answer) the model's positions allow, when its config says so
        (None for T5: relative positions have no hard limit)."""
        if self.model is not None:
            config = self.model.config
        else:
            config = load_config(
                resolve_model(self.base) if self.source == "adapter" and self.base else self.path,
                trust_remote_code=self.trust_remote_code,
            )
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "path": self.path,
            "source": self.source,
            "kind": self.kind,
            "model_type": self.model_type,
            "base": self.base,
            "prompt": self.builder.describe(),
            "schema_format": self.schema_format,
            "schema_sample_rows": self.schema_sample_rows,
        }


def resolve_model_folder(spec: str, checkpoint: str | None = None) -> str:
    """The folder (or hub id) to load for `spec`.

    `checkpoint` (`--checkpoint checkpoint-500`) names a checkpoint folder inside `spec`
    or beside it. A run directory that holds no model itself is searched for merged/, model/,
    adapter/, final/ and checkpoints/final/, in that order.
    """
    path = Path(spec).expanduser()
    if checkpoint:
        candidates = (
            path / checkpoint,
            path / "checkpoints" / checkpoint,
            path.parent / checkpoint,
            path.parent / "checkpoints" / checkpoint,
        )
        for candidate in candidates:
            if candidate.is_dir():
                return str(candidate)
        raise ConfigError(
            f"checkpoint {checkpoint!r} not found in {path} or beside it; list the checkpoint-* folders "
            "there and pass one of them"
        )
    if path.is_dir() and not _holds_model(path):
        for name in _RUN_SUBFOLDERS:
            if _holds_model(path / name):
                log.info("using %s inside %s", name, path)
                return str(path / name)
        raise ConfigError(
            f"{path} holds no model (no config.json) and no adapter (no adapter_config.json); "
            "point --model at a merged model, an adapter folder or a base model"
        )
    return spec


def _holds_model(path: Path) -> bool:
    return (path / "config.json").is_file() or (path / "adapter_config.json").is_file()


def find_run_config(folder: str | Path) -> Config | None:
    """config.yaml beside a model, else in its parent or grandparent (a checkpoint folder inside an
    adapter folder, or in `<run>/checkpoints/`)."""
    path = Path(folder)
    if not path.is_dir():
        return None
    for candidate in (path, path.parent, path.parent.parent):
        cfg = run_config(candidate)
        if cfg is not None:
            return cfg
    return None


def load_for_inference(
    spec: str,
    *,
    base: str | None = None,
    checkpoint: str | None = None,
    dtype: Any = None,
    device: str | None = None,
    trust_remote_code: bool | None = None,
    load_weights: bool = True,
    merge_adapter: bool = True,
    threads: int | None = None,
) -> InferenceModel:
    """Load a merged model folder, an adapter folder (base + adapter), a base model folder, a hub id
    or a `tiny:<arch>` spec, in eval mode, with its tokenizer and its training-time PromptBuilder.

    `base` overrides the base model an adapter records. `merge_adapter` folds LoRA weights into the
    base after loading (generation is faster and outputs are the same), except on quantized bases.
    `device` defaults to CUDA when available. `threads` sets torch's CPU threads (None: the saved
    config's `model.threads`, else the default of `text2sql.threads`). Raises ConfigError for a spec
    that cannot be loaded.
    """
    folder = resolve_model_folder(spec, checkpoint)
    cfg = find_run_config(folder)
    trust = cfg.model.trust_remote_code if (trust_remote_code is None and cfg) else bool(trust_remote_code)
    if dtype is None and cfg is not None and cfg.model.dtype != "auto":
        dtype = cfg.model.dtype

    if Path(folder).is_dir() and is_adapter_dir(folder):
        source = "adapter"
        base_spec = base or adapter_base(folder)
        base_path = resolve_model(base_spec)
        kind, model_type = model_kind(base_path, trust_remote_code=trust)
        tokenizer_from = folder if _has_tokenizer(Path(folder)) else base_path
    else:
        source = "merged" if cfg is not None else "base"
        base_spec = None
        path = resolve_model(folder)
        kind, model_type = model_kind(path, trust_remote_code=trust)
        tokenizer_from = path
        folder = path

    tokenizer = load_tokenizer(tokenizer_from, trust_remote_code=trust)
    builder = build_prompt_builder(tokenizer, kind, model_type, cfg)
    im = InferenceModel(
        spec=spec,
        path=str(folder),
        source=source,
        kind=kind,
        model_type=model_type,
        tokenizer=tokenizer,
        builder=builder,
        base=base_spec,
        config=cfg,
        schema_format=cfg.data.schema_format if cfg else "sql",
        schema_sample_rows=cfg.data.schema_sample_rows if cfg else 0,
        trust_remote_code=trust,
    )
    if not load_weights:
        return im
    im.model = _load_weights(im, dtype=dtype, trust=trust, merge_adapter=merge_adapter)
    use_threads(threads if threads is not None else (cfg.model.threads if cfg is not None else 0))
    target = device or _default_device()
    if str(getattr(im.model, "device", "cpu")) != target and not getattr(im.model, "hf_device_map", None):
        im.model.to(target)
    im.model.eval()
    return im


def build_prompt_builder(tokenizer: Any, kind: str, model_type: str | None, cfg: Config | None) -> PromptBuilder:
    """The PromptBuilder training used: the saved config's prompt settings, else the defaults."""
    cfg = cfg or Config()
    return PromptBuilder.from_config(tokenizer, kind, model_type, cfg)


def _load_weights(im: InferenceModel, *, dtype: Any, trust: bool, merge_adapter: bool):
    if im.source != "adapter":
        return load_model(im.path, kind=im.kind, dtype=dtype, trust_remote_code=trust)
    model = load_adapter_model(im.path, base=im.base, dtype=dtype, trust_remote_code=trust)
    quantized = any(getattr(model, f"is_loaded_in_{b}bit", False) for b in (4, 8))
    if merge_adapter and not quantized:
        model = model.merge_and_unload()
        im.merged_adapter = True
    return model


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def unwrap_model(model: Any) -> Any:
    """The plain module under accelerate / DDP / torch.compile wrappers (a PeftModel is kept: it
    generates with its adapter active)."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        if hasattr(model, "module") and not hasattr(model, "generate"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            break
    return model

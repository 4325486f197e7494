"""`text2sql export`: a fine-tuned model as one GGUF file for llama.cpp, or as a GGUF plus an Ollama
`Modelfile`, checked by reading the file back.

    export("runs/shop", fmt="ollama", dtype="q8_0")   # -> runs/shop/export/{model-q8_0.gguf, Modelfile, export.json}

The Modelfile carries the prompt contract of training: its TEMPLATE is the exact text the model was
trained on around the user message (chat template, system prompt and all), so a client sends what
`text2sql predict` would put in the user turn (`Database schema:\\n...\\n\\nQuestion: ...`, the
schema in the model's `data.schema_format`) and the model sees its training prompt, token for token.
Stop tokens and greedy decoding come with it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from text2sql.atomic import is_populated, publish, staged
from text2sql.data import bundled
from text2sql.data.prompt import PromptBuilder, user_message
from text2sql.data.schema import schema_text
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.inference.loading import load_for_inference
from text2sql.models.export_gguf import DTYPES, check_export, require_gguf, write_gguf
from text2sql.progress import progress_bars_disabled

FORMATS = ("gguf", "ollama")
_USER = "\x00USER\x00"
# Questions the check asks both models (with the first bundled database's schema when the model
# was trained with schemas).
_CHECK_QUESTIONS = ("How many flights are there?", "Which airports are in Japan?", "List the names of all airlines.")


def prompt_frame(builder: PromptBuilder) -> tuple[str, str]:
    """The training prompt's text before and after the user message."""
    builder.prompt_text("probe")  # settles whether the template takes a system turn
    messages = builder.messages(_USER)
    for message in messages:
        message["content"] = message["content"].replace(user_message(_USER), _USER)
    rendered = builder._render_jinja(messages) if builder.kind == "decoder" else _USER
    if rendered.count(_USER) != 1:
        raise ConfigError(
            "the model's chat template changes the user message; it cannot be written as an Ollama TEMPLATE"
        )
    before, after = rendered.split(_USER)
    return before, after


def modelfile(builder: PromptBuilder, gguf_name: str, tokenizer: Any, num_ctx: int) -> str:
    """An Ollama Modelfile that reproduces the training prompt (see the module docstring)."""
    before, after = prompt_frame(builder)
    if "{{" in before + after:
        raise ConfigError("the training prompt holds '{{', which an Ollama TEMPLATE cannot hold literally")
    stops = [t for t in dict.fromkeys([tokenizer.eos_token, *_template_stops(before + after)]) if t]
    lines = [
        "# Written by text2sql export. Send the user turn as text2sql does:",
        "#   Database schema:\\n<schema>\\n\\nQuestion: <question>",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{before}{{{{ .Prompt }}}}{after}"""',
        *(f'PARAMETER stop "{stop}"' for stop in stops),
        "PARAMETER temperature 0",
        f"PARAMETER num_ctx {num_ctx}",
    ]
    return "\n".join(lines) + "\n"


def render_modelfile_prompt(text: str, prompt: str) -> str:
    """What Ollama gives the model for `prompt` under this Modelfile's TEMPLATE (its `{{ .Prompt }}`)."""
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    return template.replace("{{ .Prompt }}", prompt)


def _template_stops(frame: str) -> list[str]:
    # Turn markers that close a message in common chat formats, when the template uses them.
    return [t for t in ("<|im_end|>", "<|eot_id|>", "</s>", "<|end|>") if t in frame]


def export(
    spec: str,
    *,
    fmt: str = "gguf",
    dtype: str = "f16",
    output: str | None = None,
    force: bool = False,
    base: str | None = None,
    checkpoint: str | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """Export model `spec` (a merged folder, an adapter or run folder: merged on the fly) to `output`."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise ConfigError(f"unknown GGUF dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    require_gguf()
    target = (
        Path(output)
        if output
        else (Path(spec) / "export" if Path(spec).is_dir() else Path(f"export-{Path(spec).name}"))
    )
    if is_populated(target) and not force:
        raise OutputExistsError(f"{target} already holds an export; pass --force to replace it, or choose --output")
    with progress_bars_disabled():
        im = load_for_inference(spec, base=base, checkpoint=checkpoint, dtype="float32")
    if im.kind != "decoder":
        raise ConfigError("GGUF export writes decoder models (Llama, Mistral, Qwen2); a T5 model cannot be exported")
    name = f"model-{dtype}.gguf"
    print(
        f"writing {name} ({im.model_type}, {sum(p.numel() for p in im.model.parameters()) / 1e6:.1f}M parameters)",
        file=sys.stderr,
    )
    with staged(target) as tmp:
        path = write_gguf(im.model, im.tokenizer, tmp / name, dtype=dtype, name=Path(spec).name or "text2sql")
        record: dict[str, Any] = {
            "source": spec,
            "format": fmt,
            "dtype": dtype,
            "file": name,
            "bytes": path.stat().st_size,
        }
        if fmt == "ollama":
            num_ctx = (im.config.data.max_length if im.config is not None else None) or 2048
            (tmp / "Modelfile").write_text(modelfile(im.builder, name, im.tokenizer, num_ctx), encoding="utf-8")
            record["prompt"] = im.builder.describe() | {"schema_format": im.schema_format}
        if check:
            schema = schema_text(bundled.db_path("airline"), im.schema_format, im.schema_sample_rows)
            ids = im.builder.encode_prompts([im.builder.prompt_text(q, schema) for q in _CHECK_QUESTIONS])
            result = check_export(im.model, path, ids, dtype)
            record["check"] = asdict(result) | {"ok": result.ok}
            print(result.describe(), file=sys.stderr)
            if not result.ok:
                raise ConfigError(
                    f"the exported file does not reproduce the model ({result.describe()}); nothing was written"
                )
        (tmp / "export.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        publish(tmp, target, replace=force)
    print(f"exported to {target}", file=sys.stderr)
    return record

"""GGUF out: a merged decoder model written as one GGUF file (weights, tokenizer, chat template) for
llama.cpp and Ollama, through the `gguf` package's writer, as llama.cpp's own converter lays it out.

Llama and Mistral are written as llama.cpp's `llama` architecture (their query and key projections
permuted the way llama.cpp expects them), Qwen2 as `qwen2`. Norms and biases stay float32; the
matrices are f32, f16, bf16 or q8_0 (`dtype`). Byte-level BPE tokenizers (the kind these families
ship) are written as llama.cpp's `gpt2` tokenizer model.

`check_export` reads the file back with transformers (`from_pretrained(..., gguf_file=...)`) and
compares it with the model it came from: the logits of a few prompts, and their greedy answers.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.errors import ConfigError, MissingExtraError

ARCHITECTURES = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
DTYPES = ("f32", "f16", "bf16", "q8_0")
# Largest mean KL divergence accepted between the model's next-token distributions and the reloaded
# file's, by the dtype of its matrices (measured on SmolLM2-135M: f16 2e-6, bf16 1.5e-4, q8_0 1.7e-3;
# a misplaced or mis-permuted tensor gives well over 0.1).
TOLERANCE = {"f32": 1e-5, "f16": 1e-4, "bf16": 1e-3, "q8_0": 1e-2}
MIN_TOP1 = 0.98  # positions whose most likely next token must be the same


def require_gguf() -> Any:
    try:
        import gguf
    except ImportError:
        raise MissingExtraError("GGUF export", "gguf", "gguf") from None
    return gguf


def write_gguf(model: Any, tokenizer: Any, path: Path, *, dtype: str = "f16", name: str = "text2sql") -> Path:
    """Write `model` (a transformers decoder of a supported family, merged) and `tokenizer` to `path`."""
    gguf = require_gguf()
    config = model.config
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise ConfigError(
            f"GGUF export supports {', '.join(sorted(ARCHITECTURES))} models, not {config.model_type}; "
            "merge into one of those families or serve with text2sql serve"
        )
    if dtype not in DTYPES:
        raise ConfigError(f"unknown GGUF dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    writer = gguf.GGUFWriter(str(path), arch)
    _write_metadata(writer, config, name, dtype, gguf)
    _write_tokenizer(writer, tokenizer, gguf)
    for gguf_name, array, qtype in _tensors(model, config, arch, dtype, gguf):
        writer.add_tensor(gguf_name, array, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_FILE_TYPES = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "bf16": "MOSTLY_BF16", "q8_0": "MOSTLY_Q8_0"}


def _write_metadata(writer: Any, config: Any, name: str, dtype: str, gguf: Any) -> None:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    rope: Any = getattr(config, "rope_parameters", None) or {}
    theta: Any = (rope.get("rope_theta") if isinstance(rope, dict) else None) or getattr(config, "rope_theta", 10000.0)
    writer.add_rope_freq_base(float(theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(getattr(gguf.LlamaFileType, _FILE_TYPES[dtype]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _write_tokenizer(writer: Any, tokenizer: Any, gguf: Any) -> None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state = json.loads(backend.to_str()) if backend is not None else {}
    model = state.get("model", {})
    if model.get("type") != "BPE":
        raise ConfigError("GGUF export writes byte-level BPE tokenizers (llama.cpp's gpt2 model); this one is not")
    vocab = tokenizer.get_vocab()
    size = max(len(vocab), max(vocab.values()) + 1)
    tokens = [f"[PAD{i}]" for i in range(size)]
    for token, index in vocab.items():
        tokens[index] = token
    special = {t["id"] for t in state.get("added_tokens", []) if t.get("special")}
    added = {t["id"] for t in state.get("added_tokens", []) if not t.get("special")}
    types = [
        gguf.TokenType.CONTROL if i in special else gguf.TokenType.USER_DEFINED if i in added else gguf.TokenType.NORMAL
        for i in range(size)
    ]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for token, add in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("unk", writer.add_unk_token_id),
    ):
        value = getattr(tokenizer, f"{token}_token_id", None)
        if value is not None:
            add(value)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        writer.add_pad_token_id(pad)
    writer.add_add_bos_token(False)  # text2sql prompts carry their special tokens in the rendered text
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _permute(weights: Any, heads: int) -> Any:
    """llama.cpp's rotary layout for a query or key projection (its converter's `permute`)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _tensors(model: Any, config: Any, arch: str, dtype: str, gguf: Any):
    import numpy as np
    import torch

    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), config.num_hidden_layers)
    state = model.state_dict()
    tied = getattr(config, "tie_word_embeddings", False)
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reads the output projection from the embeddings when there is none
        if "rotary_emb" in hf_name:
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ConfigError(f"GGUF export does not know where tensor {hf_name} goes; this model cannot be exported")
        array = tensor.detach().to(torch.float32).cpu().numpy()
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            array = _permute(array, heads)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            array = _permute(array, kv_heads)
        yield (gguf_name, *_encoded(np.ascontiguousarray(array), dtype, gguf))


def _encoded(array: Any, dtype: str, gguf: Any) -> tuple[Any, Any]:
    import numpy as np

    types = gguf.GGMLQuantizationType
    if array.ndim < 2 or dtype == "f32":
        return array.astype(np.float32), types.F32
    if dtype == "f16":
        return array.astype(np.float16), types.F16
    qtype = types.BF16 if dtype == "bf16" else types.Q8_0
    if dtype == "q8_0" and array.shape[-1] % 32:
        return array.astype(np.float16), types.F16  # q8_0 blocks are 32 wide
    return gguf.quants.quantize(array, qtype), qtype


# ------------------------------------------------------------------------------------ the check


@dataclass
class ExportCheck:
    prompts: int
    kl: float  # mean KL divergence of the next-token distributions, model -> reloaded file, over prompt positions
    top1: float  # share of prompt positions whose most likely next token is the same
    max_logit_diff: float
    same_answers: int  # prompts whose greedy answers are identical
    tolerance: float  # on `kl`, by dtype

    @property
    def ok(self) -> bool:
        return self.kl <= self.tolerance and self.top1 >= MIN_TOP1

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"reloaded with transformers: mean KL {self.kl:.1e} (tolerance {self.tolerance:g}), next token the same "
            f"at {self.top1:.1%} of positions, max |logit difference| {self.max_logit_diff:.3f}, greedy answers equal "
            f"on {self.same_answers}/{self.prompts} prompts: {verdict}"
        )


def check_export(
    model: Any, path: Path, prompt_ids: list[list[int]], dtype: str, *, max_new_tokens: int = 24
) -> ExportCheck:
    """Load the GGUF at `path` back with transformers and compare it with `model` on `prompt_ids`."""
    import torch
    from transformers import AutoModelForCausalLM

    from text2sql.progress import progress_bars_disabled

    # transformers draws its dequantizing bar straight to stderr; the check's own line says enough.
    with progress_bars_disabled(), open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
        reloaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    kls, tops, worst, same = [], [], 0.0, 0
    for ids in prompt_ids:
        x = torch.tensor([ids])
        with torch.no_grad():
            a = model(x).logits.float()
            b = reloaded(x).logits.float()
            la, lb = torch.log_softmax(a, -1), torch.log_softmax(b, -1)
            kls.append(float((la.exp() * (la - lb)).sum(-1).mean()))
            tops.append(float((a.argmax(-1) == b.argmax(-1)).float().mean()))
            worst = max(worst, float((a - b).abs().max()))
            kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=model.config.eos_token_id)
            ga = model.generate(x, **kwargs)[0, len(ids) :].tolist()
            gb = reloaded.generate(x, **kwargs)[0, len(ids) :].tolist()
        same += ga == gb
    n = max(len(prompt_ids), 1)
    return ExportCheck(len(prompt_ids), max(0.0, sum(kls) / n), sum(tops) / n, worst, same, TOLERANCE[dtype])

"""The language-model head on answer positions only, in chunks.

Text-to-SQL prompts are mostly schema, and only the answer tokens carry loss (labels != -100). A plain
forward pass projects every position onto the vocabulary: [tokens × vocab] logits (49,152 columns for
SmolLM2, 151,936 for Qwen2.5) of which most are thrown away. Here the body of the model runs as usual,
the hidden states of the positions whose next-token label is set are gathered, and the head and the
cross-entropy run over them in chunks of a few hundred positions. Each chunk is checkpointed, so the
backward pass recomputes one chunk's logits at a time instead of keeping them all.

Trainers reach it through the call TRL's SFT and GRPO trainers already make for per-token
log-probabilities, `model(..., labels=labels, fused_lm_head=True)`: `install_answer_head` answers that
call on CPU (TRL scores every position there, prompt included) and leaves CUDA devices to TRL's Triton
kernel, which already scores only the label positions. T5 trains through `AnswerLossSeq2SeqTrainer`,
which makes the same call; there every decoder position is an answer position already and the gain is
the chunking. Models whose head does more than a linear projection (logit soft-capping or scaling,
mixture-of-experts losses) keep the full computation.
"""

from __future__ import annotations

import functools
import types
import weakref
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100

# Bytes of float32 logits one chunk may hold: 64 MiB is 341 positions of a 49,152-token vocabulary.
# The backward pass of a chunk holds about four such buffers (logits, softmax, their gradients).
CHUNK_BYTES = 64 * 2**20
SEQ2SEQ_TYPES = ("t5", "mt5")
# Config attributes of heads that scale or cap their logits (Gemma, Granite, Cohere, MiniCPM, ...).
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
)
_INSTALLED = "_text2sql_answer_head"


def chunk_positions(vocab_size: int) -> int:
    """Positions per chunk: as many as fit CHUNK_BYTES of float32 logits, between 16 and 1,024."""
    return max(16, min(1024, CHUNK_BYTES // (4 * max(int(vocab_size), 1))))


def unwrap(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def head_is_linear(model: Any) -> bool:
    """Whether the model's logits are its output embedding applied to the last hidden states and
    nothing else, so that they can be computed for some positions only."""
    base = unwrap(model)
    config = base.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if any(getattr(text, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return False
    if getattr(text, "output_router_logits", False) or getattr(text, "num_experts_per_tok", None):
        return False
    import torch

    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    # A LoRA-wrapped or otherwise replaced head does more than its weight says.
    if head is None or type(head).forward is not torch.nn.Linear.forward:
        return False
    if getattr(config, "is_encoder_decoder", False):
        return config.model_type in SEQ2SEQ_TYPES
    return base.base_model is not base


# ------------------------------------------------------------------------------------ per-token scores


@dataclass
class TokenScores:
    """Per answer position: log-probability of its label, entropy of the next-token distribution, and
    whether the label is the most likely token (no gradient)."""

    log_probs: Any
    entropy: Any
    is_top1: Any


def _score_chunk(hidden, weight, bias, targets, inv_t: float, entropy_grad: bool):
    import torch
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias)
    if logits.dtype in (torch.bfloat16, torch.float16):  # cross-entropy in float32 whatever the matmul dtype
        logits = logits.float()
    if inv_t != 1.0:
        logits = logits * inv_t
    log_z = torch.logsumexp(logits, dim=-1)
    log_probs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    with torch.no_grad():
        is_top1 = logits.argmax(-1) == targets
    return log_probs, entropy, is_top1


# Casts of frozen head weights kept from one step to the next, by the id of the weight they were cast
# from (tensors compare elementwise, so they cannot be dictionary keys themselves); an entry goes
# with its weight.
_CASTS: dict[int, tuple[Any, int, Any]] = {}


def _cast(weight: Any, dtype: Any) -> Any:
    """`weight` in `dtype`. A frozen weight's cast is kept while the weight is unchanged (its
    version counter), so a LoRA run casts its head once rather than every step (SmolLM2-135M:
    0.16 s of a 16 s step on one thread); a trainable weight is cast anew, its gradient through it."""
    if weight.requires_grad or weight.dtype == dtype:
        return weight.to(dtype)
    key = id(weight)
    kept = _CASTS.get(key)
    if kept is not None and kept[0]() is weight and kept[1] == weight._version and kept[2].dtype == dtype:
        return kept[2]
    cast = weight.to(dtype)
    _CASTS[key] = (weakref.ref(weight, lambda _: _CASTS.pop(key, None)), weight._version, cast)
    return cast


def score_tokens(hidden, head, targets, *, temperature: float = 1.0, entropy_grad: bool = False) -> TokenScores:
    """Scores of `targets` [N] under `head` applied to `hidden` [N, H], a chunk of positions at a time.

    With gradients on, each chunk is checkpointed: its logits are recomputed in the backward pass, so
    at most one chunk's [chunk × vocab] logits exist at any time. The entropy carries a gradient only
    with `entropy_grad` (RL's entropy bonus); otherwise it is a metric."""
    import torch
    from torch.utils.checkpoint import checkpoint

    weight, bias = head.weight, getattr(head, "bias", None)
    if torch.is_autocast_enabled(hidden.device.type):
        # One cast of the head for all chunks: autocast caches casts of trainable weights only, and a
        # frozen head (LoRA) would be cast again for every chunk (545 MB for a 151,936 × 896 head).
        dtype = torch.get_autocast_dtype(hidden.device.type)
        weight = _cast(weight, dtype)
        bias = None if bias is None else _cast(bias, dtype)
    inv_t = 1.0 / temperature
    n = hidden.shape[0]
    if n == 0:  # no answer token in the batch: a zero that still reaches the model's parameters
        zero = hidden.sum() * 0.0
        empty = hidden.new_zeros(0, dtype=torch.float32) + zero
        return TokenScores(empty, empty.detach(), torch.zeros(0, dtype=torch.bool, device=hidden.device))
    step = chunk_positions(weight.shape[0])
    track = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    parts = []
    for start in range(0, n, step):
        args = (hidden[start : start + step], weight, bias, targets[start : start + step], inv_t, entropy_grad)
        parts.append(checkpoint(_score_chunk, *args, use_reentrant=False) if track else _score_chunk(*args))
    return TokenScores(*(torch.cat([p[i] for p in parts]) for i in range(3)))


# ------------------------------------------------------------------------------------ model outputs


def _output_class():
    from transformers.utils import ModelOutput

    @dataclass
    class AnswerHeadOutput(ModelOutput):
        """What TRL's fused head returns (`FusedCausalLMOutput`): per-token fields are [batch, positions],
        zero where the label is -100; `loss` is the summed negative log-likelihood over
        `num_items_in_batch` (the label count when not given)."""

        loss: Any = None
        log_probs: Any = None
        entropy: Any = None
        log_sum_sq_probs: Any = None
        mean_logits: Any = None
        is_top1: Any = None
        label_mask: Any = None
        aux_loss: Any = None

    return AnswerHeadOutput


@functools.lru_cache(maxsize=1)
def answer_head_output():
    return _output_class()


def _scatter(values, mask):
    """Per-position values back into the [batch, positions] shape, zero where the mask is off."""
    if values.dtype == mask.dtype:
        return mask.new_zeros(mask.shape).masked_scatter(mask, values)
    return values.new_zeros(mask.shape).masked_scatter(mask, values)


def _outputs(scores: TokenScores, mask, num_items_in_batch):
    import torch

    log_probs = _scatter(scores.log_probs, mask)
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    loss = -log_probs.sum() / (count if torch.is_tensor(count) else float(count))
    return answer_head_output()(
        loss=loss,
        log_probs=log_probs,
        entropy=_scatter(scores.entropy, mask),
        is_top1=_scatter(scores.is_top1, mask),
        label_mask=mask,
    )


def decoder_hidden(base, *args, **kwargs):
    """The last hidden states of a decoder's body (the model without its head)."""
    kwargs["use_cache"] = False
    return base.base_model(*args, **kwargs).last_hidden_state


def seq2seq_hidden(
    base,
    input_ids=None,
    attention_mask=None,
    *,
    labels=None,
    decoder_input_ids=None,
    decoder_attention_mask=None,
    inputs_embeds=None,
    decoder_inputs_embeds=None,
    **kwargs,
):
    """T5's decoder states as its head sees them (scaled by d_model^-0.5 where T5 scales them)."""
    for name in ("output_attentions", "output_hidden_states", "return_dict", "use_cache"):
        kwargs.pop(name, None)
    encoded = base.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs)
    if decoder_input_ids is None and decoder_inputs_embeds is None:
        decoder_input_ids = base._shift_right(labels)
    decoded = base.decoder(
        input_ids=decoder_input_ids,
        attention_mask=decoder_attention_mask,
        inputs_embeds=decoder_inputs_embeds,
        encoder_hidden_states=encoded.last_hidden_state,
        encoder_attention_mask=attention_mask,
        use_cache=False,
        **kwargs,
    )
    hidden = decoded.last_hidden_state
    if getattr(base.config, "scale_decoder_outputs", base.config.tie_word_embeddings):
        hidden = hidden * (base.model_dim**-0.5)
    return hidden


def answer_outputs(
    base,
    *args,
    labels,
    shift_labels=None,
    num_items_in_batch=None,
    temperature: float = 1.0,
    entropy_grad: bool = False,
    **kwargs,
):
    """Loss and per-token scores of `labels` under a model whose head is linear (`head_is_linear`),
    with the head applied to labelled positions only. Decoders shift: position t scores label t+1
    (or `shift_labels` as given); T5's decoder positions score their own labels."""
    if base.config.is_encoder_decoder:
        hidden = seq2seq_hidden(base, *args, labels=labels, **kwargs)
        targets = labels
    else:
        hidden = decoder_hidden(base, *args, **kwargs)
        if shift_labels is None:
            hidden, targets = hidden[:, :-1], labels[:, 1:]
        else:
            targets = shift_labels
    head = base.get_output_embeddings()
    hidden, targets = hidden.to(head.weight.device), targets.to(head.weight.device)
    mask = targets != IGNORE_INDEX
    scores = score_tokens(hidden[mask], head, targets[mask], temperature=temperature, entropy_grad=entropy_grad)
    return _outputs(scores, mask, num_items_in_batch)


# ------------------------------------------------------------------------------------ installing


def install_answer_head(model: Any, *, temperature: float = 1.0, entropy_grad: bool = False) -> bool:
    """Serve `model(..., labels=..., fused_lm_head=True)` with the answer-only head on CPU; every other
    call goes to the forward the model had (TRL's fused head on CUDA devices, the model's own forward
    without the flag, so generation is unchanged). Returns whether the model's head allows it."""
    base = unwrap(model)
    if not head_is_linear(base):
        return False
    import inspect

    previous = base.forward
    if getattr(previous, _INSTALLED, False):
        return True
    # TRL's fused head (a forward taking `fused_lm_head`) serves CUDA devices with its Triton kernel.
    trl_head = "fused_lm_head" in inspect.signature(previous, follow_wrapped=False).parameters

    @functools.wraps(type(base).forward)  # generate() validates its keyword arguments against this
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        given = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
        extra = {k: v for k, v in given.items() if v is not None}
        if not fused_lm_head:
            return previous(*args, **kwargs, **extra)
        if trl_head and self.get_output_embeddings().weight.device.type in ("cuda", "xpu"):
            return previous(*args, fused_lm_head=True, **kwargs, **extra)
        return answer_outputs(
            self,
            *args,
            labels=labels,
            shift_labels=shift_labels,
            num_items_in_batch=num_items_in_batch,
            temperature=temperature,
            entropy_grad=entropy_grad,
            **kwargs,
        )

    setattr(forward, _INSTALLED, True)
    base.forward = types.MethodType(forward, base)
    return True


def seq2seq_trainer_class():
    """transformers' Seq2SeqTrainer whose loss comes from the answer-only head (T5 family)."""
    import torch
    from transformers import Seq2SeqTrainer

    class AnswerLossSeq2SeqTrainer(Seq2SeqTrainer):
        """The loss of T5's own forward (the mean cross-entropy over the batch's labels), computed
        through the chunked head; anything that needs the logits takes transformers' path."""

        def _answer_head(self) -> bool:
            return getattr(unwrap(self.accelerator.unwrap_model(self.model)).forward, _INSTALLED, False)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if (
                return_outputs
                or "labels" not in inputs
                or self.label_smoother is not None
                or self.compute_loss_func is not None
                or not self._answer_head()
            ):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            outputs = model(**inputs, fused_lm_head=True)
            loss = outputs.loss  # the batch's own label count, as T5's forward divides
            if self.args.average_tokens_across_devices and self.model_accepts_loss_kwargs and num_items_in_batch:
                # transformers' compute_loss scales the model's loss the same way
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            return loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
            if not prediction_loss_only or "labels" not in inputs or not self._answer_head():
                return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys, **gen_kwargs)
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad(), self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs)
            return (loss.detach().mean(), None, None)

    return AnswerLossSeq2SeqTrainer

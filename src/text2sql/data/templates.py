"""Built-in chat templates for tokenizers that have none of their own.

Each renders a system/user/assistant conversation exactly as the model family expects it. With
`add_generation_prompt=True` the rendered text ends where the assistant's answer begins, and the
assistant turn itself is `content + eos_token`, so a prompt rendered for inference is a byte-exact
prefix of the same conversation rendered for training.
"""

from __future__ import annotations

from text2sql.errors import ConfigError

# TinyLlama-1.1B-Chat / Zephyr. (The upstream template emits '<|assistant|>' without the newline
# for the generation prompt but with it for assistant turns; we keep the newline in both so the
# inference prompt is a prefix of the training text.)
ZEPHYR = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Mistral-Instruct: the system prompt is folded into the first user turn (the format
# `<s>[INST] {system}\n{user} [/INST] {assistant}</s>`).
MISTRAL = (
    "{{ bos_token }}"
    "{% set system = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system.text = message['content'] + '\n' %}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + system.text + message['content'] + ' [/INST]' }}"
    "{% set system.text = '' %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' ' }}{% endif %}"
)

# ChatML (Qwen2 and many others).
CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' + message['content'] + eos_token }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Llama 3 instruct.
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' + message['content'] + eos_token }}"
    "{% else %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# No chat markup at all: for base models such as GPT-2.
PLAIN = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ 'SQL: ' + message['content'] + eos_token }}"
    "{% else %}{{ message['content'] + '\n\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'SQL: ' }}{% endif %}"
)

CHAT_TEMPLATES: dict[str, str] = {
    "zephyr": ZEPHYR,
    "mistral": MISTRAL,
    "chatml": CHATML,
    "llama3": LLAMA3,
    "plain": PLAIN,
}

# The template a tokenizer without one gets, by `config.model_type`.
DEFAULT_TEMPLATE_BY_MODEL_TYPE: dict[str, str] = {
    "llama": "zephyr",
    "mistral": "mistral",
    "qwen2": "chatml",
    "qwen3": "chatml",
    "gpt2": "plain",
}

# Every marker any built-in template uses; tiny tokenizers carry all of them as special tokens so
# that any template works with any tiny model.
TEMPLATE_SPECIAL_TOKENS = [
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "[INST]",
    "[/INST]",
    "<|im_start|>",
    "<|im_end|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]


def get_template(name: str) -> str:
    try:
        return CHAT_TEMPLATES[name]
    except KeyError:
        known = ", ".join(sorted(CHAT_TEMPLATES))
        raise ConfigError(f"unknown chat template '{name}': use one of {known}, or 'auto'") from None

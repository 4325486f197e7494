"""The one prompt builder: same text for training and inference, exact label masking."""

import pytest

from text2sql.config import load_config
from text2sql.data.example import Example
from text2sql.data.prompt import IGNORE_INDEX, PromptBuilder, target_text, user_message
from text2sql.data.templates import CHAT_TEMPLATES
from text2sql.errors import ConfigError
from text2sql.models.loading import load_tokenizer

EX = Example(
    question="How many heads of the departments are older than 56?",
    sql="SELECT COUNT(*) FROM head WHERE age > 56",
    schema="CREATE TABLE head (age INTEGER)",
)


@pytest.fixture(scope="module")
def llama_tok(tiny_llama_path):
    return load_tokenizer(str(tiny_llama_path))


@pytest.fixture(scope="module")
def t5_tok(tiny_t5_path):
    return load_tokenizer(str(tiny_t5_path))


def test_user_message_layout():
    text = user_message("Q?", "CREATE TABLE t (a)", "a means x")
    assert text == "Database schema:\nCREATE TABLE t (a)\n\nHint: a means x\n\nQuestion: Q?"
    assert user_message("Q?") == "Question: Q?"


def test_target_with_reasoning_is_a_fenced_block():
    ex = Example(question="q", sql="SELECT 1", reasoning="Think first.")
    assert target_text(ex) == "Think first.\n\n```sql\nSELECT 1\n```"
    assert target_text(ex, keep_reasoning=False) == "SELECT 1"


@pytest.mark.parametrize("template", sorted(CHAT_TEMPLATES))
def test_decoder_masking_is_exact(llama_tok, template):
    builder = PromptBuilder(llama_tok, "decoder", template=template, model_type="llama")
    enc = builder.encode(EX)
    prompt_ids = builder.encode_prompts([builder.example_prompt(EX)])[0]
    # training input starts with exactly the tokens inference would feed the model
    assert enc.input_ids[: enc.prompt_length] == prompt_ids
    assert enc.prompt_length == len(prompt_ids)
    assert enc.labels[: enc.prompt_length] == [IGNORE_INDEX] * enc.prompt_length
    target = enc.labels[enc.prompt_length :]
    assert IGNORE_INDEX not in target
    assert target == enc.input_ids[enc.prompt_length :]
    assert target[-1] == llama_tok.eos_token_id
    assert llama_tok.decode(target[:-1]) == EX.sql


def test_prompt_is_prefix_of_full_conversation(llama_tok):
    """A chat template rendered for inference is a prefix of the same conversation with the answer."""
    for name, template in CHAT_TEMPLATES.items():
        builder = PromptBuilder(llama_tok, "decoder", template=name)
        prompt = builder.example_prompt(EX)
        full = llama_tok.apply_chat_template(
            builder.messages(EX.question, EX.schema) + [{"role": "assistant", "content": EX.sql}],
            chat_template=template,
            tokenize=False,
        )
        assert full.startswith(prompt), name
        assert full == prompt + EX.sql + llama_tok.eos_token, name


def test_auto_uses_tokenizer_template_else_family_default(llama_tok):
    assert PromptBuilder(llama_tok, "decoder").template_name == "tokenizer"
    saved = llama_tok.chat_template
    try:
        llama_tok.chat_template = None
        assert PromptBuilder(llama_tok, "decoder", model_type="mistral").template_name == "mistral"
        assert PromptBuilder(llama_tok, "decoder", model_type="gpt2").template_name == "plain"
    finally:
        llama_tok.chat_template = saved


def test_zephyr_text_matches_seed_002_layout(llama_tok):
    builder = PromptBuilder(llama_tok, "decoder", template="zephyr", system="SQL only.")
    text = builder.prompt_text("How many?", "CREATE TABLE head(age INTEGER)")
    assert text == (
        "<|system|>\nSQL only.</s>\n<|user|>\nDatabase schema:\nCREATE TABLE head(age INTEGER)\n\n"
        "Question: How many?</s>\n<|assistant|>\n"
    )


def test_mistral_text_matches_seed_003_format(llama_tok):
    builder = PromptBuilder(llama_tok, "decoder", template="mistral", system="SYS")
    assert builder.prompt_text("Q?") == "<s>[INST] SYS\nQuestion: Q? [/INST] "


def test_system_prompt_folded_when_template_rejects_it(llama_tok):
    strict = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}{{ m['content'] }}{% endfor %}"
    )
    saved = llama_tok.chat_template
    try:
        llama_tok.chat_template = strict
        builder = PromptBuilder(llama_tok, "decoder", system="SYS")
        assert builder.prompt_text("Q?").startswith("SYS\n\nQuestion: Q?")
    finally:
        llama_tok.chat_template = saved


def test_seq2seq_input_and_labels(t5_tok):
    builder = PromptBuilder(t5_tok, "seq2seq")
    enc = builder.encode(EX)
    assert enc.input_ids[-1] == t5_tok.eos_token_id
    assert enc.labels[-1] == t5_tok.eos_token_id
    assert IGNORE_INDEX not in enc.labels
    assert t5_tok.decode(enc.labels, skip_special_tokens=True) == EX.sql
    assert t5_tok.decode(enc.input_ids, skip_special_tokens=True) == user_message(EX.question, EX.schema)


def test_unknown_template_is_a_config_error(llama_tok):
    from text2sql.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown chat template 'vicuna'"):
        PromptBuilder(llama_tok, "decoder", template="vicuna")


def test_the_config_offers_exactly_the_built_in_templates():
    import typing

    from text2sql.config import PromptConfig
    from text2sql.data.templates import CHAT_TEMPLATES

    offered = set(typing.get_args(PromptConfig.model_fields["template"].annotation))
    assert offered == {"auto", *CHAT_TEMPLATES}
    with pytest.raises(ConfigError, match="prompt.template: 'zephir' is not allowed"):
        load_config(None, ["prompt.template=zephir"])

"""Tiny, randomly initialised models built locally, so tests and demos need no hub and no download.

A tiny model is a real transformers architecture (Llama, Mistral, Qwen2, GPT-2 or T5 config class) at
toy size, plus a byte-level BPE tokenizer trained on the bundled text-to-SQL corpus. Both are saved
(safetensors, float32) so that `AutoTokenizer` and `AutoModelForCausalLM` / `AutoModelForSeq2SeqLM`
load the directory offline, exactly as they would load a downloaded model.

Spec syntax, accepted wherever a model name is (see `text2sql.models.loading.resolve_model`):

    tiny:<arch>[?<option>=<int>[&<option>=<int>...]]

    tiny:llama
    tiny:t5?hidden_size=256&num_layers=4
    tiny:qwen2?seed=3

`<arch>` is one of `ARCHS`; options are the keyword arguments of `build_tiny_model` (`OPTION_DEFAULTS`).
A spec is built on first use and cached under `$TEXT2SQL_CACHE/tiny/<arch>-<hash>` (default cache
`~/.cache/text2sql`); the hash covers the options, the builder version and the training corpus, so a
change to any of them builds a fresh model instead of reusing a stale one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qsl

from text2sql.atomic import is_populated as _is_populated
from text2sql.atomic import make_readable, publish, staging_dir
from text2sql.config import DEFAULT_SYSTEM_PROMPT
from text2sql.data import bundled
from text2sql.data.prompt import user_message
from text2sql.data.schema import schema_text
from text2sql.data.templates import CHAT_TEMPLATES, DEFAULT_TEMPLATE_BY_MODEL_TYPE, TEMPLATE_SPECIAL_TOKENS
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.paths import cache_root
from text2sql.progress import progress_bars_disabled

ARCHS = ("llama", "mistral", "qwen2", "gpt2", "t5")

# Bump when a change to this module changes what is built, so cached tiny models are rebuilt.
BUILDER_VERSION = 3

SPEC_PREFIX = "tiny:"

OPTION_DEFAULTS: dict[str, int] = {
    "hidden_size": 128,
    "num_layers": 2,
    "num_heads": 4,
    "vocab_size": 4096,
    "seed": 0,
    "max_position_embeddings": 1024,
}

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
# Byte-level BPE starts from all 256 byte symbols, so any text encodes without <unk>.
_BYTE_ALPHABET_SIZE = 256


def special_tokens() -> list[str]:
    """Special tokens of every tiny tokenizer, in id order: <pad>=0, <s>=1, </s>=2, <unk>=3, then
    every chat-template marker so that any built-in chat template works with any tiny model."""

    return [PAD, BOS, EOS, UNK, *TEMPLATE_SPECIAL_TOKENS]


# ---------------------------------------------------------------------------------------------
# Public API


def build_tiny_model(
    arch: str,
    output_dir: Path,
    *,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 4096,
    seed: int = 0,
    max_position_embeddings: int = 1024,
    corpus: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Build a randomly initialised `arch` model and its tokenizer, and save both in `output_dir`.

    `vocab_size` is the most the BPE vocabulary may grow to (a small corpus runs out of merges
    sooner: the bundled one fills 2,048 and saturates near 2,860); the model's embedding matrix is
    sized to the tokenizer actually reached, so every generated id decodes. `corpus` replaces the bundled `corpus_texts()` as training text for
    the tokenizer. The same arguments give byte-identical weights and the same tokenizer.

    The directory appears complete or not at all: everything is written to a temporary sibling that
    is renamed into place. An existing non-empty `output_dir` is an error unless `overwrite`.
    Returns `output_dir`.
    """
    options = _validate(
        arch,
        {
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "vocab_size": vocab_size,
            "seed": seed,
            "max_position_embeddings": max_position_embeddings,
        },
    )
    output_dir = Path(output_dir).expanduser()
    if _is_populated(output_dir) and not overwrite:
        raise OutputExistsError(
            f"{output_dir} already exists: choose another directory, delete it, or pass overwrite=True"
        )
    if corpus is None:
        corpus = _bundled_corpus()
    tmp = _build_in_temp_dir(arch, options, corpus, output_dir)
    try:
        # With overwrite the old model is moved aside first: a crash leaves either the old or the new one.
        return publish(tmp, output_dir, replace=overwrite)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def parse_tiny_spec(spec: str) -> tuple[str, dict[str, int]]:
    """`tiny:<arch>[?k=v&...]` -> (arch, all options with defaults filled in); ConfigError if bad."""
    if not spec.startswith(SPEC_PREFIX):
        raise ConfigError(f"'{spec}' is not a tiny model spec: write tiny:<arch>, arch one of {', '.join(ARCHS)}")
    body = spec[len(SPEC_PREFIX) :]
    arch, _, query = body.partition("?")
    given: dict[str, int] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ConfigError(
                f"cannot read the options in '{spec}': write tiny:{arch}?hidden_size=256&num_layers=4"
            ) from None
        for key, value in pairs:
            if key not in OPTION_DEFAULTS:
                raise ConfigError(f"unknown tiny model option '{key}' in '{spec}': use {', '.join(OPTION_DEFAULTS)}")
            if key in given:
                raise ConfigError(f"tiny model option '{key}' is given twice in '{spec}'")
            try:
                given[key] = int(value)
            except ValueError:
                raise ConfigError(f"tiny model option {key}={value!r} in '{spec}' must be an integer") from None
    return arch, _validate(arch, {**OPTION_DEFAULTS, **given})


def tiny_model_path(spec: str) -> Path:
    """The local directory of tiny model `spec`, built and cached on first use.

    Later calls return the cached directory at once. Two processes building the same spec at the
    same time each build into their own temporary directory; the first rename wins and the other
    discards its copy.
    """
    arch, options = parse_tiny_spec(spec)
    corpus = _bundled_corpus()
    target = cache_root() / "tiny" / f"{arch}-{_options_hash(arch, options, corpus)}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _build_in_temp_dir(arch, options, corpus, target)
    try:
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # Another process finished the same build first: its copy is identical, keep it.
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not target.is_dir():
            raise
    return target


# ---------------------------------------------------------------------------------------------
# Validation and cache key


def _validate(arch: str, options: dict[str, int]) -> dict[str, int]:
    if arch not in ARCHS:
        raise ConfigError(f"unknown tiny model architecture '{arch}': use one of {', '.join(ARCHS)}")
    for key, value in options.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"tiny model option {key}={value!r} must be an integer")
        if key != "seed" and value < 1:
            raise ConfigError(f"tiny model option {key}={value} must be at least 1")
    hidden, heads = options["hidden_size"], options["num_heads"]
    if hidden % heads:
        raise ConfigError(f"tiny model hidden_size={hidden} must be a multiple of num_heads={heads}")
    if arch != "t5" and arch != "gpt2" and (hidden // heads) % 2:
        # Rotary position embeddings rotate pairs of dimensions.
        raise ConfigError(
            f"tiny {arch} needs an even head size, hidden_size/num_heads = {hidden // heads}: "
            "change hidden_size or num_heads"
        )
    minimum = _BYTE_ALPHABET_SIZE + len(special_tokens())
    if options["vocab_size"] < minimum:
        raise ConfigError(
            f"tiny model vocab_size={options['vocab_size']} is too small: byte-level BPE needs at least {minimum}"
        )
    return options


def _options_hash(arch: str, options: dict[str, int], corpus: list[str]) -> str:
    corpus_digest = hashlib.sha256("\x00".join(corpus).encode("utf-8")).hexdigest()
    key = json.dumps({"arch": arch, "builder": BUILDER_VERSION, "corpus": corpus_digest, **options}, sort_keys=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def _bundled_corpus() -> list[str]:
    """Tokenizer training text: the bundled *train* split (never validation or test rows), each
    database's schema as prompts render it, and the fixed prompt scaffolding. The scaffolding is
    repeated so its words merge into whole tokens (merges need two sightings), which keeps every
    prompt short."""

    texts: list[str] = []
    for row in bundled.iter_rows("train"):
        texts.append(row["question"])
        texts.append(row["sql"])
    for db_id in bundled.db_ids():
        for fmt in ("sql", "compact", "tables"):
            texts.extend([schema_text(bundled.db_path(db_id), fmt=fmt)] * 2)
    # The system prompt as SQLite prompts render it (the bundled databases are SQLite files).
    system = DEFAULT_SYSTEM_PROMPT.replace("{dialect}", "SQLite")
    scaffolding = [system, user_message("?", "schema", "hint"), "SQL: ", "```sql\n", "\n```"]
    texts.extend(scaffolding * 8)
    return texts


# ---------------------------------------------------------------------------------------------
# Building


def _build_in_temp_dir(arch: str, options: dict[str, int], corpus: list[str], target: Path) -> Path:
    """Build into a fresh temporary sibling of `target` and return it; removed again on failure."""
    tmp = staging_dir(target)
    try:
        _build(arch, options, corpus, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def _build(arch: str, options: dict[str, int], corpus: list[str], out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationConfig

    if not corpus:
        raise ConfigError("cannot train a tiny tokenizer on an empty corpus")
    tokenizer = _train_tokenizer(
        corpus,
        vocab_size=options["vocab_size"],
        seq2seq=arch == "t5",
        model_max_length=options["max_position_embeddings"],
    )
    if arch != "t5":
        tokenizer.chat_template = CHAT_TEMPLATES[DEFAULT_TEMPLATE_BY_MODEL_TYPE[arch]]

    config = _model_config(arch, options, vocab_size=len(tokenizer), tokenizer=tokenizer)
    auto_class = AutoModelForSeq2SeqLM if arch == "t5" else AutoModelForCausalLM
    torch.manual_seed(options["seed"])
    model = auto_class.from_config(config, dtype=torch.float32).float()
    generation = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if arch == "t5":
        generation["decoder_start_token_id"] = tokenizer.pad_token_id
    else:
        generation["bos_token_id"] = tokenizer.bos_token_id
    model.generation_config = GenerationConfig(**generation)
    _check_token_ids(model, tokenizer)

    with progress_bars_disabled():
        model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    make_readable(out)


def _train_tokenizer(corpus: list[str], *, vocab_size: int, seq2seq: bool, model_max_length: int):
    """Byte-level BPE: every string round-trips, non-ASCII included, and no input maps to <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = special_tokens()
    backend = Tokenizer(models.BPE())
    # Digits one by one: a model copies a number it has never seen (a year, an id) digit by digit,
    # which a tiny model learns far sooner than emitting a whole-number token it never produced.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        # A pair seen once is noise in a templated corpus, not a unit worth a token.
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    if seq2seq:
        # T5 tokenizers end every encoded input with </s>.
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, specials.index(EOS))]
        )
    # Decoder tokenizers add nothing: the prompt builder renders <s> through the chat template.
    named = {"pad_token": PAD, "eos_token": EOS, "unk_token": UNK}
    if not seq2seq:
        named["bos_token"] = BOS
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=model_max_length,
        # Decoding must give back the SQL exactly; the default clean-up rewrites " 's" and " ,".
        clean_up_tokenization_spaces=False,
        **named,
    )


def _model_config(arch: str, options: dict[str, int], *, vocab_size: int, tokenizer):
    hidden = options["hidden_size"]
    layers = options["num_layers"]
    heads = options["num_heads"]
    positions = options["max_position_embeddings"]
    ids = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if arch in ("llama", "mistral", "qwen2"):
        from transformers import LlamaConfig, MistralConfig, Qwen2Config

        extra = {"sliding_window": None} if arch == "mistral" else {}
        config_class = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[arch]
        config = config_class(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=positions,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            **ids,
            **extra,
        )
    elif arch == "gpt2":
        from transformers import GPT2Config

        # Dropout off, as in the Llama-like configs, so all tiny models train alike.
        config = GPT2Config(
            vocab_size=vocab_size,
            n_positions=positions,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            n_inner=4 * hidden,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            **ids,
        )
    else:
        from transformers import T5Config

        config = T5Config(  # type: ignore[call-arg]
            vocab_size=vocab_size,
            d_model=hidden,
            d_kv=hidden // heads,
            d_ff=4 * hidden,
            num_layers=layers,
            num_decoder_layers=layers,
            num_heads=heads,
            dropout_rate=0.0,
            # T5 starts decoding from the pad token.
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
    config.dtype = "float32"
    return config


def _check_token_ids(model, tokenizer) -> None:
    """The model config and generation config must name the tokenizer's special ids."""
    config, generation = model.config, model.generation_config
    expected = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": tokenizer.bos_token_id,
    }
    if config.is_encoder_decoder:
        expected["decoder_start_token_id"] = tokenizer.pad_token_id
    for name, value in expected.items():
        for where in (config, generation):
            if getattr(where, name, None) != value:
                raise RuntimeError(
                    f"tiny model builder bug: {type(where).__name__}.{name}={getattr(where, name, None)} "
                    f"but the tokenizer says {value}"
                )
    if config.vocab_size != len(tokenizer):
        raise RuntimeError(f"tiny model builder bug: vocab {config.vocab_size} != tokenizer {len(tokenizer)}")

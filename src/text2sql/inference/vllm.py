"""Generation with vLLM's offline engine (decoder models, GPU; `pip install 'text2sql[vllm]'`).

Prompts go in as token ids from the PromptBuilder, so vLLM adds no second BOS, and answers come back
as `RawOutput`s cut by the same stop rule as `HFGenerator` (vLLM stops at the model's EOS ids itself).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from text2sql.errors import ConfigError, MissingExtraError
from text2sql.inference.generate import GREEDY, RawOutput, Sampling, cut_at_stop


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtraError("--backend vllm", "vllm", "vllm")


class VllmGenerator:
    """vLLM's engine, built once; it batches the prompts it is given itself. An adapter folder is
    served as its base with LoRA enabled."""

    def __init__(
        self, model_path: str, tokenizer: Any, *, adapter_path: str | None = None, trust_remote_code: bool = False
    ):
        require_vllm()
        from vllm import LLM  # type: ignore[import-not-found]

        self.tokenizer = tokenizer
        self.llm = LLM(model=model_path, enable_lora=adapter_path is not None, trust_remote_code=trust_remote_code)
        self.lora = None
        if adapter_path is not None:
            from vllm.lora.request import LoRARequest  # type: ignore[import-not-found]

            self.lora = LoRARequest("adapter", 1, adapter_path)
        eos = getattr(tokenizer, "eos_token_id", None)
        self.stop_ids = {eos} if isinstance(eos, int) else set()

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        sampling: Sampling = GREEDY,
        *,
        num_beams: int = 1,
        **_: Any,
    ) -> list[RawOutput]:
        from vllm import SamplingParams  # type: ignore[import-not-found]

        if num_beams > 1:
            raise ConfigError("--backend vllm decodes greedily or samples; use --backend hf for beam search")
        params = SamplingParams(
            temperature=max(sampling.temperature, 0.0), top_p=sampling.top_p, max_tokens=max_new_tokens
        )
        results = self.llm.generate(
            [{"prompt_token_ids": list(p)} for p in prompts], params, lora_request=self.lora, use_tqdm=False
        )
        outputs = []
        for result in results:
            best = result.outputs[0] if result.outputs else None
            tokens = list(best.token_ids) if best is not None else []
            output = cut_at_stop(tokens, self.stop_ids)
            output.hit_eos = output.hit_eos or (best is not None and best.finish_reason == "stop")
            outputs.append(output)
        return outputs

    def decode(self, output: RawOutput) -> str:
        return self.tokenizer.decode(output.token_ids, skip_special_tokens=True)

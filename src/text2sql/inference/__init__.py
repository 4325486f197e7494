"""Inference: load any model spec with the prompt settings it was trained with (`loading`), and the one
generator that evaluation, training callbacks, `predict` and `serve` share (`generate`, `vllm`,
`prefix`)."""

"""One typed config for a whole run (`sections`), loaded from a YAML file plus dotted command-line
overrides and validated together (`loading`)."""

from text2sql.config.loading import (
    build_config,
    check_key,
    check_value,
    describe_fields,
    load_config,
    parse_override,
    save_config,
    set_dotted,
)
from text2sql.config.sections import (
    DEFAULT_SYSTEM_PROMPT,
    MINIMIZED_METRICS,
    TRAINING_DEFAULTS,
    TUNING_METRICS,
    CallbacksConfig,
    Config,
    DataConfig,
    EvaluationConfig,
    LaunchConfig,
    LoraConfigSection,
    MaxSamples,
    ModelConfig,
    PromptConfig,
    ServingConfig,
    TrackingConfig,
    TuningConfig,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "MINIMIZED_METRICS", "TRAINING_DEFAULTS", "TUNING_METRICS",
    "CallbacksConfig", "Config", "DataConfig", "EvaluationConfig", "LaunchConfig", "LoraConfigSection",
    "MaxSamples", "ModelConfig", "PromptConfig", "ServingConfig", "TrackingConfig", "TuningConfig",
    "build_config", "check_key", "check_value", "describe_fields", "load_config", "parse_override",
    "save_config", "set_dotted",
]

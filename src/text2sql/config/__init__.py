"""One typed config for a whole run (`sections`), loaded from a YAML file plus dotted command-line
overrides and validated together (`loading`, `keys`), with the search-space language of `text2sql
tune` (`space`, `search`) and the command-line arguments that carry config (`args`)."""

from text2sql.config.args import add_config_argument, add_section_flags, split_config_args
from text2sql.config.keys import check_key, check_value, parse_override, set_dotted
from text2sql.config.loading import build_config, describe_fields, load_config, save_config
from text2sql.config.sections import (
    DEFAULT_SYSTEM_PROMPT,
    MINIMIZED_METRICS,
    TRAINING_DEFAULTS,
    TUNING_METRICS,
    CallbacksConfig,
    Config,
    DataConfig,
    EvaluationConfig,
    FinetuneConfig,
    LabelConfig,
    LaunchConfig,
    MaxSamples,
    ModelConfig,
    PromptConfig,
    RLConfig,
    ServingConfig,
    TokenPrice,
    TrackingConfig,
    TuningConfig,
    refuse_passwords,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "MINIMIZED_METRICS",
    "TRAINING_DEFAULTS",
    "TUNING_METRICS",
    "CallbacksConfig",
    "Config",
    "DataConfig",
    "EvaluationConfig",
    "FinetuneConfig",
    "LabelConfig",
    "LaunchConfig",
    "MaxSamples",
    "ModelConfig",
    "PromptConfig",
    "RLConfig",
    "ServingConfig",
    "TokenPrice",
    "TrackingConfig",
    "TuningConfig",
    "add_config_argument",
    "add_section_flags",
    "build_config",
    "check_key",
    "check_value",
    "describe_fields",
    "load_config",
    "parse_override",
    "refuse_passwords",
    "save_config",
    "set_dotted",
    "split_config_args",
]

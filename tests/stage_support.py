"""Running one stage the way a command does, for tests of a single stage."""

from text2sql.data.prepare import PrepareResult, prepare
from text2sql.models.loading import open_model


def prepare_with_model(cfg, **kwargs) -> PrepareResult:
    """`prepare` with cfg.model resolved, as `text2sql prepare` does it."""
    return prepare(cfg, open_model(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code), **kwargs)

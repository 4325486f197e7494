"""The config a probe runs with: the run's own, on a sample of its rows, in a folder of its own,
with nothing that costs money or leaves copies behind; and where a teacher would label the
training pairs, pairs sampled from the same databases in their place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from text2sql.config import Config

# Rows of each split the probe prepares: enough for their token lengths, few enough to stay fast.
PROBE_ROWS = {"train": 2000, "validation": 200, "test": 200}


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The probe's stages speak at warning level only: their progress lines would read like the run's."""
    import datasets  # noqa: F401  (imported first, so that its bars are hidden too)

    from text2sql.progress import progress_bars_disabled
    from text2sql.training.quiet import quiet_library_warnings

    loggers = [logging.getLogger(name) for name in ("text2sql", "transformers", "datasets")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with progress_bars_disabled(), quiet_library_warnings():  # the run's own trainer hides the same
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def probe_config(cfg: Config, folder: Path, questions: tuple[int, dict[str, str]] | None = None) -> Config:
    """`cfg` for a probe in `folder`: the probe's row caps, no tracker, no teacher, no copies.
    `questions`: `label_questions(cfg)` where sampled pairs stand in for data.label's (`labels_stood_in`)."""
    work = cfg.model_copy(deep=True)
    work.output_dir = str(folder / "run")
    work.tracking.backend = "none"
    work.callbacks.checkpoint_sync = None
    work.callbacks.early_stopping_patience = None
    work.callbacks.execution_accuracy_samples = 0
    work.data.label = None  # a teacher's answers cost money: the probe prepares the data it has
    if work.data.synth is not None:
        work.data.synth.teacher = None
    elif questions is not None:
        from text2sql.config.sections import SynthConfig

        # The teacher's pairs do not exist before the run. Pairs sampled from the same databases stand
        # in for them: the same schemas in the prompts, and SQL of the lengths those databases ask for.
        count, databases = questions
        work.data.synth = SynthConfig(n=max(1, min(count, PROBE_ROWS["train"])))
        if databases and not (work.data.databases or work.data.db):
            work.data.databases = databases  # the databases the questions ask about
    for split, cap in PROBE_ROWS.items():
        mine = getattr(work.data.max_samples, split)
        setattr(work.data.max_samples, split, cap if mine is None else min(mine, cap))
    return work


def labels_stood_in(cfg: Config) -> bool:
    """Whether the probe trains on sampled pairs in place of data.label's (which need the teacher)."""
    return cfg.data.label is not None and cfg.data.synth is None


def label_questions(cfg: Config) -> tuple[int, dict[str, str]]:
    """How many questions data.label's file holds (each one a training pair if the teacher keeps
    it), and the databases they ask about (db_id -> file or URL)."""
    from text2sql.data.readers import ReadOptions, read_examples
    from text2sql.inference.label import question_column

    assert cfg.data.label is not None
    opts = ReadOptions.from_config(cfg.data)
    opts.require_sql = False
    opts.question_column = question_column(cfg.data.label.file)
    count, databases = 0, dict[str, str]()
    for example in read_examples(cfg.data.label.file, opts):
        count += 1
        if example.db_id and example.db_path:
            databases.setdefault(example.db_id, str(example.db_path))
    return count, databases


@contextlib.contextmanager
def stand_ins_unsaid(cfg: Config) -> Iterator[None]:
    """Without the warning prepare gives for sampled pairs alone when they only stand in for
    data.label's pairs (`probe_config`): the run itself trains on the teacher's."""

    def said(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("only synthesized pairs")

    logger = logging.getLogger("text2sql.data.prepare")
    if labels_stood_in(cfg):
        logger.addFilter(said)
    try:
        yield
    finally:
        logger.removeFilter(said)

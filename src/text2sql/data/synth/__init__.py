"""Training pairs from the database alone (`text2sql synth`, `data.synth`).

SQL is sampled from each database's schema and its real values, one complexity class at a time
(basic, aggregation, ordering, join, nested, set operation: the classes the evaluator reports),
written in the database's own dialect, run on the read-only engine with a time bound and kept only
when its result is non-empty and not degenerate. Questions come from templates over humanised names,
or from a teacher model whose wording is kept when its own SQL for it returns the same result.

    pairs, report = synthesize({"shop": "shop.sqlite"}, 500, seed=0)
    write_pairs(pairs, report, Path("pairs.jsonl"))     # + pairs.report.json

Modules: `profile` (what the database holds), `names` (what a question calls tables and columns),
`joins` (declared and plausible keys) and `paths` (three tables along two keys), `conditions` (the
filters a question names) and `wording` (its other words), `shapes` (by class: `table_shapes`,
`join_shapes`, `nested_shapes`, `set_shapes`, over `candidate`) and `phrasings` (the question
templates of each query shape), `checks` (what a result must be), `dedup`, `teacher`, `sampler` (the
balanced, seeded loop), `report`, `output`, `targets`, and `cached` (data.synth in a run).
"""

from __future__ import annotations

from text2sql.data.synth.output import check_output, report_path, write_pairs
from text2sql.data.synth.report import SynthReport
from text2sql.data.synth.sampler import SOURCE, Pair, synthesize
from text2sql.data.synth.shapes import CLASSES
from text2sql.data.synth.targets import databases_from_args, databases_from_config
from text2sql.data.synth.teacher import Teacher

__all__ = [
    "CLASSES",
    "SOURCE",
    "Pair",
    "SynthReport",
    "Teacher",
    "check_output",
    "databases_from_args",
    "databases_from_config",
    "report_path",
    "synthesize",
    "write_pairs",
]

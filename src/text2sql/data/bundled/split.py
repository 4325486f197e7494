"""The deterministic train/validation/test split of the generated pairs."""

from __future__ import annotations

import random

from text2sql.data.bundled.pairs import Pair

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def split_pairs(pairs: list[Pair], rng: random.Random) -> dict[str, list[Pair]]:
    """Assign every pair to a split, keeping all phrasings of one SQL query in the same split.

    The split is by pair, not by template: every template and every phrasing is in train. But
    pairs that share their SQL (the same values asked in other words) stay together, so the values
    of a validation or test pair never appear with its template in training: evaluation measures
    generalisation to new values, not recall of a query seen under another phrasing. Questions are
    unique across the dataset (see `pairs.expand`), so no evaluation question is a training one.

    Groups are dealt out template by template, each to the split furthest below its share so far.
    A phrasing left without a training pair then gets one of its groups moved to train.
    """
    by_template: dict[tuple[str, str], dict[str, list[Pair]]] = {}
    for pair in pairs:
        by_template.setdefault((pair.db_id, pair.template), {}).setdefault(pair.sql, []).append(pair)
    groups: list[list[Pair]] = []
    assignment: list[str] = []
    # Counted over the whole dataset: templates whose groups are large (few values, several
    # phrasings each) cannot hit 10% exactly, and the shortfall is made up by the next ones.
    counts = dict.fromkeys(FRACTIONS, 0)
    done = 0
    for by_sql in by_template.values():
        template_groups = list(by_sql.values())
        rng.shuffle(template_groups)
        for group in template_groups:
            done += len(group)
            split = max(FRACTIONS, key=lambda s: FRACTIONS[s] * done - counts[s])
            counts[split] += len(group)
            groups.append(group)
            assignment.append(split)

    in_train = {(p.db_id, p.template, p.paraphrase) for g, s in zip(groups, assignment) if s == "train" for p in g}
    for index, group in enumerate(groups):
        missing = {(p.db_id, p.template, p.paraphrase) for p in group} - in_train
        if missing and assignment[index] != "train":
            assignment[index] = "train"
            in_train |= missing

    splits: dict[str, list[Pair]] = {split: [] for split in FRACTIONS}
    for group, split in zip(groups, assignment):
        splits[split].extend(group)
    return splits

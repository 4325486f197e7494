"""The deterministic train/validation/test split of the generated pairs."""

from __future__ import annotations

import random

from text2sql.data.bundled.pairs import Pair

FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def split_pairs(pairs: list[Pair], rng: random.Random) -> dict[str, list[Pair]]:
    """Assign every pair to a split, keeping all paraphrases of one SQL query in the same split.

    Pairs are grouped by their SQL, so validation and test hold only queries (value combinations)
    that training never shows: they measure generalisation to new values, not recall. Groups are
    dealt out template by template, each to the split furthest below its share so far, so every
    template is spread over all splits in about the target proportions. Finally any paraphrase that
    ended up with no training example gets one group moved to train, so that every question
    phrasing is learnable.
    """
    groups: list[list[Pair]] = []
    by_template: dict[tuple[str, str], dict[str, list[Pair]]] = {}
    for pair in pairs:
        by_template.setdefault((pair.db_id, pair.template), {}).setdefault(pair.sql, []).append(pair)
    assignment: list[str] = []
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

    in_train = {
        (p.db_id, p.template, p.paraphrase) for g, s in zip(groups, assignment) if s == "train" for p in g
    }
    for index, group in enumerate(groups):
        missing = {(p.db_id, p.template, p.paraphrase) for p in group} - in_train
        if missing and assignment[index] != "train":
            assignment[index] = "train"
            in_train |= missing

    splits: dict[str, list[Pair]] = {split: [] for split in FRACTIONS}
    for group, split in zip(groups, assignment):
        splits[split].extend(group)
    return splits

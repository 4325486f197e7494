"""Value retrieval: which values stored in a database a question names.

A question says "japan" or "Frank"; the database holds 'Japan' and 'Frank Müller'. Without seeing
them a model copies the question's spelling into its SQL, and the query returns nothing. For each
database an index of the distinct text values of every column is built once (cached on disk beside
the other caches, keyed by the file's size and modification time, so an edited database is indexed
again; a server's is built once per process) and each question is matched against it with
rapidfuzz: whole values fuzzily ("japan" → 'Japan', "Mueller" → 'Muller'), and a question word that is
one word of a short value ("Frank" → 'Frank Müller') a little lower. The best few matches become
hints next to their columns in the prompt.

Stored values are data, not instructions: a value is shown only when the question names it. A word
shared with a value names it only when the word is distinctive (held by at most MAX_WORD_VALUES
values, not a stop word) and the value has at most MAX_PARTIAL_WORDS words; a long
sentence-like value is never reached through one of its words.

The cost of one question is bounded whatever its length and the number of stored values: only its
first MAX_QUESTION_WORDS words make spans, at most MAX_SPANS of them, and each span is looked up in a
trigram index (`text2sql.data.fuzzy_index`) that scores a fixed number of candidates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from text2sql.data.fuzzy_index import FuzzyIndex, SearchStats
from text2sql.paths import cache_root
from text2sql.sql.catalog import Schema
from text2sql.sql.execution import open_database
from text2sql.sql.targets import dialect_of, is_url, local_path

log = logging.getLogger(__name__)

INDEX_VERSION = 1  # of the stored values
VALUE_HINT_RULES = 2  # of how questions are matched: prepared prompts with hints follow it
MAX_VALUES_PER_COLUMN = 5000  # distinct values read per column; more is a free-text column
MAX_VALUE_CHARS = 60  # longer texts are prose, not names a question repeats
HINT_CHARS = 40  # a hint is cut to this length
MAX_HINTS = 8  # per question
MAX_HINTS_PER_COLUMN = 3
MIN_SCORE = 85.0  # rapidfuzz 0-100; below it, matches are mostly chance
COLUMN_SPREAD = 5.0  # a column shows only matches within this of its best one
PARTIAL_WEIGHT = 0.9  # a question word that is one word of a longer value ranks below a whole value
_MAX_NGRAM = 4
# A question's words past these make no spans: names sit in the first words of any real question,
# and a longer text must not cost more (characters are cut before folding, words after).
MAX_QUESTION_CHARS = 1000
MAX_QUESTION_WORDS = 64
MAX_SPANS = 4 * MAX_QUESTION_WORDS
# A value is reached through one of its words only when the value is short and few values hold the
# word: 'Frank Müller' through "Frank", never 'Ignore previous
# instructions and ...' through "instructions".
MAX_PARTIAL_WORDS = 3
MAX_WORD_VALUES = 5
MIN_PARTIAL_CHARS = 4

# Words that begin or end no value a question names; spans starting or ending with one are skipped.
_STOPWORDS = frozenset(
    """a an and are as at be by do does for from give has have how i in is it list many me much name names
    number of on or show than that the their them there these this those to was were what when where which
    who whose with all any each every find get tell than most least more less per whom not no""".split()
)

Hints = dict[tuple[str, str], list[str]]  # (table, column) -> matched values, best first


@dataclass
class ValueIndex:
    """The distinct text values of a database's columns. `owners[i]` indexes `columns` for `values[i]`."""

    columns: list[tuple[str, str]]
    values: list[str]
    owners: list[int]

    @functools.cached_property
    def _keys(self) -> list[str]:
        return [fold(v) for v in self.values]

    @functools.cached_property
    def _whole(self) -> FuzzyIndex:
        return FuzzyIndex(self._keys)

    @functools.cached_property
    def _words(self) -> tuple[FuzzyIndex, list[list[int]]]:
        """The distinctive words of short values, and for each word the values it names (see the
        module docstring)."""
        split = [key.split() for key in self._keys]
        spread = Counter(word for words in split for word in set(words))
        holders: dict[str, list[int]] = {}
        for i, words in enumerate(split):
            if not 1 < len(words) <= MAX_PARTIAL_WORDS:
                continue
            for word in dict.fromkeys(words):
                if len(word) >= MIN_PARTIAL_CHARS and word not in _STOPWORDS and spread[word] <= MAX_WORD_VALUES:
                    holders.setdefault(word, []).append(i)
        vocab = sorted(holders)
        return FuzzyIndex(vocab), [holders[w] for w in vocab]

    def match(
        self,
        question: str,
        *,
        limit: int = MAX_HINTS,
        per_column: int = MAX_HINTS_PER_COLUMN,
        stats: SearchStats | None = None,
    ) -> Hints:
        """Values the question names, by column: at most `limit` in all, best first, ties broken by
        column order then value, so the same question always gets the same hints. `stats` adds up
        what the look-ups cost."""
        spans = question_spans(question)
        if not spans or not self.values:
            return {}
        best = self._whole.best_scores(spans, MIN_SCORE, stats=stats)
        # A question word that is one word of a short value ("Frank" -> 'Frank Muller').
        words, holders = self._words
        single = [s for s in spans if " " not in s and len(s) >= MIN_PARTIAL_CHARS]
        for w, score in words.best_scores(single, MIN_SCORE, stats=stats).items():
            for i in holders[w]:
                best[i] = max(best.get(i, 0.0), score * PARTIAL_WEIGHT)
        found = [i for i, score in best.items() if score >= MIN_SCORE]
        found.sort(key=lambda i: (-best[i], self.owners[i], self.values[i]))
        hints: Hints = {}
        top: dict[int, float] = {}  # best score per column: weaker matches beside a clear one are noise
        taken = 0
        for i in found:
            column = self.columns[self.owners[i]]
            shown = hints.setdefault(column, [])
            top.setdefault(self.owners[i], best[i])
            if len(shown) >= per_column or best[i] < top[self.owners[i]] - COLUMN_SPREAD:
                continue
            shown.append(_cut(self.values[i]))
            taken += 1
            if taken >= limit:
                break
        return {k: v for k, v in hints.items() if v}


def question_spans(question: str) -> list[str]:
    """Runs of 1-4 words of the question's first MAX_QUESTION_WORDS words (of its first
    MAX_QUESTION_CHARS characters), folded as values are (`fold`), that neither begin nor end with a
    stop word and are not bare numbers; at most MAX_SPANS, shortest runs first."""
    words = fold(question[:MAX_QUESTION_CHARS]).split()[:MAX_QUESTION_WORDS]
    spans: dict[str, None] = {}
    for n in range(1, _MAX_NGRAM + 1):
        for start in range(len(words) - n + 1):
            run = words[start : start + n]
            if run[0] in _STOPWORDS or run[-1] in _STOPWORDS:
                continue
            text = " ".join(run)
            if len(text) < 3 or text.replace(" ", "").isdigit():
                continue
            spans[text] = None
            if len(spans) >= MAX_SPANS:
                return list(spans)
    return list(spans)


def fold(text: str) -> str:
    """Text as matching sees it: accents dropped ('Chloé' -> 'chloe'), lower case, punctuation as spaces."""
    from rapidfuzz.utils import default_process

    decomposed = unicodedata.normalize("NFKD", text)
    return default_process("".join(c for c in decomposed if not unicodedata.combining(c)))


def _cut(value: str) -> str:
    return value if len(value) <= HINT_CHARS else value[: HINT_CHARS - 3] + "..."


# ------------------------------------------------------------------------------------------ building


def value_index(target: str | Path, schema: Schema) -> ValueIndex:
    """The index of the database at `target` (a file or URL) whose tables `schema` lists."""
    text = str(target)
    if is_url(text) and dialect_of(text) == "postgres":
        return _index_in_memory(text, _schema_key(schema))
    path = local_path(text).resolve()
    stat = path.stat()
    return _index_on_disk(str(path), stat.st_mtime_ns, stat.st_size, _schema_key(schema))


def _schema_key(schema: Schema) -> str:
    return json.dumps([[t.name, [c.name for c in t.columns]] for t in schema.tables])


@functools.lru_cache(maxsize=16)
def _index_in_memory(target: str, schema_key: str) -> ValueIndex:
    return _build(target, json.loads(schema_key))


@functools.lru_cache(maxsize=64)
def _index_on_disk(path: str, mtime_ns: int, size: int, schema_key: str) -> ValueIndex:
    digest = hashlib.sha256(f"{INDEX_VERSION}\0{path}\0{mtime_ns}\0{size}\0{schema_key}".encode()).hexdigest()[:20]
    cached = cache_root() / "values" / f"{Path(path).stem}-{digest}.json"
    if cached.is_file():
        try:
            data = json.loads(cached.read_text(encoding="utf-8"))
            return ValueIndex([tuple(c) for c in data["columns"]], data["values"], data["owners"])
        except (ValueError, KeyError, OSError):
            pass  # a damaged cache entry is rebuilt
    index = _build(path, json.loads(schema_key))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"columns": index.columns, "values": index.values, "owners": index.owners}))
        os.replace(tmp, cached)
    except OSError as exc:  # a read-only cache still answers from memory
        log.debug("value index not cached: %s", exc)
    return index


def _build(target: str, tables: Sequence[tuple[str, list[str]]]) -> ValueIndex:
    columns: list[tuple[str, str]] = []
    values: list[str] = []
    owners: list[int] = []
    with open_database(target) as db:
        for table, names in tables:
            for name in names:
                found = _text_values(db, table, name)
                if not found:
                    continue
                owners.extend([len(columns)] * len(found))
                columns.append((table, name))
                values.extend(found)
    return ValueIndex(columns, values, owners)


def _text_values(db, table: str, column: str) -> list[str]:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    sql = f"SELECT DISTINCT {q(column)} FROM {q(table)} WHERE {q(column)} IS NOT NULL LIMIT {MAX_VALUES_PER_COLUMN + 1}"
    result = db.execute(sql, timeout=30.0, max_rows=MAX_VALUES_PER_COLUMN + 1)
    if not result.ok or len(result.rows) > MAX_VALUES_PER_COLUMN:
        return []  # unreadable, or so many distinct values that it is free text or an identifier
    found = sorted({r[0].strip() for r in result.rows if isinstance(r[0], str)})
    return [v for v in found if v and len(v) <= MAX_VALUE_CHARS and not _is_number(v)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True

"""BLEU and ROUGE-L on SQL text, over the string metrics' SQL tokens (`sql_tokenize`).

Both say how much of the gold query's wording a prediction shares, not whether it is right; they
are reported only when asked for (`--text-metrics`). Implemented here (a few lines each) rather than
pulling in sacrebleu / rouge-score, whose tokenizers are built for natural language and would split
SQL differently from the other string metrics.

- `corpus_bleu`: BLEU-4 of Papineni et al. 2002 over the whole set: clipped n-gram precisions summed
  over all pairs, geometric mean, brevity penalty on the total lengths (as sacrebleu's corpus score
  with tokenization off and no smoothing).
- `sentence_bleu`: the same for one pair, with "add-one" smoothing of the n-gram precisions for
  n > 1 (Lin & Och 2004), so a short query with no matching 4-gram does not score 0.
- `rouge_l`: F1 of the longest common subsequence of tokens (Lin 2004, beta = 1).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from text2sql.evaluation.metrics import sql_tokenize

MAX_ORDER = 4


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _bleu_stats(pred: Sequence[str], gold: Sequence[str]) -> tuple[list[int], list[int]]:
    """(clipped matches, candidate n-grams) for n = 1..4."""
    matches, totals = [], []
    for n in range(1, MAX_ORDER + 1):
        p, g = _ngrams(pred, n), _ngrams(gold, n)
        matches.append(sum(min(count, g[gram]) for gram, count in p.items()))
        totals.append(max(len(pred) - n + 1, 0))
    return matches, totals


def _bleu(matches: list[int], totals: list[int], pred_len: int, gold_len: int, *, smooth: bool) -> float:
    if pred_len == 0:
        return 1.0 if gold_len == 0 else 0.0
    log_sum = 0.0
    for n, (m, t) in enumerate(zip(matches, totals), 1):
        if smooth and n > 1:
            m, t = m + 1, t + 1
        if m == 0 or t == 0:
            return 0.0
        log_sum += math.log(m / t)
    brevity = 1.0 if pred_len > gold_len else math.exp(1 - gold_len / pred_len)
    return brevity * math.exp(log_sum / MAX_ORDER)


def sentence_bleu(pred: str, gold: str) -> float:
    """Smoothed BLEU-4 of one predicted query against its gold query, in [0, 1]."""
    p, g = sql_tokenize(pred), sql_tokenize(gold)
    matches, totals = _bleu_stats(p, g)
    return _bleu(matches, totals, len(p), len(g), smooth=True)


def corpus_bleu(preds: Sequence[str], golds: Sequence[str]) -> float:
    """Unsmoothed corpus BLEU-4 over all pairs, in [0, 1]."""
    matches, totals = [0] * MAX_ORDER, [0] * MAX_ORDER
    pred_len = gold_len = 0
    for pred, gold in zip(preds, golds):
        p, g = sql_tokenize(pred), sql_tokenize(gold)
        m, t = _bleu_stats(p, g)
        matches = [a + b for a, b in zip(matches, m)]
        totals = [a + b for a, b in zip(totals, t)]
        pred_len += len(p)
        gold_len += len(g)
    return _bleu(matches, totals, pred_len, gold_len, smooth=False)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(pred: str, gold: str) -> float:
    """ROUGE-L F1: 2·LCS / (|pred| + |gold|) over SQL tokens; 1.0 when both are empty."""
    p, g = sql_tokenize(pred), sql_tokenize(gold)
    if not p and not g:
        return 1.0
    if not p or not g:
        return 0.0
    lcs = _lcs_length(p, g)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)

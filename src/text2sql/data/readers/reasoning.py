"""Targets written as reasoning followed by a fenced SQL block (SynSQL / OmniSQL style).

    Let me find the singers first ...
    ```sql
    SELECT count(*) FROM singer
    ```

becomes reasoning "Let me find the singers first ..." and SQL "SELECT count(*) FROM singer".
"""

from __future__ import annotations

import re

# A fenced block tagged sql/sqlite (any case) or untagged: in a text-to-SQL target an untagged block
# is the SQL. Blocks tagged with another language (```python) are not SQL.
_SQL_FENCE = re.compile(r"```[ \t]*(?:sql|sqlite)?[ \t]*\r?\n(.*?)```", re.IGNORECASE | re.DOTALL)


def split_reasoning(target: str) -> tuple[str | None, str]:
    """(reasoning or None, sql) from a target text.

    With several SQL blocks the last one is the answer (earlier ones are drafts inside the
    reasoning, which keeps them). Text after the last block is dropped: it is commentary the model
    should not learn to produce. A target without a fenced block is all SQL.
    """
    blocks = list(_SQL_FENCE.finditer(target))
    if not blocks:
        return None, target.strip()
    last = blocks[-1]
    reasoning = target[: last.start()].strip()
    return (reasoning or None), last.group(1).strip()

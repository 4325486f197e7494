"""Data: readers into one `Example` record, schema text, prompts and dataset preparation."""

from text2sql.data.example import Example

__all__ = ["Example"]

"""text2sql: turn a text-to-SQL dataset into a small model that answers with SQL only."""

__version__ = "0.1.0"

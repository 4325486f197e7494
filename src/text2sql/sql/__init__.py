"""SQL text and its execution: pulling the SQL out of a model's answer (`extract`), running untrusted
SQL read-only with a timeout and a row cap (`execution`), deciding whether two results are the same
(`equivalence`) and judging a prediction against its gold query by execution (`match`)."""

"""SQLite functions, reviewed: those a question about the data may need and that have no effect
outside the query (allowed, by category), and those refused by what they reach (refused, by category).

SQLite asks the connection's authorizer before it compiles any function call, so this list is the
authority there: a function on neither list (an application-defined one, or one a newer SQLite adds)
is refused as not reviewed. Names are checked against `pragma_function_list`
(tests/sql/test_function_lists.py).
"""

ALLOWED = {
    "math": """abs acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 log2
        mod pi pow power radians round sign sin sinh sqrt tan tanh trunc random""",
    "string": """char format glob hex instr length like lower ltrim octet_length printf quote replace rtrim soundex
        substr substring trim unhex unicode upper concat concat_ws""",
    "date and time": "date datetime julianday strftime time unixepoch timediff current_date current_time current_timestamp",
    "json": """json json_array json_array_length json_extract json_group_array json_group_object json_insert
        json_object json_patch json_quote json_remove json_replace json_set json_type json_valid json_each
        json_tree jsonb json_pretty -> ->>""",
    "aggregate": "avg count group_concat max min sum total string_agg",
    "window": """cume_dist dense_rank first_value lag last_value lead nth_value ntile percent_rank rank
        row_number""",
    "conditional": "coalesce ifnull iif if nullif likelihood likely unlikely",
    "type of a value": "typeof subtype",
    "blob": "zeroblob randomblob",
    "full-text search": "match bm25 highlight snippet offsets matchinfo",
}

REFUSED = {
    "runs native code": "load_extension fts3_tokenizer",
    "reads or writes files": "readfile writefile edit fsdir",
    "reads or changes server state": """changes total_changes last_insert_rowid sqlite_compileoption_get
        sqlite_compileoption_used sqlite_log sqlite_source_id sqlite_version sqlite_offset optimize fts5
        fts5_source_id shell_add_schema rtreecheck rtreedepth rtreenode""",
}

REFUSED_PREFIXES: dict[str, tuple[str, ...]] = {"reads or changes server state": ("sqlite_",)}

# Allowed names this SQLite's `pragma_function_list` does not list: functions of later releases, and
# table-valued functions (json_each, json_tree), which the authorizer sees as reads, not calls.
NOT_IN_CATALOG = "concat concat_ws if json_each json_tree json_pretty jsonb octet_length string_agg timediff unhex"

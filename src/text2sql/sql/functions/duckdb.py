"""DuckDB functions, reviewed: those a question about the data may need and that have no effect
outside the query (allowed, by category), and those refused by what they reach (refused, by category).

A function on neither list is refused as not reviewed, so a function of a newly loaded extension runs
only once it has been read and added here. Names are DuckDB's, checked against `duckdb_functions()`
(tests/sql/test_function_lists.py). Operators (`+`, `||`, `->>`) are syntax, not checked by name.
"""

ALLOWED = {
    "math": """abs acos acosh asin asinh atan atan2 atanh bit_count bit_position cbrt ceil ceiling cos cosh cot
        degrees even exp factorial floor gamma gcd greatest_common_divisor isfinite isinf isnan lcm
        least_common_multiple lgamma ln log log10 log2 nextafter pi pow power radians random round round_even
        roundbankers sign signbit sin sinh sqrt tan tanh trunc xor fdiv fmod divide add subtract multiply mod
        get_bit set_bit bin hex unbin unhex to_base to_binary from_binary""",
    "string": """ascii bar bit_length char_length character_length chr concat concat_ws contains ends_with format
        from_base64 to_base64 base64 hash ilike_escape instr lcase left left_grapheme len length length_grapheme
        like_escape lower lpad ltrim md5 md5_number md5_number_lower md5_number_upper nfc_normalize
        not_ilike_escape not_like_escape octet_length ord overlay position prefix printf regexp_escape
        regexp_extract regexp_extract_all regexp_full_match regexp_matches regexp_replace regexp_split_to_array
        regexp_split_to_table repeat replace reverse right right_grapheme rpad rtrim sha1 sha256 split split_part
        starts_with str_split str_split_regex string_split string_split_regex string_to_array strip_accents strlen
        strpos substr substring substring_grapheme suffix to_hex translate trim ucase unicode upper url_decode
        url_encode encode decode formatreadabledecimalsize formatreadablesize format_bytes parse_formatted_bytes
        damerau_levenshtein editdist3 hamming jaccard jaro_similarity jaro_winkler_similarity levenshtein
        mismatches""",
    "date and time": """age century current_date current_localtime current_localtimestamp date_add date_diff
        date_part date_sub date_trunc datediff datepart datesub datetrunc day dayname dayofmonth dayofweek
        dayofyear days_in_month decade epoch epoch_ms epoch_ns epoch_us era get_current_time
        get_current_timestamp hour isodow isoyear julian last_day make_date make_time make_timestamp
        make_timestamp_ms make_timestamp_ns make_timestamptz microsecond millennium millisecond minute month
        monthname nanosecond normalized_interval now quarter second strftime strptime time_bucket timezone
        timezone_hour timezone_minute to_centuries to_days to_decades to_hours to_microseconds to_millennia
        to_milliseconds to_minutes to_months to_quarters to_seconds to_timestamp to_weeks to_years today
        transaction_timestamp try_strptime week weekday weekofyear year yearweek ago""",
    "list and array": """array_append array_cat array_concat array_contains array_cosine_distance
        array_cosine_similarity array_cross_product array_distance array_distinct array_dot_product
        array_extract array_filter array_grade_up array_has array_has_all array_has_any array_indexof
        array_inner_product array_intersect array_length array_negative_dot_product array_negative_inner_product
        array_pop_back array_pop_front array_position array_prepend array_push_back array_push_front
        array_reduce array_resize array_reverse array_reverse_sort array_select array_slice array_sort
        array_to_string array_transform array_unique array_value array_where array_zip array_apply
        array_aggr array_aggregate aggregate apply cardinality element_at filter flatten generate_series
        generate_subscripts grade_up list_aggr list_aggregate list_any_value list_append list_apply
        list_approx_count_distinct list_avg list_bit_and list_bit_or list_bit_xor list_bool_and list_bool_or
        list_cat list_concat list_contains list_cosine_distance list_cosine_similarity list_count list_distance
        list_distinct list_dot_product list_element list_entropy list_extract list_filter list_first
        list_grade_up list_has list_has_all list_has_any list_histogram list_indexof list_inner_product
        list_intersect list_kurtosis list_kurtosis_pop list_last list_mad list_max list_median list_min
        list_mode list_negative_dot_product list_negative_inner_product list_pack list_position list_prepend
        list_product list_reduce list_resize list_reverse list_reverse_sort list_select list_sem list_skewness
        list_slice list_sort list_stddev_pop list_stddev_samp list_string_agg list_sum list_transform
        list_unique list_value list_var_pop list_var_samp list_where list_zip range reduce unnest""",
    "struct and map": """map map_concat map_contains map_contains_entry map_contains_value map_entries map_extract
        map_extract_value map_from_entries map_keys map_values struct_concat struct_contains struct_extract
        struct_extract_at struct_has struct_indexof struct_insert struct_keys struct_pack struct_position
        struct_update struct_values row union_extract union_tag union_value""",
    "json": """array_to_json from_json from_json_strict json json_array json_array_length json_contains
        json_deep_merge json_each json_exists json_extract json_extract_path json_extract_path_text
        json_extract_string json_group_array json_group_object json_group_structure json_insert json_keys
        json_merge_patch json_object json_pretty json_quote json_remove json_replace json_set json_strip_nulls
        json_structure json_transform json_transform_strict json_tree json_type json_valid json_value
        row_to_json to_json""",
    "aggregate": """any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null
        arg_max_nulls_last arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg avg bit_and bit_or
        bit_xor bitstring_agg bool_and bool_or corr count count_if count_star countif covar_pop covar_samp entropy
        favg first fsum geomean geometric_mean group_concat histogram_exact kahan_sum kurtosis
        kurtosis_pop last list listagg mad max max_by mean median min min_by mode product quantile quantile_cont
        quantile_disc regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy
        regr_syy reservoir_quantile sem skewness stddev stddev_pop stddev_samp string_agg sum sum_no_overflow
        sumkahan var_pop var_samp variance wavg weighted_avg""",
    "window": """cume_dist dense_rank fill first_value lag last_value lead nth_value ntile percent_rank rank
        rank_dense row_number""",
    "conditional": "coalesce nullif greatest least if ifnull switch",
    "type of a value": "typeof pg_typeof can_cast_implicitly",
    "enum": "enum_code enum_first enum_last enum_range enum_range_boundary",
    "uuid": "gen_random_uuid uuid uuidv4 uuidv7 uuid_extract_timestamp uuid_extract_version",
}

REFUSED = {
    "runs SQL given as text": "query query_table json_execute_serialized_sql",
    "reads or writes files": "glob sniff_csv copy_database import_database",
    "changes or reads sequences": "nextval currval setval",
    "waits": "sleep_ms",
    "reads or changes server state": """getenv current_setting setseed checkpoint force_checkpoint version platform
        user_agent current_query current_query_id current_connection_id current_transaction_id txid_current
        getvariable write_log stats vector_type error which_secret database_size database_list functions
        collations show show_databases show_tables show_tables_expanded table_info storage_info metadata_info
        summary test_all_types test_vector_types truncate_duckdb_logs extension_versions current_database
        current_schema current_schemas current_catalog current_role current_user session_user user
        col_description obj_description shobj_description format_type format_pg_type get_block_size in_search_path
        inet_client_addr inet_client_port inet_server_addr inet_server_port""",
}

REFUSED_PREFIXES = {
    "reads or writes files": ("read_", "parquet_"),
    "reaches other servers": ("postgres_", "mysql_", "sqlite_", "http"),
    "reads or changes server state": (
        "duckdb_",
        "pragma_",
        "pg_",
        "has_",
        "enable_",
        "disable_",
        "icu_",
        "__internal",
        "add_",
        "remove_",
        "register_",
        "deregister_",
        "create_",
        "destroy_",
        "python_",
    ),
}
REFUSED_SUFFIXES = {"reads or writes files": ("_scan",)}

# Allowed names that `duckdb_functions()` does not list: syntax the parser turns into its own node.
NOT_IN_CATALOG = "coalesce ifnull"
# Allowed although DuckDB marks them as having side effects: they read a random generator.
VOLATILE_OK = "random gen_random_uuid uuid uuidv4 uuidv7"
# Table functions allowed: they make rows from their arguments, nothing else.
TABLE_FUNCTIONS_OK = "range generate_series unnest json_each json_tree repeat"

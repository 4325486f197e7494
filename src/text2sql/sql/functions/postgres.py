"""PostgreSQL functions, reviewed: those a question about the data may need and that have no effect
outside the query (allowed, by category), and those refused by what they reach (refused, by category).

A function on neither list is refused as not reviewed: a function from a newly installed extension
runs only once someone has read what it does and added it here. Names are PostgreSQL 15's, checked
against `pg_proc` with every contrib extension installed (tests/sql/test_function_lists.py); a few
later releases' names are listed where they are plainly harmless.
"""

ALLOWED = {
    "math": """abs cbrt ceil ceiling degrees div exp factorial floor gcd lcm ln log log10 min_scale mod pi
        power pow radians round scale sign sqrt trim_scale trunc width_bucket random random_normal
        acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand sinh cosh tanh asinh
        acosh atanh erf erfc""",
    "string": """ascii bit_length btrim char_length character_length chr concat concat_ws format initcap left length
        lower lpad ltrim md5 normalize is_normalized octet_length overlay position quote_ident quote_literal
        quote_nullable regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
        regexp_split_to_array regexp_split_to_table regexp_substr repeat replace reverse right rpad rtrim
        split_part starts_with string_to_array string_to_table strpos substr substring to_ascii to_hex translate
        unistr upper trim sha224 sha256 sha384 sha512 encode decode convert convert_from convert_to get_bit
        get_byte set_bit set_byte bit_count""",
    "formatting": "to_char to_date to_number to_timestamp",
    "date and time": """age clock_timestamp date_add date_bin date_part date_subtract date_trunc extract isfinite
        justify_days justify_hours justify_interval make_date make_interval make_time make_timestamp
        make_timestamptz now statement_timestamp timeofday transaction_timestamp timezone overlaps""",
    "type conversion": """int2 int4 int8 float4 float8 numeric text varchar bpchar bool date time timetz timestamp
        timestamptz interval money""",
    "enum": "enum_first enum_last enum_range",
    "geometry": """area center diameter height isclosed isopen npoints pclose popen radius slope width box circle
        line lseg path point polygon bound_box""",
    "network address": """abbrev broadcast family host hostmask inet_merge inet_same_family masklen netmask network
        set_masklen""",
    "text search": """to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank ts_rank_cd
        ts_headline setweight strip numnode querytree ts_delete ts_filter tsvector_to_array array_to_tsvector
        tsquery_phrase json_to_tsvector jsonb_to_tsvector""",
    "uuid": "gen_random_uuid",
    "json": """json_agg json_agg_strict jsonb_agg jsonb_agg_strict json_object_agg jsonb_object_agg
        json_object_agg_strict json_object_agg_unique json_object_agg_unique_strict jsonb_object_agg_strict
        jsonb_object_agg_unique jsonb_object_agg_unique_strict json_array_elements json_array_elements_text
        jsonb_array_elements jsonb_array_elements_text json_array_length jsonb_array_length json_build_array
        json_build_object jsonb_build_array jsonb_build_object json_each json_each_text jsonb_each jsonb_each_text
        json_extract_path json_extract_path_text jsonb_extract_path jsonb_extract_path_text json_object jsonb_object
        json_object_keys jsonb_object_keys json_populate_record json_populate_recordset jsonb_populate_record
        jsonb_populate_recordset json_strip_nulls jsonb_strip_nulls json_to_record json_to_recordset
        jsonb_to_record jsonb_to_recordset json_typeof jsonb_typeof jsonb_insert jsonb_set jsonb_set_lax
        jsonb_pretty jsonb_path_exists jsonb_path_match jsonb_path_query jsonb_path_query_array
        jsonb_path_query_first jsonb_path_exists_tz jsonb_path_match_tz jsonb_path_query_tz
        jsonb_path_query_array_tz jsonb_path_query_first_tz to_json to_jsonb row_to_json array_to_json json_array
        json_arrayagg json_objectagg json_scalar json_serialize""",
    "array": """array_agg array_append array_cat array_dims array_fill array_length array_lower array_ndims
        array_position array_positions array_prepend array_remove array_replace array_to_string array_upper
        cardinality trim_array unnest array_sample array_shuffle generate_subscripts""",
    "range": """lower_inc upper_inc lower_inf upper_inf isempty range_merge int4range int8range numrange tsrange
        tstzrange daterange int4multirange int8multirange nummultirange tsmultirange tstzmultirange
        datemultirange multirange""",
    "aggregate": """avg bit_and bit_or bit_xor bool_and bool_or count every max min sum string_agg any_value corr
        covar_pop covar_samp regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy
        regr_syy stddev stddev_pop stddev_samp variance var_pop var_samp mode percentile_cont percentile_disc
        range_agg range_intersect_agg""",
    "window": """row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
        nth_value""",
    "set returning": "generate_series",
    "conditional": "coalesce nullif greatest least num_nulls num_nonnulls",
    "type of a value": "pg_typeof",
    # Functions of reviewed contrib extensions: text matching and types with no effect outside the query.
    "extension: fuzzystrmatch": "difference dmetaphone dmetaphone_alt levenshtein levenshtein_less_equal metaphone soundex",
    "extension: pg_trgm": "similarity word_similarity strict_word_similarity show_trgm show_limit",
    "extension: unaccent": "unaccent",
    "extension: citext": "citext",
    "extension: earthdistance": "earth earth_box earth_distance ll_to_earth latitude longitude gc_to_sec sec_to_gc",
    "extension: cube": """cube cube_dim cube_distance cube_ll_coord cube_ur_coord cube_is_point cube_size
        cube_union cube_inter cube_subset cube_enlarge cube_coord cube_coord_llur distance_chebyshev
        distance_taxicab""",
    "extension: hstore": """akeys avals defined exist exists_all exists_any fetchval hstore hstore_to_array
        hstore_to_json hstore_to_json_loose hstore_to_jsonb hstore_to_jsonb_loose hstore_to_matrix isdefined
        isexists populate_record skeys slice slice_array svals each""",
    "extension: ltree": "index lca nlevel subltree subpath text2ltree ltree2text",
    "extension: intarray": "icount idx intset sort sort_asc sort_desc subarray uniq",
    "extension: isn": "isbn isbn13 ismn ismn13 issn issn13 upc is_valid make_valid isn_weak",
    "extension: seg": "seg_lower seg_upper seg_center seg_size",
    "extension: uuid-ossp": """uuid_generate_v1 uuid_generate_v1mc uuid_generate_v3 uuid_generate_v4
        uuid_generate_v5 uuid_nil uuid_ns_dns uuid_ns_oid uuid_ns_url uuid_ns_x500""",
    "extension: pgcrypto": """digest hmac crypt gen_salt gen_random_bytes encrypt decrypt encrypt_iv decrypt_iv armor
        dearmor""",
}

REFUSED = {
    "runs SQL given as text": """query_to_xml query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml
        cursor_to_xmlschema table_to_xml table_to_xml_and_xmlschema table_to_xmlschema schema_to_xml
        schema_to_xml_and_xmlschema schema_to_xmlschema database_to_xml database_to_xml_and_xmlschema
        database_to_xmlschema ts_stat ts_rewrite ts_debug crosstab crosstab2 crosstab3 crosstab4 connectby
        xpath_table""",
    "reaches other servers": """postgres_fdw_disconnect postgres_fdw_disconnect_all postgres_fdw_get_connections
        xslt_process""",
    "reads or writes files": """lo_close lo_creat lo_create lo_export lo_from_bytea lo_get lo_import lo_lseek
        lo_lseek64 lo_open lo_put lo_tell lo_tell64 lo_truncate lo_truncate64 lo_unlink loread lowrite lo_oid""",
    "changes or reads sequences": "nextval currval setval lastval",
    "acts on other sessions": "pgrowlocks",
    "reads or changes server state": """set_config current_setting setseed set_limit txid_current
        txid_current_if_assigned txid_current_snapshot txid_snapshot_xip txid_snapshot_xmax txid_snapshot_xmin
        txid_status txid_visible_in_snapshot version current_query inet_client_addr inet_client_port
        inet_server_addr inet_server_port getdatabaseencoding getpgusername gin_clean_pending_list
        brin_summarize_new_values brin_summarize_range brin_desummarize_range verify_heapam bt_index_check
        bt_index_parent_check heap_force_freeze heap_force_kill autoprewarm_dump_now autoprewarm_start_worker
        get_raw_page page_header heap_page_items heap_page_item_attrs tuple_data_split fsm_page_contents
        page_checksum bt_metap bt_page_items bt_page_stats pgstattuple pgstattuple_approx pgstatindex
        pgstatginindex pgstathashindex row_security_active current_schemas col_description obj_description
        shobj_description format_type""",
    "reads the server's catalog": """to_regclass to_regcollation to_regnamespace to_regoper to_regoperator to_regproc
        to_regprocedure to_regrole to_regtype to_regtypemod has_any_column_privilege has_column_privilege
        has_database_privilege has_foreign_data_wrapper_privilege has_function_privilege has_language_privilege
        has_parameter_privilege has_schema_privilege has_sequence_privilege has_server_privilege
        has_table_privilege has_tablespace_privilege has_type_privilege aclexplode aclcontains makeaclitem""",
}

# By name: what every function of the family reaches.
REFUSED_PREFIXES = {
    "reaches other servers": ("dblink",),
    "reads or writes files": ("lo_", "pg_file_", "pg_read_", "pg_ls_", "pg_stat_file"),
    "takes or holds locks": ("pg_advisory", "pg_try_advisory"),
    "acts on other sessions": ("pg_terminate_backend", "pg_cancel_backend", "pg_signal", "pg_log_backend"),
    "reads or changes server state": (
        "pg_",
        "binary_upgrade_",
        "txid_",
        "ssl_",
        "brin_",
        "gin_",
        "gist_",
        "hash_",
        "bt_",
        "spg_",
    ),
}

# Allowed names that pg_proc of PostgreSQL 15 does not list: syntax the parser turns into its own node
# (COALESCE, GREATEST, TRIM...), and functions of later releases.
NOT_IN_CATALOG = """coalesce nullif greatest least trim any_value array_sample array_shuffle date_add date_subtract erf
    erfc random_normal json_agg_strict jsonb_agg_strict json_object_agg_strict json_object_agg_unique
    json_object_agg_unique_strict jsonb_object_agg_strict jsonb_object_agg_unique jsonb_object_agg_unique_strict
    json_array json_arrayagg json_objectagg json_scalar json_serialize"""
# Allowed although volatile: they read the clock or a random generator, which changes nothing.
VOLATILE_OK = """random random_normal clock_timestamp timeofday gen_random_uuid gen_random_bytes gen_salt
    uuid_generate_v1 uuid_generate_v1mc uuid_generate_v4"""
# Extensions whose functions may be on the allow-list at all; any other extension's are refused.
REVIEWED_EXTENSIONS = """fuzzystrmatch pg_trgm unaccent citext earthdistance cube hstore ltree intarray isn seg
    uuid-ossp pgcrypto"""

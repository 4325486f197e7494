"""`text2sql synth` and `data.synth`: pairs sampled from the bundled SQLite databases and from DuckDB and
PostgreSQL copies cover every complexity class, run read-only and return non-degenerate rows, are the
same for the same seed, hold no duplicates and no unfilled slots; they hold multi-column selects,
filters of two and three conditions, joins filtered on both sides, three-table joins and filtered
subqueries, every filter a question names changes the answer, and questions name values exactly as
stored; a database without foreign keys
still gets joins; a teacher on loopback (the real `openai` client) words questions and is checked by
a round trip; a run on data.synth alone trains, and synthesized pairs never reach validation or test."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from cli_support import assert_one_line_error, run_cli
from engines_support import shop_on
from openai_support import ScriptedEndpoint
from serving_support import running
from text2sql.cli import main
from text2sql.data import bundled
from text2sql.data.schema import read_schema
from text2sql.data.synth import CLASSES, databases_from_args, synthesize
from text2sql.data.synth.dedup import normalised_question, result_signature
from text2sql.data.synth.joins import join_edges
from text2sql.data.synth.profile import profile_schema
from text2sql.data.synth.teacher import QUESTION_SYSTEM
from text2sql.evaluation.evalset import derive_complexity
from text2sql.sql.execution import execute_sql, open_database
from text2sql.sql.targets import dialect_of

FILTERED_SHAPES = {"where_list", "lookup"}  # one table, narrowed by WHERE


@pytest.fixture(scope="module")
def bundled_run():
    databases = databases_from_args(["bundled"])
    pairs, report = synthesize(databases, 360, seed=0, show_progress=False)
    return databases, pairs, report


def _check_pairs(pairs, databases):
    """Every pair: its SQL runs read-only on its database and returns rows that are not all NULL, its
    label is the one the evaluator derives, its question has no template slot left; a filter narrows."""
    for pair in pairs:
        target = databases[pair.db_id]
        result = execute_sql(target, pair.sql, timeout=10)
        assert result.ok, (pair.sql, result.error)
        assert result.rows and not all(v is None for row in result.rows for v in row), pair.sql
        assert derive_complexity(pair.sql) == pair.complexity, pair.sql
        assert pair.question and not re.search(r"[{}]", pair.question), pair.question
        if pair.shape in FILTERED_SHAPES:
            table = sqlglot.parse_one(pair.sql, read=dialect_of(target)).find(exp.Table)
            count = execute_sql(target, f"SELECT COUNT(*) FROM {table.sql(dialect=dialect_of(target))}").rows[0][0]
            assert len(result.rows) < count, pair.sql


def _classes(pairs) -> set[str]:
    return {p.complexity for p in pairs}


def test_bundled_pairs_cover_every_class_in_every_database_and_run(bundled_run):
    databases, pairs, report = bundled_run
    assert len(pairs) == 360
    for db_id in databases:
        assert _classes(p for p in pairs if p.db_id == db_id) == set(CLASSES), db_id
    # Balanced: no class has more than its share plus one per database.
    kept = report.to_dict()["kept_by_class"]
    assert max(kept.values()) - min(kept.values()) <= len(databases)
    _check_pairs(pairs, databases)
    for cls in CLASSES:  # worded several ways: the seed picks a phrasing per pair
        assert len({" ".join(p.question.split()[:2]) for p in pairs if p.complexity == cls}) >= 4, cls
    # Candidates that would have broken those rules were drawn, and dropped with their reason.
    assert {"empty result", "filter did not narrow", "ties in order"} <= set(report.drop_reasons())


def _features(sql: str) -> set[str]:
    """The structures of one query, read by sqlglot independently of the shapes that built it."""
    tree = sqlglot.parse_one(sql)
    found = set()
    selects = list(tree.find_all(exp.Select))
    top = selects[0]
    where = top.args.get("where")
    conjuncts = list(where.this.flatten()) if where is not None and isinstance(where.this, exp.And) else []
    tables = {t.name for t in tree.find_all(exp.Table)}
    if len(top.expressions) >= 2 and not any(isinstance(e, exp.AggFunc) for e in top.expressions):
        found.add("two columns")
    if len(conjuncts) >= 2:
        found.add("two conditions")
    if len(conjuncts) >= 3:
        found.add("three conditions")
    if tree.find(exp.Or) or any(not node.args.get("query") for node in tree.find_all(exp.In)):
        found.add("or / in list")
    if tree.find(exp.Between):
        found.add("between")
    if tree.find(exp.Like):
        found.add("like")
    if top.args.get("group") and where is not None:
        found.add("group by with where")
    if top.args.get("order") and top.args.get("limit") and where is not None and len(top.expressions) >= 2:
        found.add("filter, order, limit, two columns")
    if any(isinstance(e, (exp.Min, exp.Max)) for e in top.expressions) and where is not None:
        found.add("min/max with where")
    if len(list(tree.find_all(exp.Join))) >= 2:
        found.add("three tables")
    joined = list(tree.find_all(exp.Join))
    if joined and where is not None:
        aliases = {c.table for c in where.find_all(exp.Column)}
        if {"T1", "T2"} <= aliases:
            found.add("join, filters on both sides")
    if joined and top.args.get("distinct"):
        found.add("distinct over a join")
    for node in tree.find_all(exp.Not):
        if isinstance(node.this, exp.In) and node.this.args.get("query") and len(conjuncts) >= 2:
            found.add("not in with a filter")
    if any(isinstance(c, exp.In) and c.args.get("query") for c in conjuncts):
        found.add("in with a filter")
    if len(tables) >= 2 and not joined and len(selects) >= 2:
        found.add("subquery over another table")
    return found


STRUCTURES = {
    "two columns",
    "two conditions",
    "three conditions",
    "or / in list",
    "between",
    "like",
    "group by with where",
    "filter, order, limit, two columns",
    "min/max with where",
    "three tables",
    "join, filters on both sides",
    "distinct over a join",
    "not in with a filter",
    "in with a filter",
    "subquery over another table",
}


def test_pairs_hold_every_structure_of_multi_part_questions():
    # Three filters that each narrow a small table's rows are rare (about one pair in 400): a larger run.
    pairs, _ = synthesize(databases_from_args(["bundled"]), 720, seed=0, show_progress=False)
    found = set().union(*(_features(p.sql) for p in pairs))
    assert STRUCTURES <= found, STRUCTURES - found
    # Three tables both as a chain (child, parent, grandparent) and through a table linking two others.
    three = [p for p in pairs if len(sqlglot.parse_one(p.sql).find(exp.Select).args.get("joins") or []) >= 2]
    assert {"join_chain", "join_link"} <= {p.shape for p in three}


def test_every_named_filter_changes_the_answer(bundled_run):
    """Without any one of its conditions a filtered query returns another result: a question never
    names a condition its SQL could do without."""
    databases, pairs, report = bundled_run
    checked = 0
    for pair in pairs:
        tree = sqlglot.parse_one(pair.sql)
        where = tree.args.get("where") if isinstance(tree, exp.Select) else None
        if where is None or pair.shape not in ("where_list", "count", "stat", "join_where", "group_count"):
            continue
        conjuncts = list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
        ordered = tree.args.get("order") is not None
        rows = execute_sql(databases[pair.db_id], pair.sql).rows
        for i in range(len(conjuncts)):
            rest = conjuncts[:i] + conjuncts[i + 1 :]
            relaxed = tree.copy()
            relaxed.set("where", exp.Where(this=exp.and_(*(c.copy() for c in rest))) if rest else None)
            other = execute_sql(databases[pair.db_id], relaxed.sql()).rows
            assert (other if ordered else sorted(map(repr, other))) != (rows if ordered else sorted(map(repr, rows)))
            checked += 1
    assert checked > 100
    assert report.drop_reasons()["filter changes nothing"] > 0  # such candidates were drawn, and dropped


def test_questions_name_stored_values_exactly(bundled_run):
    """Every text literal of a query is in its question as stored (the model learns to copy it);
    a LIKE pattern's word without its wildcards."""
    _, pairs, _ = bundled_run
    for pair in pairs:
        for literal in sqlglot.parse_one(pair.sql).find_all(exp.Literal):
            if literal.is_string:
                assert literal.this.strip("%") in pair.question, (pair.question, pair.sql)
    openers = {p.question.split()[0].lower() for p in pairs}
    assert {"list", "show", "which", "what", "give", "find", "how"} <= openers


def test_ordered_answers_have_no_ties(bundled_run):
    databases, pairs, _ = bundled_run
    for pair in pairs:
        tree = sqlglot.parse_one(pair.sql)
        order = tree.args.get("order")
        if order is None or not isinstance(tree, exp.Select) or tree.args.get("group"):
            continue
        key = order.expressions[0].this.sql()
        limit = tree.args.get("limit")
        keys_sql = tree.copy().select(key, append=False)
        if limit is not None:
            keys_sql = keys_sql.limit(int(limit.expression.name) + 1)
        keys = [row[0] for row in execute_sql(databases[pair.db_id], keys_sql.sql()).rows]
        assert len(set(keys)) == len(keys), pair.sql


def _signature(pair, target) -> tuple:
    """A pair's result and the column names its SQL reads, found independently of the sampler."""
    rows = execute_sql(target, pair.sql).rows
    names = frozenset(c.name.lower() for c in sqlglot.parse_one(pair.sql, read=dialect_of(target)).find_all(exp.Column))
    ordered = " ORDER BY " in pair.sql
    return (pair.db_id, names, pair.shape, repr(rows if ordered else sorted(rows, key=repr)))


def test_no_duplicate_questions_or_results(bundled_run):
    databases, pairs, report = bundled_run
    questions = [(p.db_id, normalised_question(p.question)) for p in pairs]
    assert len(set(questions)) == len(questions)
    signatures = [_signature(p, databases[p.db_id]) for p in pairs]
    assert len(set(signatures)) == len(signatures)
    # Both halves of a UNION come in either order, and other spellings meet too: those were dropped.
    assert report.drop_reasons()["duplicate result"] > 0


def test_dedup_keys():
    assert normalised_question("Which  Customers live in Zürich?") == normalised_question(
        "which customers live in zurich"
    )
    rows = [(1, "a"), (2.0, "b")]
    assert result_signature("db", ["t.x"], rows, False) == result_signature("db", ["t.x"], [(2, "b"), (1, "a")], False)
    assert result_signature("db", ["t.x"], rows, True) != result_signature("db", ["t.x"], rows[::-1], True)
    assert result_signature("db", ["t.x"], rows, False) != result_signature("db", ["t.y"], rows, False)


def _retail_copy(engine: str, folder: Path, server) -> str:
    from text2sql.sql.copy import copy_database

    if engine == "duckdb":
        target = str(folder / "retail.duckdb")
        copy_database(bundled.db_path("retail"), target, show_progress=False)
        return target
    copy_database(
        bundled.db_path("retail"), server.url("postgres", schema="synth_retail"), force=True, show_progress=False
    )
    return server.grant_reader("postgres", "synth_retail")


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_duckdb_and_postgres_copies(engine, tmp_path, request):
    server = request.getfixturevalue("postgres_server") if engine == "postgres" else None
    databases = {
        "shop": shop_on(engine, tmp_path, server, schema="synth_shop"),
        "retail": _retail_copy(engine, tmp_path, server),
    }
    if engine == "postgres":
        assert all("reader@" in target for target in databases.values())  # sampled as the read-only role
    pairs, report = synthesize(databases, 120, seed=0, show_progress=False)
    assert len(pairs) == 120
    assert _classes(p for p in pairs if p.db_id == "retail") == set(CLASSES)
    assert {"join", "nested"} <= _classes(p for p in pairs if p.db_id == "shop")
    assert report.databases["retail"]["dialect"] == engine
    _check_pairs(pairs, databases)


def test_same_seed_same_file_and_a_report_beside_it(tmp_path, capsys):
    outputs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        output = tmp_path / f"{name}.jsonl"
        code, out, err = run_cli(capsys, "synth", "--db", "bundled", "--n", 90, "--seed", seed, "--output", output)
        assert code == 0, err
        outputs.append(output.read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]
    assert "drop reason" in out and "set operation" in out  # the printed table
    rows = [json.loads(line) for line in outputs[0].decode().splitlines()]
    assert len(rows) == 90
    assert {r["sql_complexity"] for r in rows} == set(CLASSES)
    assert all(r["source"] == "synth" and r["db_id"] in bundled.db_ids() for r in rows)
    report = json.loads((tmp_path / "a.report.json").read_text())
    assert report["kept"] == 90 and set(report["kept_by_class"]) == set(CLASSES)
    assert report["dropped_by_reason"] and report["seed"] == 7


def _no_foreign_keys(path: Path) -> str:
    """Tables linked by column names only: `customer_id` -> customers.id, `team_code` -> teams.team_code,
    and a `customer_id` whose values are no customers' ids (no join)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, status TEXT);
            CREATE TABLE teams (team_code TEXT PRIMARY KEY, name TEXT, country TEXT);
            CREATE TABLE players (player_id INTEGER PRIMARY KEY, name TEXT, team_code TEXT, goals INTEGER);
            CREATE TABLE notes (id INTEGER PRIMARY KEY, customer_id INTEGER, body TEXT);
            """
        )
        cities = ["Paris", "Oslo", "Lima", "Kyiv"]
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)", [(i, f"Customer {i:02d}", cities[i % 4]) for i in range(1, 21)]
        )
        statuses = ["open", "paid", "sent"]
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(i, 1 + i % 15, round(3.5 * i + i % 7, 2), statuses[i % 3]) for i in range(1, 61)],
        )
        countries = ["Peru", "Chile", "Japan"]
        conn.executemany(
            "INSERT INTO teams VALUES (?, ?, ?)", [(f"T{i}", f"Team {i}", countries[i % 3]) for i in range(1, 9)]
        )
        conn.executemany(
            "INSERT INTO players VALUES (?, ?, ?, ?)",
            [(i, f"Player {i:02d}", f"T{1 + i % 6}", (i * 7) % 23) for i in range(1, 41)],
        )
        conn.executemany("INSERT INTO notes VALUES (?, ?, ?)", [(i, 900 + i, f"note {i}") for i in range(1, 11)])
        conn.commit()
    return str(path)


def test_a_database_without_foreign_keys_gets_joins_along_plausible_keys(tmp_path):
    target = _no_foreign_keys(tmp_path / "loose.sqlite")
    schema = read_schema(target)
    assert not any(t.foreign_keys for t in schema.tables)
    with open_database(target) as db:
        edges = join_edges(db, schema, profile_schema(db, schema))
    found = {(e.child, e.child_column, e.parent, e.parent_column) for e in edges}
    assert found == {("orders", "customer_id", "customers", "id"), ("players", "team_code", "teams", "team_code")}
    assert not any(e.declared for e in edges)

    pairs, report = synthesize({"loose": target}, 90, seed=0, show_progress=False)
    assert report.databases["loose"]["joins"] == {"declared": 0, "plausible": 2}
    joins = [p for p in pairs if p.complexity == "join"]
    assert joins and all(" JOIN " in p.sql for p in joins)
    assert {"customers", "teams"} <= {t for p in joins for t in ("customers", "teams") if t in p.sql}
    assert not any("notes" in p.sql for p in joins)
    _check_pairs(pairs, {"loose": target})


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--db", "missing.sqlite"], ["missing.sqlite", "not found"]),
        (["--db", "mysql://me@host/shop"], ["MySQL"]),
        (["--db", "bundled", "--teacher", "gpt-4o"], ["--teacher", "openai:NAME"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, needles, tmp_path, capsys):
    output = tmp_path / "pairs.jsonl"
    code, _, err = run_cli(capsys, "synth", *args, "--n", 10, "--output", output)
    assert_one_line_error(code, err, *needles)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_or_misnamed_output_is_refused(tmp_path, capsys):
    output = tmp_path / "pairs.jsonl"
    output.write_text("kept\n")
    code, _, err = run_cli(capsys, "synth", "--db", "bundled", "--n", 10, "--output", output)
    assert_one_line_error(code, err, "exists", "--force")
    assert output.read_text() == "kept\n" and not (tmp_path / "pairs.report.json").exists()
    code, _, err = run_cli(capsys, "synth", "--db", "bundled", "--n", 10, "--output", tmp_path / "pairs.csv")
    assert_one_line_error(code, err, ".jsonl")
    code, _, err = run_cli(capsys, "synth", "--db", "bundled", "--n", 10, "--output", output, "--force")
    assert code == 0, err
    assert len(output.read_text().splitlines()) == 10


class RoundTripTeacher:
    """Words each query as "In other words: <template question>" and, asked back, answers with the
    query itself, except for every third question, where it answers with a query that returns other
    rows: those pairs fail the round trip."""

    def __init__(self):
        self.sql_of: dict[str, str] = {}
        self.asked = 0  # questions asked for

    def __call__(self, body):
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if system == QUESTION_SYSTEM:
            self.asked += 1
            sql = re.search(r"query:\n(.*?)\n\nA plain template wording", user, re.S).group(1)
            draft = re.search(r"wording of it: (.*?)\n\nQuestion:", user, re.S).group(1)
            question = f"In other words: {draft}"
            self.sql_of[question] = sql
            return f'"{question}"'
        question = user.rsplit("Question: ", 1)[1].strip()
        number = list(self.sql_of).index(question)
        return "SELECT 'nothing like it'" if number % 3 == 2 else f"```sql\n{self.sql_of[question]}\n```"


def test_a_teacher_words_questions_and_a_round_trip_checks_them(tmp_path, capsys):
    target = shop_on("sqlite", tmp_path)
    teacher = RoundTripTeacher()
    server = ScriptedEndpoint(teacher)
    output = tmp_path / "pairs.jsonl"
    with running(server.app()) as url:
        code, out, err = run_cli(
            capsys,
            "synth",
            "--db",
            target,
            "--n",
            12,
            "--teacher",
            "openai:teacher",
            "--base-url",
            f"{url}/v1",
            "--output",
            output,
        )
    assert code == 0, err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 12
    for row in rows:
        assert row["question"].startswith("In other words: ")
        assert teacher.sql_of[row["question"]] == row["sql"]
        assert list(teacher.sql_of).index(row["question"]) % 3 != 2  # none that failed the round trip
    report = json.loads((tmp_path / "pairs.report.json").read_text())
    assert report["dropped_by_reason"]["round trip mismatch"] >= 4
    assert report["teacher"] == "openai:teacher"
    assert server.count == 2 * teacher.asked  # a question, then the SQL of that question
    assert all(body["model"] == "teacher" for body in server.requests)


def test_an_unreachable_teacher_is_one_line_and_writes_nothing(tmp_path, capsys):
    from serving_support import free_port

    target = shop_on("sqlite", tmp_path)
    output = tmp_path / "pairs.jsonl"
    code, _, err = run_cli(
        capsys,
        "synth",
        "--db",
        target,
        "--n",
        5,
        "--teacher",
        "openai:teacher",
        "--base-url",
        f"http://127.0.0.1:{free_port()}/v1",
        "--output",
        output,
    )
    assert_one_line_error(code, err, "127.0.0.1")
    assert not output.exists() and not (tmp_path / "pairs.report.json").exists()


RUN = [
    "training.max_steps=2",
    "training.logging_steps=1",
    "training.save_steps=1000",
    "callbacks.progress=lines",
    "data.synth.n=48",
]


def test_a_run_on_data_synth_alone_trains_and_a_rerun_samples_nothing(tmp_path):
    out = tmp_path / "run"
    args = ["run", f"output_dir={out}", f"data.db={bundled.db_path('retail')}", *RUN]
    assert main(args) == 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not (out / "eval").exists()  # nothing held out: synthesized pairs are never scored
    report = json.loads((out / "data" / "prepare_report.json").read_text())
    assert report["rows_out"] == {"train": 48}
    assert report["sources"] == {"synth": str(out / "synth" / "pairs.jsonl")}
    pairs = out / "synth" / "pairs.jsonl"
    written = (pairs.stat().st_mtime_ns, pairs.read_bytes())
    assert main([*args, "--force"]) == 0  # every stage again, the pairs from the run folder
    assert (pairs.stat().st_mtime_ns, pairs.read_bytes()) == written


def test_synthesized_pairs_join_training_only_and_never_a_held_out_query(tmp_path):
    from datasets import load_from_disk

    from stage_support import prepare_with_model
    from text2sql.config import load_config

    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", "data.train=bundled", "data.synth.n=2000"])
    result = prepare_with_model(cfg)
    prepared = load_from_disk(str(result.path))
    assert sum(i.startswith("synth-") for i in prepared["train"]["id"]) > 1900
    for split in ("validation", "test"):
        assert not any(i.startswith("synth-") for i in prepared[split]["id"])
    # Sampled queries that are also validation or test queries are dropped, not trained on.
    assert result.report["dropped"]["train"]["synth_in_held_out"] > 0
    held_out = {" ".join(s.split()) for split in ("validation", "test") for s in prepared[split]["sql"]}
    synth_sql = {
        " ".join(s.split()) for i, s in zip(prepared["train"]["id"], prepared["train"]["sql"]) if i.startswith("synth-")
    }
    assert not held_out & synth_sql


def test_share_repeats_a_few_human_pairs_beside_many_sampled_ones(tmp_path):
    from datasets import load_from_disk

    from stage_support import prepare_with_model
    from text2sql.config import load_config

    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps(r) + "\n" for r in list(bundled.iter_rows("train"))[:20]))
    overrides = [f"data.train={few}", "data.validation=bundled", "data.test=bundled", "data.synth.n=200"]
    overrides.append(f"data.db_dir={bundled.database_dir()}")
    cfg = load_config(None, [f"output_dir={tmp_path / 'run'}", *overrides, "data.synth.share=0.5"])
    result = prepare_with_model(cfg)
    mix = result.report["mix"]
    assert mix["human"] == 20 and mix["synth"] > 150
    assert mix["human_repeats"] == -(-mix["synth"] // 20)  # ceil: at least as many human rows as sampled
    ids = load_from_disk(str(result.path))["train"]["id"]
    human = [i for i in ids if not i.startswith("synth-")]
    assert len(human) == 20 * mix["human_repeats"] and len(set(human)) == 20
    # Unset: every pair once.
    plain = prepare_with_model(load_config(None, [f"output_dir={tmp_path / 'plain'}", *overrides])).report["mix"]
    assert plain["human_repeats"] == 1


def test_names_read_as_words():
    from text2sql.data.synth.names import column_phrase, column_phrases, humanise, plural, role_phrase, singular

    assert humanise("cust_dob") == "customer date of birth"
    assert humanise("unitPrice") == "unit price" and humanise("order_qty") == "order quantity"
    assert humanise("student_GPA") == "student GPA"
    assert singular("order_items".replace("_", " ")) == "order item" and singular("categories") == "category"
    assert plural("category") == "categories" and plural("box") == "boxes" and plural("ID") == "IDs"
    assert plural("customers") == "customers" and singular("status") == "status"
    assert column_phrase("A11", "average salary") == "average salary"
    # Other names people use for a column: units, counts and dates said with words, acronyms spelled out.
    assert {"duration in minutes", "duration"} <= set(column_phrases("duration_minutes", "", "flight"))
    assert "years of experience" in column_phrases("years_experience", "", "doctor")
    assert "year of birth" in column_phrases("birth_year", "", "passenger")
    assert column_phrases("gpa", "", "student") == ("GPA", "grade point average")
    assert "date" in column_phrases("order_date", "", "order") and "date joined" in column_phrases("joined_date")
    assert column_phrases("A11", "average salary", "x") == ("average salary",)
    assert plural("year of birth") == "years of birth" and plural("date joined") == "dates joined"
    assert column_phrase("A11", "a long explanation; of how the values are coded here") == "A11"
    assert role_phrase("origin_code", "airport") == "origin" and role_phrase("id", "airport") == "airport"


def test_column_descriptions_name_the_columns_in_questions(tmp_path):
    folder = tmp_path / "staff"
    (folder / "database_description").mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(folder / "staff.sqlite")) as conn:
        conn.execute("CREATE TABLE emp (emp_id INTEGER PRIMARY KEY, nm TEXT, A11 INTEGER, A2 TEXT)")
        conn.executemany(
            "INSERT INTO emp VALUES (?, ?, ?, ?)",
            [(i, f"Person {i:02d}", 1000 + 37 * i, ["north", "south", "east"][i % 3]) for i in range(1, 31)],
        )
        conn.commit()
    (folder / "database_description" / "emp.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "A11,,average salary,integer,\nA2,,sales region,text,\n"
    )
    pairs, _ = synthesize({"staff": str(folder / "staff.sqlite")}, 40, seed=0, show_progress=False)
    text = " ".join(p.question for p in pairs)
    assert "average salary" in text and "sales region" in text
    assert "A11" not in text and " nm " not in f" {text} "  # `nm` reads as "name"


def test_per_database_takes_n_from_each(bundled_run):
    databases = {db_id: bundled_run[0][db_id] for db_id in ("clinic", "retail")}
    pairs, report = synthesize(databases, 18, seed=2, per_database=True, show_progress=False)
    assert [sum(p.db_id == db_id for p in pairs) for db_id in databases] == [18, 18]
    assert report.requested == 36


def test_a_run_asks_the_teacher_of_data_synth_once(tmp_path, capsys):
    from stage_support import prepare_with_model
    from text2sql.config import load_config
    from text2sql.errors import ConfigError

    target = shop_on("sqlite", tmp_path)
    teacher = RoundTripTeacher()
    server = ScriptedEndpoint(teacher)
    with running(server.app()) as url:
        args = [f"output_dir={tmp_path / 'run'}", f"data.db={target}", "data.synth.n=6"]
        args += ["data.synth.teacher=openai:teacher", f"evaluation.base_url={url}/v1"]
        code, _, err = run_cli(capsys, "prepare", *args)
        assert code == 0, err
        asked = server.count
        rows = [json.loads(line) for line in (tmp_path / "run" / "synth" / "pairs.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and all(r["question"].startswith("In other words: ") for r in rows)
        code, _, err = run_cli(capsys, "prepare", *args, "--force")
        assert code == 0, err
        assert server.count == asked  # the sampled pairs are the run's: nothing asked again
    # Prepared without the stage (which makes the teacher), pairs that are not there cannot be sampled.
    cfg = load_config(None, [f"output_dir={tmp_path / 'other'}", *args[1:]])
    with pytest.raises(ConfigError, match="ask the teacher first"):
        prepare_with_model(cfg)


def test_questions_say_a_sort_as_people_do_and_name_a_category_by_its_value():
    """ "the 3 cheapest products" for price ascending, "the longest flights" for duration descending;
    "airports in 'Italy'" for a category's value without its column's name, all with the SQL that
    answers them."""
    databases = databases_from_args(["bundled"])
    pairs, _ = synthesize(databases, 2000, seed=0, show_progress=False)
    sorts = {
        "cheapest": ("price|fee", "ASC"),
        "most expensive": ("price|fee", "DESC"),
        "longest": ("duration_minutes", "DESC"),
        "shortest": ("duration_minutes", "ASC"),
        "most experienced": ("years_experience", "DESC"),
        "lowest paid": ("salary", "ASC"),
    }
    seen = set()
    for pair in pairs:
        for adjective, (cols, direction) in sorts.items():
            if re.search(rf"\b{adjective} (?!date|year)", pair.question) and "ORDER BY" in pair.sql:
                assert re.search(rf"ORDER BY (\w+\.)?({cols}) {direction}", pair.sql), (pair.question, pair.sql)
                seen.add(adjective)
    assert {"cheapest", "most experienced"} <= seen and {"longest", "shortest"} & seen
    values = "Italy|Japan|Canada|Books|Toys|Garden|Clothing|Furniture|Cardiology|Neurology|Dermatology|Orthopedics"
    after = [(p, m.group(2)) for p in pairs if (m := re.search(rf" (in|from) ['\"]?({values})\b", p.question))]
    before = [
        (p, m.group(1)) for p in pairs if (m := re.search(rf"\b({values}) (airports|products|doctors)\b", p.question))
    ]
    assert after and before
    for pair, value in after + before:
        assert re.search(rf"(= |IN \(.*)'{value}'", pair.sql), (pair.question, pair.sql)


def test_questions_name_a_related_row_by_its_value_and_compare_with_an_adjective():
    """ "orders for Isaac Brown", "Isaac Brown's orders", "Psychology students": the filter is on the
    parent's label, through a join or a subquery; "products more expensive than the Desk Lamp"."""
    databases = databases_from_args(["bundled"])
    pairs, _ = synthesize(databases, 2000, seed=0, show_progress=False)
    named = []
    for pair in pairs:
        m = re.search(
            r"\b(?:orders|courses|students|appointments) (?:for|of|by) ['\"]?([A-Z][a-z]+(?: [A-Z][a-z]+)*)\b",
            pair.question,
        )
        m = m or re.search(
            r"(?<=[a-z] )([A-Z][a-z]+(?: [A-Z][a-z]+)*?)(?:'s)? (?:orders|courses|students|appointments)\b",
            pair.question,
        )
        if m and pair.shape in {"join_where", "join_stat", "nested_parent_in"}:
            named.append(pair)
            assert re.search(rf"name = '{re.escape(m.group(1))}'", pair.sql), (pair.question, pair.sql)
            assert " JOIN " in pair.sql or " IN (SELECT" in pair.sql
    assert len(named) >= 10
    # An adjective that compares by itself reads the column it names.
    compared = {"more expensive": "price >", "cheaper": "price <", "longer": "duration_minutes >"}
    seen = set()
    for pair in pairs:
        for words, sql in compared.items():
            if pair.shape == "nested_than" and f" {words} than " in pair.question:
                assert sql in pair.sql, (pair.question, pair.sql)
                seen.add(words)
    assert seen
    # A time column named for an event is said with its verb: "instructors hired after 2005".
    verbs = {"hired": "hire_year", "born": "birth_year", "enrolled": "enrollment_year", "departing": "departure_date"}
    said = 0
    for pair in pairs:
        m = re.search(r"\b(hired|born|enrolled|departing) (after|before|in) ['\"]?([\d-]+)", pair.question)
        if m:
            op = {"after": ">", "before": "<", "in": "="}[m.group(2)]
            assert re.search(rf"{verbs[m.group(1)]} {op} '?{m.group(3)}", pair.sql), (pair.question, pair.sql)
            said += 1
    assert said >= 10

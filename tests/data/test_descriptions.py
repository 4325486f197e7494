"""BIRD's `database_description/*.csv` → one short description per column."""

import logging
import os
import sqlite3

import pytest

from repo import SHARED_DATASETS
from text2sql.data.descriptions import MAX_DESCRIPTION, _read_folder, read_descriptions, with_descriptions
from text2sql.sql.catalog import Column, Schema, Table

HEADER = "original_column_name,column_name,column_description,data_format,value_description\n"


@pytest.fixture
def bird_db(tmp_path):
    """A BIRD-layout database: <root>/<db_id>/<db_id>.sqlite with its description folder."""
    folder = tmp_path / "financial"
    folder.mkdir()
    db = folder / "financial.sqlite"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE account (account_id INTEGER, district_id INTEGER, frequency TEXT, date DATE)")
        con.execute("CREATE TABLE District (district_id INTEGER PRIMARY KEY, A2 TEXT, A3 TEXT, A11 INTEGER)")
    con.close()
    docs = folder / "database_description"
    docs.mkdir()
    long = "the frequency of issuance of statements " * 6
    # utf-8 with a byte-order mark, header spelled with capitals and spaces
    (docs / "account.csv").write_bytes(
        (
            "Original_Column_Name ,Column_Name,Column_Description,data_format,Value_Description\n"
            "account_id,account id,the id of the account,integer,\n"
            "district_id,location of branch,location of branch,integer,nan\n"
            f'frequency,frequency,"{long}",text,"""POPLATEK MESICNE"" stands for monthly issuance"\n'
            "date,date,Date,date,\n"
        ).encode("utf-8-sig")
    )
    # latin-1, named in another case than the table; a short row; a description over two lines
    (docs / "district.csv").write_bytes(
        (
            HEADER + "district_id,,District ID,integer,\n"
            "A2,district_name,district name,text,Hlavní mesto Praha\n"
            "A3,region\n"
            "A4,no. of inhabitants,a4,integer,-\n"
            'A11,average salary,"  average\n salary ",integer,\n'
        ).encode("latin-1")
    )
    return db


def test_descriptions_are_read_one_line_each(bird_db):
    got = read_descriptions(bird_db)
    assert got[("account", "account_id")] == "the id of the account"
    assert got[("account", "district_id")] == "location of branch"  # "nan": no value description
    # a description that only repeats the column's name says nothing
    assert ("account", "date") not in got and ("district", "district_id") not in got
    # a latin-1 file; the value description follows; the readable name stands in for no description
    assert got[("district", "a2")] == "district name; Hlavní mesto Praha"
    assert got[("district", "a3")] == "region"
    assert got[("district", "a4")] == "no. of inhabitants"  # its description was only its name
    assert got[("district", "a11")] == "average salary"  # whitespace and line breaks collapsed
    long = got[("account", "frequency")]
    assert len(long) <= MAX_DESCRIPTION and long.endswith("...") and long.startswith("the frequency of issuance")


def test_a_short_description_keeps_its_value_description(bird_db):
    docs = bird_db.parent / "database_description"
    (docs / "loan.csv").write_text(HEADER + 'status,status,repayment status,text,"A: contract finished, no problems"\n')
    assert read_descriptions(bird_db)[("loan", "status")] == "repayment status; A: contract finished, no problems"


def test_no_folder_or_a_url_gives_nothing(tmp_path):
    db = tmp_path / "plain.sqlite"
    sqlite3.connect(db).close()
    assert read_descriptions(db) == {}
    assert read_descriptions("postgresql://host/db") == {}


def test_an_unreadable_csv_is_skipped_with_a_warning(bird_db, caplog):
    docs = bird_db.parent / "database_description"
    (docs / "broken.csv").write_text("not,a,description\n1,2,3\n")
    (docs / "trans.csv").mkdir()
    with caplog.at_level(logging.WARNING, logger="text2sql.data.descriptions"):
        got = read_descriptions(bird_db)
    assert got[("account", "account_id")] == "the id of the account"
    assert "broken.csv" in caplog.text


def test_one_database_is_read_once_until_a_file_changes(bird_db):
    first = read_descriptions(bird_db)
    first.clear()  # callers get their own copy
    hits = _read_folder.cache_info().hits
    assert read_descriptions(bird_db)[("account", "account_id")] == "the id of the account"
    assert _read_folder.cache_info().hits == hits + 1
    account = bird_db.parent / "database_description" / "account.csv"
    account.write_text(HEADER + "account_id,account id,which account,integer,\n")
    stat = account.stat()
    os.utime(account, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert read_descriptions(bird_db)[("account", "account_id")] == "which account"


def test_with_descriptions_copies_the_schema(bird_db):
    schema = Schema(
        tables=[
            Table("Account", [Column("account_id", "INTEGER"), Column("frequency", "TEXT")], ["account_id"]),
            Table("district", [Column("A11", "INTEGER")]),
        ],
        db_id="financial",
    )
    described = with_descriptions(schema, read_descriptions(bird_db))
    assert described.tables[0].columns[0].description == "the id of the account"
    assert described.tables[1].columns[0].description == "average salary"
    assert described.tables[0].columns[1].name == "frequency" and described.db_id == "financial"
    # the input, cached elsewhere, is untouched
    assert all(not c.description for t in schema.tables for c in t.columns)
    assert described.tables[0] is not schema.tables[0]
    assert described.tables[0].primary_key is not schema.tables[0].primary_key


def test_real_bird_descriptions():
    folders = sorted(SHARED_DATASETS.rglob("database_description")) if SHARED_DATASETS.is_dir() else []
    databases = [f.parent / f"{f.parent.name}.sqlite" for f in folders]
    databases = [db for db in databases if db.is_file()]
    if not databases:
        pytest.skip(f"no BIRD database with a database_description folder under {SHARED_DATASETS}")
    for db in databases[:5]:
        got = read_descriptions(db)
        assert got, db
        assert all(0 < len(text) <= MAX_DESCRIPTION and "\n" not in text for text in got.values())

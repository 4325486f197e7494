"""Format detection, and one-line errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from readers_support import read, write_csv, write_json, write_jsonl
from text2sql.data.readers import ReadOptions, detect_format, read_examples
from text2sql.errors import DataError

# ---------------------------------------------------------------------------------- format detection


def test_detection_by_fields_and_explicit_override(tmp_path: Path) -> None:
    flat = write_jsonl(tmp_path / "flat.jsonl", [{"input_text": "How many?", "sql": "SELECT 1"}])
    assert detect_format(str(flat), ReadOptions()) == "csv"
    assert read(flat)[0].sql == "SELECT 1"
    chat = write_jsonl(tmp_path / "chat.json", [{"messages": []}])  # JSON Lines under a .json name
    assert detect_format(str(chat), ReadOptions()) == "chat"
    spider_like = write_jsonl(tmp_path / "rows.jsonl", [{"db_id": "x", "question": "q", "sql": "SELECT 1"}])
    assert detect_format(str(spider_like), ReadOptions()) == "spider"
    # data.format overrides detection: the same fields read as flat records with configured columns.
    [example] = read(spider_like, format="csv", question_column="question")
    assert (example.question, example.db_id, example.db_path) == ("q", "x", None)


def test_undetectable_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(
        DataError,
        match=r"odd.jsonl: cannot tell the format from the fields \(completion, prompt\); "
        r"set data.format to one of: csv, chat",
    ):
        read(path)


# -------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope.csv: file not found; check the path"):
        read(tmp_path / "nope.csv")
    # A missing relative path that looks like owner/name is still a missing file, not a hub id.
    with pytest.raises(DataError, match=r"^data/train.csv: file not found"):
        read("data/train.csv")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"data.format 'xml' is unknown; use one of: auto, csv, chat, create_context, "
        r"spider, bird, sparc, hf, bundled",
    ):
        read_examples(tmp_path / "x.csv", ReadOptions(format="xml"))


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match=r"data.txt: unknown file type '.txt'; use .csv, .jsonl, .json"):
        read(tmp_path / "data.txt")


def test_csv_without_sql_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", ["question", "answer"], [["q", "a"]])
    with pytest.raises(DataError) as info:
        read(path, question_column="question")
    assert str(info.value) == (
        f"{path}: no 'sql' column (columns: question, answer); set data.sql_column to the column that holds the SQL"
    )


def test_csv_without_configured_complexity_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["input_text", "sql"], [["q", "SELECT 1"]])
    with pytest.raises(DataError, match=r"no 'level' column \(columns: input_text, sql\); set data.complexity_column"):
        read(path, complexity_column="level")


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.json"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"{name}: the file is empty"):
        read(tmp_path / name, format="csv")


@pytest.mark.parametrize(
    "name, content",
    [
        ("header_only.csv", "input_text,sql\n"),
        ("blank.jsonl", "\n\n"),
        ("empty_array.json", "[]"),
    ],
)
def test_file_without_rows(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=rf"{name}: holds no rows"):
        read(tmp_path / name, format="csv")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("input_text,sql\nWhere is Zürich?,SELECT 1\n".encode("latin-1"))
    with pytest.raises(
        DataError,
        match=r"latin1.csv: not UTF-8 text \(invalid byte at offset 25, line 2\); "
        r"re-encode it as UTF-8",
    ):
        read(path)
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"input_text": "ok", "sql": "SELECT 1"}\n{"input_text": "Z\xfcrich", "sql": "SELECT 2"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl: not UTF-8 text \(invalid byte at offset 57, line 2\)"):
        read(jsonl)


def test_malformed_jsonl_names_the_line_and_streams_until_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"input_text": "a", "sql": "SELECT 1"}\n{"input_text": "b", "sql": "SELECT 2"}\n{"input_text": "c",\n'
    )
    stream = read_examples(path, ReadOptions())
    assert [next(stream).sql, next(stream).sql] == ["SELECT 1", "SELECT 2"]
    with pytest.raises(
        DataError,
        match=r"bad.jsonl line 3: not valid JSON \(Expecting property name enclosed in double "
        r"quotes, column 20\); fix or remove that line",
    ):
        next(stream)


def test_malformed_json_array(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n {"question": "q", "context": "c", "answer": "a"},\n {"question": }\n]')
    with pytest.raises(DataError, match=r"bad.json line 3: not valid JSON \(Expecting value, column 15\)"):
        read(path)


def test_json_not_an_array_of_objects(tmp_path: Path) -> None:
    path = write_json(tmp_path / "strings.json", ["a", "b"])
    with pytest.raises(DataError, match=r"strings.json: item 0 of the array is str, expected a JSON object"):
        read(path)


def test_missing_field_for_explicit_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input_text": "q", "sql": "SELECT 1"}])
    with pytest.raises(
        DataError, match=r"rows.jsonl: no 'messages' field \(fields: input_text, sql\); set data.format"
    ):
        read(path, format="chat")


def test_hf_format_for_a_plain_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input_text": "q", "sql": "SELECT 1"}])
    with pytest.raises(
        DataError, match=r"rows.jsonl: data.format hf reads .parquet/.arrow files, save_to_disk folders"
    ):
        read(path, format="hf")


def test_not_a_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"neither a datasets.save_to_disk folder .* nor a Spider/BIRD folder"):
        read(tmp_path)

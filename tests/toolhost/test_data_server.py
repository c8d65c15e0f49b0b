"""The data MCP server, called through the SDK's in-memory client on real CSV and SQLite files."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import statistics
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from services.toolhost.servers.data import MAX_QUERY_ROWS, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused

PEOPLE = [
    {"name": "Ann Lee", "email": "ann@example.org", "age": 31},
    {"name": "Bo Chen", "email": "bo@example.org", "age": 45, "tags": ["a", "b"]},
    {"name": "Cy", "email": None, "age": 28, "vip": True},
]


def make_db(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in statements:
            conn.execute(statement)


def rows_of(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def trashed(settings: ToolHostSettings, trash_id: str) -> Path:
    folder = settings.trash_dir / trash_id
    return folder / json.loads((folder / "manifest.json").read_text())["stored_as"]


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "data")


# write_csv


async def test_write_csv_creates_a_file_with_all_fields(settings: ToolHostSettings, root: Path) -> None:
    target = root / "out" / "people.csv"
    result = await ok(build_server, settings, "write_csv", data=PEOPLE, output_path=str(target))
    assert result["rows"] == 3 and result["overwrote"] is False
    assert result["headers"] == ["name", "email", "age", "tags", "vip"]
    with target.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["name", "email", "age", "tags", "vip"],
        ["Ann Lee", "ann@example.org", "31", "", ""],
        ["Bo Chen", "bo@example.org", "45", '["a", "b"]', ""],
        ["Cy", "", "28", "", "true"],
    ]
    assert result["undo"] == [
        {
            "kind": "remove_created",
            "path": str(target),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "original_path": "",
            "trash_id": "",
            "replace": False,
        }
    ]


async def test_write_csv_with_headers_and_overwrite_keeps_the_old_file(settings: ToolHostSettings, root: Path) -> None:
    target = root / "people.csv"
    target.write_text("old,content\n")
    rows = [{"name": "Ann", "age": 31}, {"age": 7}]
    result = await ok(build_server, settings, "write_csv", data=rows, output_path=str(target), headers=["age", "name"])
    assert target.read_bytes() == b"age,name\r\n31,Ann\r\n7,\r\n"
    assert result["overwrote"] is True
    [undo] = result["undo"]
    assert undo["kind"] == "restore_trash" and undo["replace"] is True and undo["trash_id"] == result["trash_id"]
    assert trashed(settings, result["trash_id"]).read_text() == "old,content\n"


async def test_write_csv_refusals(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    text = await refused(
        build_server, settings, "write_csv", data=[{"a": 1, "b": 2}], output_path=str(root / "x.csv"), headers=["a"]
    )
    assert "['b']" in text and "headers" in text
    assert "folder" in await refused(build_server, settings, "write_csv", data=PEOPLE, output_path=str(root))
    assert "nothing to write" in await refused(
        build_server, settings, "write_csv", data=[], output_path=str(root / "e.csv")
    )
    text = await refused(build_server, settings, "write_csv", data=PEOPLE, output_path=str(outside / "x.csv"))
    assert "outside the allowed folders" in text and str(root) in text
    assert not list(outside.iterdir()) and not list(root.iterdir())


# write_sqlite


async def test_write_sqlite_creates_database_and_typed_table(settings: ToolHostSettings, root: Path) -> None:
    db = root / "people.sqlite"
    result = await ok(build_server, settings, "write_sqlite", data=PEOPLE, table="people", db_path=str(db))
    assert result["rows_inserted"] == 3 and result["created_database"] is True and result["trash_id"] is None
    assert result["columns"] == [
        {"name": "name", "type": "TEXT"},
        {"name": "email", "type": "TEXT"},
        {"name": "age", "type": "INTEGER"},
        {"name": "tags", "type": "TEXT"},
        {"name": "vip", "type": "INTEGER"},
    ]
    assert rows_of(db, "SELECT name, email, age, tags, vip FROM people ORDER BY age") == [
        ("Cy", None, 28, None, 1),
        ("Ann Lee", "ann@example.org", 31, None, None),
        ("Bo Chen", "bo@example.org", 45, '["a", "b"]', None),
    ]
    [undo] = result["undo"]
    assert undo["kind"] == "remove_created" and undo["sha256"] == hashlib.sha256(db.read_bytes()).hexdigest()


async def test_write_sqlite_adds_a_table_to_an_existing_database(settings: ToolHostSettings, root: Path) -> None:
    db = root / "shop.db"
    make_db(db, "CREATE TABLE orders (id INTEGER, total REAL)", "INSERT INTO orders VALUES (1, 9.5)")
    before = db.read_bytes()
    result = await ok(
        build_server, settings, "write_sqlite", data=[{"sku": "A1", "price": 2.5}], table="items", db_path=str(db)
    )
    assert result["created_database"] is False and result["columns"][1] == {"name": "price", "type": "REAL"}
    assert rows_of(db, "SELECT * FROM items") == [("A1", 2.5)]
    assert rows_of(db, "SELECT * FROM orders") == [(1, 9.5)]
    [undo] = result["undo"]
    assert undo["kind"] == "restore_trash" and undo["replace"] is True
    assert trashed(settings, result["trash_id"]).read_bytes() == before


async def test_write_sqlite_refuses_an_existing_table_and_bad_input(settings: ToolHostSettings, root: Path) -> None:
    db = root / "shop.db"
    make_db(db, "CREATE TABLE Orders (id INTEGER)", "INSERT INTO Orders VALUES (1)")
    before = db.read_bytes()
    text = await refused(build_server, settings, "write_sqlite", data=[{"id": 2}], table="orders", db_path=str(db))
    assert "already exists" in text and "another table name" in text
    assert db.read_bytes() == before and not settings.trash_dir.exists()
    text = await refused(build_server, settings, "write_sqlite", data=[{"id": 2}], table="x; DROP", db_path=str(db))
    assert "letters, digits and underscores" in text
    assert "empty" in await refused(build_server, settings, "write_sqlite", data=[], table="t", db_path=str(db))
    (root / "notes.txt").write_text("plain text, not a database\n")
    text = await refused(
        build_server, settings, "write_sqlite", data=[{"a": 1}], table="t", db_path=str(root / "notes.txt")
    )
    assert "not a SQLite database" in text
    assert rows_of(db, "SELECT * FROM Orders") == [(1,)]


# query_sqlite


@pytest.fixture
def shop(root: Path) -> Path:
    db = root / "shop.db"
    make_db(
        db,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, total REAL, receipt BLOB)",
        "INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bo')",
        "INSERT INTO orders VALUES (10, 1, 9.5, x'cafe'), (11, 1, 20.0, NULL), (12, 2, 3.25, NULL)",
    )
    return db


async def test_query_sqlite_returns_rows_and_columns(settings: ToolHostSettings, shop: Path) -> None:
    result = await ok(
        build_server,
        settings,
        "query_sqlite",
        db_path=str(shop),
        query="-- totals per customer\nSELECT c.name, SUM(o.total) AS spent FROM customers c "
        "JOIN orders o ON o.customer = c.id GROUP BY c.name ORDER BY c.name;",
    )
    assert result == {
        "db_path": str(shop),
        "columns": ["name", "spent"],
        "results": [{"name": "Ann", "spent": 29.5}, {"name": "Bo", "spent": 3.25}],
        "row_count": 2,
        "truncated": False,
    }
    joined = await ok(
        build_server,
        settings,
        "query_sqlite",
        db_path=str(shop),
        query="WITH o AS (SELECT * FROM orders WHERE id = 10) SELECT c.id, o.id, o.receipt FROM customers c "
        "JOIN o ON o.customer = c.id",
    )
    assert joined["columns"] == ["id", "id_2", "receipt"]
    assert joined["results"] == [{"id": 1, "id_2": 10, "receipt": "X'cafe'"}]


async def test_query_sqlite_caps_the_rows(settings: ToolHostSettings, root: Path) -> None:
    db = root / "big.db"
    make_db(db, "CREATE TABLE n (v INTEGER)")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany("INSERT INTO n VALUES (?)", ((i,) for i in range(MAX_QUERY_ROWS + 5)))
    result = await ok(build_server, settings, "query_sqlite", db_path=str(db), query="SELECT v FROM n")
    assert result["row_count"] == MAX_QUERY_ROWS and result["truncated"] is True


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("DELETE FROM orders", "not DELETE"),
        ("DROP TABLE orders", "not DROP"),
        ("PRAGMA journal_mode = WAL", "not PRAGMA"),
        ("ATTACH DATABASE 'x.db' AS x", "not ATTACH"),
        ("SELECT 1; DELETE FROM orders", "one statement"),
        ("WITH gone AS (SELECT 1) DELETE FROM orders", "only reads"),
        ("SELECT * FROM sqlite_master; ", None),
        ("SELECT * FROM nope", "Tables in this database: customers, orders"),
        ("SELEC * FROM orders", "not SELEC"),
        ("", "empty"),
    ],
)
async def test_query_sqlite_refuses_anything_but_one_select(
    settings: ToolHostSettings, shop: Path, query: str, expected: str | None
) -> None:
    before = shop.read_bytes()
    if expected is None:
        assert (await ok(build_server, settings, "query_sqlite", db_path=str(shop), query=query))["row_count"] == 2
    else:
        assert expected in await refused(build_server, settings, "query_sqlite", db_path=str(shop), query=query)
    assert shop.read_bytes() == before
    assert rows_of(shop, "SELECT COUNT(*) FROM orders") == [(3,)]


async def test_query_sqlite_needs_an_existing_database_inside_the_roots(
    settings: ToolHostSettings, root: Path, outside: Path
) -> None:
    assert "does not exist" in await refused(
        build_server, settings, "query_sqlite", db_path=str(root / "none.db"), query="SELECT 1"
    )
    assert not (root / "none.db").exists()
    make_db(outside / "secret.db", "CREATE TABLE s (v TEXT)")
    text = await refused(build_server, settings, "query_sqlite", db_path=str(outside / "secret.db"), query="SELECT 1")
    assert "outside the allowed folders" in text


# deduplicate_records


async def test_deduplicate_records_exact_ignores_case_and_spaces(settings: ToolHostSettings) -> None:
    records = [
        {"email": "ann@example.org", "n": 1},
        {"email": "bo@example.org", "n": 2},
        {"email": " ANN@example.org ", "n": 3},
        {"email": None, "n": 4},
        {"n": 5},
    ]
    result = await ok(build_server, settings, "deduplicate_records", data=records, match_fields=["email"], threshold=1)
    assert result["total_records"] == 5 and result["unique_count"] == 4 and result["duplicate_count"] == 1
    assert [r["n"] for r in result["unique"]] == [1, 2, 4, 5]
    assert result["duplicates"] == [{"rows": [1, 3], "records": [records[0], records[2]], "similarity": 1.0}]
    assert result["groups_truncated"] is False


async def test_deduplicate_records_finds_near_duplicates(settings: ToolHostSettings) -> None:
    records = [
        {"first": "Jonathan", "last": "Smith", "city": "Leeds"},
        {"first": "Maria", "last": "Garcia", "city": "York"},
        {"first": "Jonathon", "last": "Smith", "city": "Hull"},
        {"first": "Jon", "last": "Smyth", "city": "Leeds"},
    ]
    fields = ["first", "last"]
    result = await ok(build_server, settings, "deduplicate_records", data=records, match_fields=fields)
    [group] = result["duplicates"]
    assert group["rows"] == [1, 3] and 0.85 <= group["similarity"] < 1
    assert result["unique_count"] == 3
    loose = await ok(build_server, settings, "deduplicate_records", data=records, match_fields=fields, threshold=0.6)
    assert loose["duplicates"][0]["rows"] == [1, 3, 4]


async def test_deduplicate_records_refusals(settings: ToolHostSettings) -> None:
    text = await refused(build_server, settings, "deduplicate_records", data=PEOPLE, match_fields=["phone"])
    assert "phone" in text and "name, email, age" in text
    assert "match_fields is empty" in await refused(
        build_server, settings, "deduplicate_records", data=PEOPLE, match_fields=[]
    )
    assert "empty" in await refused(build_server, settings, "deduplicate_records", data=[], match_fields=["a"])
    text = await refused(build_server, settings, "deduplicate_records", data=PEOPLE, match_fields=["name"], threshold=2)
    assert "threshold" in text


# summarize_anomalies


async def test_summarize_anomalies_reports_statistics_outliers_and_missing(settings: ToolHostSettings) -> None:
    amounts = [10, 12, 11, 13, 12, 11, 10, 12, 11, 13, 12, 11, 10, 12, 11, 500]
    records: list[dict[str, Any]] = [{"id": i, "amount": a, "city": "Leeds"} for i, a in enumerate(amounts, start=1)]
    records[2]["amount"] = "n/a"
    records[4]["amount"] = "twelve"
    records[5]["city"] = ""
    report = await ok(build_server, settings, "summarize_anomalies", data=records)
    assert report["record_count"] == 16
    assert report["missing_values"] == {"id": 0, "amount": 1, "city": 1}
    stats = {s["column"]: s for s in report["numeric_columns"]}
    assert set(stats) == {"id", "amount"}
    amount = stats["amount"]
    assert amount["count"] == 14 and amount["missing"] == 1 and amount["min"] == 10 and amount["max"] == 500
    present = [a for index, a in enumerate(amounts) if index not in (2, 4)]
    assert amount["mean"] == pytest.approx(statistics.fmean(present))
    assert amount["std"] == pytest.approx(statistics.stdev(present))
    assert [(a["row"], a["kind"]) for a in report["anomalies"]] == [(5, "not_numeric"), (16, "z_score")]
    assert report["anomalies"][1]["value"] == 500 and "z-score" in report["anomalies"][1]["detail"]


async def test_summarize_anomalies_iqr_and_rules(settings: ToolHostSettings) -> None:
    records = [
        {"sku": "A-1", "price": 10.0},
        {"sku": "A-2", "price": 11.0},
        {"sku": "bad sku", "price": 12.0},
        {"sku": "A-4", "price": 13.0},
        {"sku": "A-5", "price": 40.0},
        {"sku": None, "price": 9.0},
    ]
    rules = [
        {"field": "price", "operator": ">=", "value": 13, "name": "pricey"},
        {"field": "sku", "operator": "missing"},
        {"field": "sku", "operator": "matches", "value": r"\s"},
    ]
    report = await ok(build_server, settings, "summarize_anomalies", data=records, rules=rules)
    found = [(a["row"], a["column"], a["kind"], a["detail"]) for a in report["anomalies"]]
    assert found == [
        (3, "sku", "rule", "rule: sku matches '\\\\s'"),
        (4, "price", "rule", "rule: pricey"),
        (5, "price", "iqr", "outside the IQR fence [6.5, 16.5] (Q1 10.25, Q3 12.75)"),
        (5, "price", "rule", "rule: pricey"),
        (6, "sku", "rule", "rule: sku missing"),
    ]


async def test_summarize_anomalies_refusals(settings: ToolHostSettings) -> None:
    text = await refused(
        build_server,
        settings,
        "summarize_anomalies",
        data=PEOPLE,
        rules=[{"field": "salary", "operator": ">", "value": 1}],
    )
    assert "salary" in text and "Fields present" in text
    text = await refused(
        build_server, settings, "summarize_anomalies", data=PEOPLE, rules=[{"field": "age", "operator": ">"}]
    )
    assert "needs a value" in text
    text = await refused(
        build_server,
        settings,
        "summarize_anomalies",
        data=PEOPLE,
        rules=[{"field": "age", "operator": "about", "value": 1}],
    )
    assert "operator" in text
    assert "empty" in await refused(build_server, settings, "summarize_anomalies", data=[])

"""The `data` MCP server: write rows to CSV or SQLite, query SQLite read-only, find duplicates and outliers.

Rows are given as a list of JSON objects (one object a record). The writers never lose anything: a
new file can be removed again (undo), an existing file is copied into the trash before it changes,
and `write_sqlite` never touches a table that already exists. `query_sqlite` opens the database
read-only and lets a single SELECT through. Run over stdio with `python -m services.toolhost.servers.data`.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import re
import sqlite3
import statistics
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    Trash,
    UndoAction,
    closest_choice,
    existing_file,
    serve,
    sha256_of,
    tool,
    write_atomically,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.data")

SERVER_NAME = "data"
MAX_QUERY_ROWS = 500
QUERY_TIME_LIMIT_SECONDS = 10.0
MAX_RECORDS = 5000
# Fuzzy matching compares every pair of distinct keys; past this many it would take minutes.
MAX_FUZZY_KEYS = 1000
MAX_GROUPS_SHOWN = 50
MAX_ANOMALIES_SHOWN = 500
Z_SCORE_LIMIT = 3.0
IQR_FACTOR = 1.5
# A column counts as numeric when at least this share of its present values are numbers.
NUMERIC_SHARE = 0.8
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "-"})
SQLITE_HEADER = b"SQLite format 3\x00"
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Records = Annotated[
    list[dict[str, Any]],
    Field(description='The rows, one JSON object per record, e.g. [{"name": "Ann", "age": 31}, {"name": "Bo"}].'),
]


class ColumnDef(BaseModel):
    name: str
    type: Literal["INTEGER", "REAL", "TEXT"]


class CsvWritten(BaseModel):
    success: bool
    path: str
    rows: int = Field(description="Data rows written, not counting the header line.")
    headers: list[str]
    overwrote: bool = Field(description="True when an existing file was replaced.")
    trash_id: str | None = Field(None, description="Trash entry holding the replaced file, if any.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class SqliteWritten(BaseModel):
    success: bool
    db_path: str
    table: str
    rows_inserted: int
    columns: list[ColumnDef]
    created_database: bool = Field(description="True when the database file did not exist before.")
    trash_id: str | None = Field(None, description="Trash entry holding the database as it was before, if any.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class QueryResult(BaseModel):
    db_path: str
    columns: list[str] = Field(description="Column names of the result, in order.")
    results: list[dict[str, Any]] = Field(description="One object per result row, keyed by column name.")
    row_count: int = Field(description="Rows returned here.")
    truncated: bool = Field(description=f"True when the query had more than {MAX_QUERY_ROWS} rows.")


class DuplicateGroup(BaseModel):
    rows: list[int] = Field(description="Positions of the records in the input (1 = first record); the first is kept.")
    records: list[dict[str, Any]]
    similarity: float = Field(description="Lowest similarity between a record and the one it matched (1 = equal).")


class Deduplicated(BaseModel):
    total_records: int
    unique_count: int = Field(description="Records left after removing duplicates.")
    duplicate_count: int = Field(description="Records removed as duplicates of an earlier record.")
    match_fields: list[str]
    threshold: float
    unique: list[dict[str, Any]] = Field(description="The records to keep, in input order.")
    duplicates: list[DuplicateGroup] = Field(description="Groups of records that match each other.")
    groups_truncated: bool = Field(description=f"True when there were more than {MAX_GROUPS_SHOWN} groups.")


class AnomalyRule(BaseModel):
    """A condition that marks a record as anomalous when it holds."""

    field: str = Field(description="The column the rule checks.")
    operator: Literal[">", ">=", "<", "<=", "==", "!=", "missing", "matches"] = Field(
        description='Comparison: ">", ">=", "<", "<=", "==", "!=", "missing" (value empty or absent) or '
        '"matches" (the value matches the regular expression in value).'
    )
    value: Any = Field(
        None, description='What to compare with, e.g. 1000; a regex for "matches"; unused for "missing".'
    )
    name: str | None = Field(None, description="A short name for the rule, shown with each record it flags.")


class ColumnStats(BaseModel):
    column: str
    count: int = Field(description="Numeric values present.")
    missing: int
    mean: float
    std: float | None = Field(description="Sample standard deviation; null with fewer than two values.")
    min: float
    max: float
    median: float
    q1: float
    q3: float


class Anomaly(BaseModel):
    row: int = Field(description="Position of the record in the input, 1 = first record.")
    column: str
    value: Any
    kind: Literal["z_score", "iqr", "not_numeric", "rule"]
    detail: str


class AnomalyReport(BaseModel):
    record_count: int
    numeric_columns: list[ColumnStats]
    missing_values: dict[str, int] = Field(description="Per column, records where it is absent, null or empty.")
    anomalies: list[Anomaly]
    anomalies_truncated: bool = Field(description=f"True when more than {MAX_ANOMALIES_SHOWN} anomalies were found.")


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The data server, reading and writing files only inside `settings.roots()`."""
    sandbox = settings.sandbox()
    trash = Trash(settings.trash_dir)
    resolve = sandbox.resolve
    server = MCPServer(
        SERVER_NAME,
        instructions="Tabular data: write CSV and SQLite files, query SQLite read-only, find duplicates and outliers.",
    )

    # May replace an existing file; its old content is kept in the trash, and the undo puts it back.
    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Write the records to the CSV file {output_path}",
            overwrites=("output_path",),
        ),
    )
    def write_csv(
        data: Records,
        output_path: Annotated[str, Field(description="Absolute path of the CSV file to create or replace.")],
        headers: Annotated[
            list[str] | None,
            Field(description="Column names in the order wanted. Omit to use every field of the records."),
        ] = None,
    ) -> CsvWritten:
        """Save a list of records as a CSV file (a header line, then one line per record).

        Nested values are written as JSON, missing fields as empty cells. A replaced file is kept in the
        trash first. To save records as a database table use data.write_sqlite; for plain text use
        filesystem.write_file.
        """
        target = resolve(output_path)
        if target.is_dir():
            raise ToolError(
                f"{target} is a folder. Give a file path inside it, e.g. {target / 'data.csv'}.",
                correction=Correction(f"{output_path!r} is a folder, not a file", parameter="output_path"),
            )
        columns = _csv_columns(data, headers)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for record in data:
            writer.writerow([_cell(record.get(column)) for column in columns])
        content = buffer.getvalue().encode("utf-8")
        trash_id = None
        if target.exists():
            trash_id = trash.keep(target, move=False, reason="overwritten by data.write_csv").trash_id
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, content)
        log.info("wrote %d rows to %s (previous file in trash %s)", len(data), target, trash_id)
        return CsvWritten(
            success=True,
            path=str(target),
            rows=len(data),
            headers=columns,
            overwrote=trash_id is not None,
            trash_id=trash_id,
            undo=[_undo_write(target, trash_id)],
        )

    @tool(
        server,
        Effects.changes(
            destructive=False, undoable=True, idempotent=False, preview="Create the table {table} in {db_path}"
        ),
    )
    def write_sqlite(
        data: Records,
        table: Annotated[
            str, Field(description="Name of the NEW table to create, letters, digits and _ only, e.g. sales_2024.")
        ],
        db_path: Annotated[
            str, Field(description="Absolute path of the SQLite database file; it is created if it does not exist.")
        ],
    ) -> SqliteWritten:
        """Create a new table in a SQLite database file and insert the records as its rows.

        Column types (INTEGER, REAL, TEXT) follow the values. Refuses a table name that already exists:
        pick a new name. The database file as it was is kept in the trash first. To read tables use
        data.query_sqlite; to save records as a spreadsheet-friendly file use data.write_csv.
        """
        if not IDENTIFIER.fullmatch(table):
            raise ToolError(
                f"Table name {table!r} is not allowed: use letters, digits and underscores, starting with a "
                "letter, e.g. 'contacts' or 'sales_2024'.",
                correction=Correction(
                    f"table name {table!r} is not allowed", parameter="table", suggested_value=_table_name(table)
                ),
            )
        if not data:
            raise ToolError(
                "data is empty: give at least one record to create the table from.",
                correction=Correction("data is empty", parameter="data"),
            )
        db = resolve(db_path)
        if db.is_dir():
            raise ToolError(
                f"{db} is a folder. Give a database file path inside it, e.g. {db / 'data.sqlite'}.",
                correction=Correction(f"{db_path!r} is a folder, not a file", parameter="db_path"),
            )
        # The table is added to the file itself, not to a copy renamed over it.
        sandbox.in_place(db)
        columns = _sqlite_columns(data)
        existed = db.exists()
        if existed:
            _require_sqlite_file(db)
            with closing(sqlite3.connect(db, isolation_level=None)) as conn:
                if _table_exists(conn, table):
                    raise ToolError(
                        f"Table {table!r} already exists in {db}; write_sqlite only creates new tables and has "
                        f"not changed it. Choose another table name, or read it with data.query_sqlite.",
                        correction=Correction(f"table {table!r} already exists", parameter="table"),
                    )
                # Fold a write-ahead log into the main file so that the trash copy holds every row.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        trash_id = trash.keep(db, move=False, reason="changed by data.write_sqlite").trash_id if existed else None
        db.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(db, isolation_level=None)) as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _create_and_fill(conn, table, columns, data)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if not existed:
                db.unlink(missing_ok=True)
            raise ToolError(f"SQLite could not write table {table!r} to {db}: {exc}. Nothing was changed.") from exc
        log.info("created table %s in %s with %d rows (previous file in trash %s)", table, db, len(data), trash_id)
        return SqliteWritten(
            success=True,
            db_path=str(db),
            table=table,
            rows_inserted=len(data),
            columns=columns,
            created_database=not existed,
            trash_id=trash_id,
            undo=[_undo_write(db, trash_id)],
        )

    @tool(server, Effects.reads())
    def query_sqlite(
        query: Annotated[
            str,
            Field(description='One SELECT statement (WITH ... SELECT allowed), e.g. "SELECT name, total FROM orders".'),
        ],
        db_path: Annotated[str, Field(description="Absolute path of the SQLite database file to read.")],
    ) -> QueryResult:
        """Run one read-only SELECT query on a SQLite database file and return the rows and column names.

        The database is opened read-only: INSERT, UPDATE, DELETE, CREATE, PRAGMA and ATTACH are refused.
        At most 500 rows are returned. To add a table use data.write_sqlite; to list a database's tables
        run SELECT name FROM main.sqlite_master WHERE type = 'table'.
        """
        statement = _single_select(query)
        db = existing_file(resolve(db_path), db_path)
        _require_sqlite_file(db)
        uri = f"file:{urllib.parse.quote(str(db))}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
            conn.execute("PRAGMA query_only = ON")
            conn.set_authorizer(_reads_only)
            deadline = time.monotonic() + QUERY_TIME_LIMIT_SECONDS
            conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
            try:
                cursor = conn.execute(statement)
                fetched = cursor.fetchmany(MAX_QUERY_ROWS + 1)
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise ToolError(_query_error(exc, conn), correction=_query_correction(exc, conn, statement)) from exc
            columns = _unique_names([d[0] for d in cursor.description or ()])
        rows = fetched[:MAX_QUERY_ROWS]
        return QueryResult(
            db_path=str(db),
            columns=columns,
            results=[dict(zip(columns, (_json_value(v) for v in row), strict=True)) for row in rows],
            row_count=len(rows),
            truncated=len(fetched) > MAX_QUERY_ROWS,
        )

    @tool(server, Effects.reads())
    def deduplicate_records(
        data: Records,
        match_fields: Annotated[
            list[str],
            Field(description='Fields that identify a record, e.g. ["email"] or ["first_name", "last_name"].'),
        ],
        threshold: Annotated[
            float,
            Field(
                ge=0.0,
                le=1.0,
                description="How alike the match fields must be, 0 to 1: 1 finds exact duplicates only (ignoring "
                "case and spaces); 0.85 also finds near-duplicates like typos.",
            ),
        ] = 0.85,
    ) -> Deduplicated:
        """Find records that are duplicates of each other (exact or near matches on chosen fields).

        Returns the records to keep (the first of each group) and the groups of duplicates with their
        positions. Text is compared ignoring case and extra spaces. It does not change any file: to save
        the kept records use data.write_csv. For unusual values use data.summarize_anomalies.
        """
        _check_record_count(data)
        if not match_fields:
            raise ToolError(
                f"match_fields is empty. Name the fields to compare, from: {_field_list(data)}.",
                correction=Correction("match_fields is empty", parameter="match_fields"),
            )
        unknown = [f for f in match_fields if not any(f in record for record in data)]
        if unknown:
            raise ToolError(
                f"No record has the field(s) {unknown}. Fields present: {_field_list(data)}.",
                correction=Correction(
                    f"no record has the field(s) {unknown}",
                    parameter="match_fields",
                    suggested_value=_known_fields(match_fields, _fields(data)),
                ),
            )
        groups = _duplicate_groups(data, match_fields, threshold)
        dropped = {row for group in groups for row in group.rows[1:]}
        unique = [record for index, record in enumerate(data, start=1) if index not in dropped]
        return Deduplicated(
            total_records=len(data),
            unique_count=len(unique),
            duplicate_count=len(dropped),
            match_fields=match_fields,
            threshold=threshold,
            unique=unique,
            duplicates=groups[:MAX_GROUPS_SHOWN],
            groups_truncated=len(groups) > MAX_GROUPS_SHOWN,
        )

    @tool(server, Effects.reads())
    def summarize_anomalies(
        data: Records,
        rules: Annotated[
            list[AnomalyRule] | None,
            Field(
                description='Extra checks; a record is flagged when a rule holds, e.g. [{"field": "amount", '
                '"operator": ">", "value": 10000}]. Omit for the statistics only.'
            ),
        ] = None,
    ) -> AnomalyReport:
        """Find unusual values in records: statistics and outliers per numeric column, and missing values.

        For each numeric column: count, mean, standard deviation, min, max, quartiles, and the rows whose
        value is an outlier (|z-score| > 3 or outside 1.5 IQR). Also counts missing values per column and
        applies optional rules. For duplicate records use data.deduplicate_records.
        """
        _check_record_count(data)
        fields = _fields(data)
        for rule in rules or []:
            if rule.field not in fields:
                raise ToolError(
                    f"Rule field {rule.field!r} is in no record. Fields present: {_field_list(data)}.",
                    correction=Correction(f"rule field {rule.field!r} is in no record", parameter="rules"),
                )
        missing = {field: sum(1 for record in data if _is_missing(record.get(field))) for field in fields}
        stats: list[ColumnStats] = []
        anomalies: list[Anomaly] = []
        for field in fields:
            column = _numeric_column(data, field)
            if column is None:
                continue
            numbers, not_numbers = column
            anomalies.extend(not_numbers)
            column_stats, outliers = _describe(field, numbers, missing[field])
            stats.append(column_stats)
            anomalies.extend(outliers)
        for rule in rules or []:
            anomalies.extend(_apply_rule(rule, data))
        anomalies.sort(key=lambda a: (a.row, a.column))
        return AnomalyReport(
            record_count=len(data),
            numeric_columns=stats,
            missing_values=missing,
            anomalies=anomalies[:MAX_ANOMALIES_SHOWN],
            anomalies_truncated=len(anomalies) > MAX_ANOMALIES_SHOWN,
        )

    return server


# writing


def _table_name(raw: str) -> str | None:
    """`raw` made into an allowed table name ("Sales 2024" → "Sales_2024"), if that is possible."""
    name = re.sub(r"\W+", "_", raw.strip()).strip("_")
    return name if name[:1].isalpha() and IDENTIFIER.fullmatch(name) else None


def _known_fields(asked: list[str], present: list[str]) -> list[str] | None:
    """`asked` with each field no record has replaced by the closest present one; None if one has none."""
    fields = [field if field in present else closest_choice(field, present) for field in asked]
    return None if None in fields else [field for field in fields if field is not None]


def _undo_write(target: Path, trash_id: str | None) -> UndoAction:
    if trash_id is not None:
        return UndoAction(kind="restore_trash", path=str(target), trash_id=trash_id, replace=True)
    return UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))


def _fields(data: Iterable[dict[str, Any]]) -> list[str]:
    """Every field of the records, in the order they first appear."""
    return list(dict.fromkeys(key for record in data for key in record))


def _field_list(data: list[dict[str, Any]]) -> str:
    return ", ".join(_fields(data)) or "(the records have no fields)"


def _csv_columns(data: list[dict[str, Any]], headers: list[str] | None) -> list[str]:
    if headers is None:
        columns = _fields(data)
        if not columns:
            raise ToolError(
                "There is nothing to write: data has no fields. Give records, or headers for an empty CSV.",
                correction=Correction("data has no fields", parameter="data"),
            )
        return columns
    if not headers or any(not h for h in headers):
        raise ToolError(
            "headers must be non-empty column names. Omit headers to use the records' fields.",
            correction=Correction("headers holds an empty name", parameter="headers"),
        )
    if len(set(headers)) != len(headers):
        raise ToolError(
            f"headers repeats a column name: {headers}. Give each column once.",
            correction=Correction(
                "headers repeats a column name", parameter="headers", suggested_value=list(dict.fromkeys(headers))
            ),
        )
    known = set(headers)
    for index, record in enumerate(data, start=1):
        extra = [key for key in record if key not in known]
        if extra:
            raise ToolError(
                f"Record {index} has field(s) {extra} that are not in headers. Add them to headers, "
                "or omit headers to write every field.",
                correction=Correction(
                    f"record {index} has fields not in headers",
                    parameter="headers",
                    suggested_value=[*headers, *(f for f in _fields(data) if f not in known)],
                ),
            )
    return headers


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _sqlite_columns(data: list[dict[str, Any]]) -> list[ColumnDef]:
    columns = []
    for name in _fields(data):
        if not name.strip():
            raise ToolError(
                "A record has an empty field name; every column needs a name.",
                correction=Correction("a record has an empty field name", parameter="data"),
            )
        present = [record[name] for record in data if record.get(name) is not None]
        columns.append(ColumnDef(name=name, type=_sqlite_type(present)))
    return columns


def _sqlite_type(values: list[Any]) -> Literal["INTEGER", "REAL", "TEXT"]:
    """The column type all present values fit; integers beyond 64 bits are kept exactly as TEXT."""
    if not values or any(isinstance(v, int) and not INT64_MIN <= v <= INT64_MAX for v in values):
        return "TEXT"
    if all(isinstance(v, int) for v in values):
        return "INTEGER"  # bool is an int: stored as 0 or 1
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "REAL"
    return "TEXT"


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _table_exists(conn: sqlite3.Connection, table: str) -> bool:
    # SQLite names are case-insensitive: "Sales" and "sales" are the same table.
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE", (table,)
    )
    return found.fetchone() is not None


def _create_and_fill(
    conn: sqlite3.Connection, table: str, columns: list[ColumnDef], data: list[dict[str, Any]]
) -> None:
    definition = ", ".join(f"{_quote(c.name)} {c.type}" for c in columns)
    conn.execute(f"CREATE TABLE {_quote(table)} ({definition})")
    placeholders = ", ".join("?" for _ in columns)
    names = ", ".join(_quote(c.name) for c in columns)
    conn.executemany(
        f"INSERT INTO {_quote(table)} ({names}) VALUES ({placeholders})",
        ([_sql_value(record.get(c.name)) for c in columns] for record in data),
    )


def _require_sqlite_file(db: Path) -> None:
    with db.open("rb") as f:
        header = f.read(len(SQLITE_HEADER))
    # An empty file is a valid, empty database to SQLite.
    if header and header != SQLITE_HEADER:
        raise ToolError(
            f"{db} is not a SQLite database. For a CSV file use filesystem.read_file; give the path of a "
            ".db/.sqlite file.",
            correction=Correction(f"{db.name} is not a SQLite database", parameter="db_path"),
        )


# querying

_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _reads_only(action: int, *_: str | None) -> int:
    """SQLite authorizer: reading tables and calling functions only; everything else is denied."""
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


_COMMENT = re.compile(r"\s*(--[^\n]*(\n|$)|/\*.*?\*/)", re.DOTALL)


def _single_select(query: str) -> str:
    statement = query.strip().rstrip(";").strip()
    rest = statement
    while (comment := _COMMENT.match(rest)) is not None:
        rest = rest[comment.end() :]
    first = rest.split(None, 1)[0].upper() if rest.strip() else ""
    if first not in ("SELECT", "WITH"):
        problem = f"the query is {first}, not SELECT" if first else "the query is empty"
        # Creating a table and filling it is what data.write_sqlite does; any other change, no tool here does.
        writer = "data.write_sqlite" if first in ("CREATE", "INSERT") else ""
        raise ToolError(
            "query_sqlite runs only one read-only SELECT (or WITH ... SELECT) statement"
            + (f", not {first}" if first else ", and the query is empty")
            + ". To create a table from records use data.write_sqlite.",
            correction=Correction(problem, parameter="" if writer else "query", suggested_tool=writer),
        )
    return statement


def _query_error(exc: sqlite3.Error | sqlite3.Warning, conn: sqlite3.Connection) -> str:
    text = str(exc)
    if "one statement at a time" in text:
        return "Only one statement may be run per call. Send each SELECT in its own query_sqlite call."
    if "not authorized" in text or "readonly" in text or "read-only" in text:
        return "query_sqlite only reads: that query tries to change the database or its settings. Use a plain SELECT."
    if "interrupted" in text:
        return f"The query ran longer than {QUERY_TIME_LIMIT_SECONDS:.0f} s and was stopped. Add a WHERE or LIMIT."
    if "no such table" in text:
        tables = [row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view')")]
        return f"SQLite: {text}. Tables in this database: {', '.join(tables) or 'none'}."
    return f"SQLite rejected the query: {text}. Check the table and column names and the SQL syntax."


def _query_correction(exc: sqlite3.Error | sqlite3.Warning, conn: sqlite3.Connection, query: str) -> Correction:
    """The query with a misspelt table name replaced by the closest real one, when SQLite named it."""
    text = str(exc)
    wrong = re.fullmatch(r"no such table: (?:main\.)?(\w+)", text)
    if wrong is None:
        return Correction(text, parameter="query")
    tables = [row[0] for row in conn.execute("SELECT name FROM main.sqlite_master WHERE type IN ('table', 'view')")]
    table = closest_choice(wrong.group(1), tables)
    corrected = None if table is None else re.sub(rf"\b{re.escape(wrong.group(1))}\b", table, query)
    return Correction(text, parameter="query", suggested_value=corrected)


def _unique_names(names: list[str]) -> list[str]:
    """Column names made distinct ("id", "id_2"), so that a join's rows keep every value."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"X'{value.hex()}'" if len(value) <= 64 else f"<blob of {len(value)} bytes>"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


# duplicates


def _check_record_count(data: list[dict[str, Any]]) -> None:
    if not data:
        raise ToolError(
            "data is empty: give the records to examine as a list of JSON objects.",
            correction=Correction("data is empty", parameter="data"),
        )
    if len(data) > MAX_RECORDS:
        raise ToolError(
            f"{len(data)} records is more than the limit of {MAX_RECORDS}; send them in parts.",
            correction=Correction(f"more than {MAX_RECORDS} records", parameter="data"),
        )


def _normalized(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True)
    return " ".join(str(value).split()).casefold()


def _similarity(a: tuple[str, ...], b: tuple[str, ...], quick: bool) -> float:
    """Mean over the fields of difflib's ratio; with `quick`, an upper bound that is cheap to compute."""
    total = 0.0
    for x, y in zip(a, b, strict=True):
        if x == y:
            total += 1.0
        elif x and y:
            matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
            total += matcher.real_quick_ratio() if quick else matcher.ratio()
    return total / len(a)


def _duplicate_groups(data: list[dict[str, Any]], fields: list[str], threshold: float) -> list[DuplicateGroup]:
    keys: dict[tuple[str, ...], list[int]] = {}
    for index, record in enumerate(data):
        key = tuple(_normalized(record.get(f)) for f in fields)
        if any(key):  # a record without any match field cannot duplicate anything
            keys.setdefault(key, []).append(index)
    distinct = list(keys)
    parent = list(range(len(distinct)))
    weakest = [1.0] * len(distinct)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if threshold < 1.0:
        if len(distinct) > MAX_FUZZY_KEYS:
            raise ToolError(
                f"{len(distinct)} distinct records are too many to compare for near-duplicates (limit "
                f"{MAX_FUZZY_KEYS}). Call again with threshold 1 for exact duplicates, or send fewer records.",
                correction=Correction(
                    f"more than {MAX_FUZZY_KEYS} distinct records to compare", parameter="threshold", suggested_value=1
                ),
            )
        for i, j in _pairs(len(distinct)):
            if _similarity(distinct[i], distinct[j], quick=True) < threshold:
                continue
            score = _similarity(distinct[i], distinct[j], quick=False)
            if score >= threshold:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
                    weakest[min(a, b)] = min(weakest[a], weakest[b], score)
                else:
                    weakest[a] = min(weakest[a], score)
    members: dict[int, list[int]] = {}
    for position, key in enumerate(distinct):
        members.setdefault(root(position), []).extend(keys[key])
    groups = []
    for group_root, rows in members.items():
        if len(rows) > 1:
            rows.sort()
            groups.append(
                DuplicateGroup(
                    rows=[r + 1 for r in rows],
                    records=[data[r] for r in rows],
                    similarity=round(weakest[root(group_root)], 3),
                )
            )
    groups.sort(key=lambda g: g.rows[0])
    return groups


def _pairs(n: int) -> Iterator[tuple[int, int]]:
    for i in range(n):
        for j in range(i + 1, n):
            yield i, j


# anomalies


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _numeric_column(data: list[dict[str, Any]], field: str) -> tuple[list[tuple[int, float]], list[Anomaly]] | None:
    """(row, number) pairs and the non-numbers among them, or None if the column is not numeric."""
    numbers: list[tuple[int, float]] = []
    others: list[Anomaly] = []
    for row, record in enumerate(data, start=1):
        value = record.get(field)
        if _is_missing(value):
            continue
        number = _as_number(value)
        if number is None:
            others.append(
                Anomaly(
                    row=row,
                    column=field,
                    value=value,
                    kind="not_numeric",
                    detail=f"not a number in a column that is otherwise numeric: {value!r}",
                )
            )
        else:
            numbers.append((row, number))
    if not numbers or len(numbers) < NUMERIC_SHARE * (len(numbers) + len(others)):
        return None
    return numbers, others


def _describe(field: str, numbers: list[tuple[int, float]], missing: int) -> tuple[ColumnStats, list[Anomaly]]:
    values = [v for _, v in numbers]
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    if len(values) > 1:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = median = q3 = values[0]
    low, high = q1 - IQR_FACTOR * (q3 - q1), q3 + IQR_FACTOR * (q3 - q1)
    outliers = []
    for row, value in numbers:
        shown = int(value) if value.is_integer() else value
        if std:
            z = (value - mean) / std
            if abs(z) > Z_SCORE_LIMIT:
                detail = f"z-score {z:.2f} (mean {mean:.4g}, std {std:.4g})"
                outliers.append(Anomaly(row=row, column=field, value=shown, kind="z_score", detail=detail))
                continue
        if q3 > q1 and not low <= value <= high:
            detail = f"outside the IQR fence [{low:.4g}, {high:.4g}] (Q1 {q1:.4g}, Q3 {q3:.4g})"
            outliers.append(Anomaly(row=row, column=field, value=shown, kind="iqr", detail=detail))
    stats = ColumnStats(
        column=field,
        count=len(values),
        missing=missing,
        mean=mean,
        std=std,
        min=min(values),
        max=max(values),
        median=median,
        q1=q1,
        q3=q3,
    )
    return stats, outliers


def _apply_rule(rule: AnomalyRule, data: list[dict[str, Any]]) -> list[Anomaly]:
    label = rule.name or (f"{rule.field} {rule.operator}" + ("" if rule.value is None else f" {rule.value!r}"))
    pattern = None
    if rule.operator == "matches":
        try:
            pattern = re.compile(str(rule.value))
        except re.error as exc:
            raise ToolError(
                f"Rule {label!r}: {rule.value!r} is not a valid regular expression ({exc}).",
                correction=Correction(f"rule {label!r} has an invalid regular expression", parameter="rules"),
            ) from exc
    elif rule.operator != "missing" and rule.value is None:
        raise ToolError(
            f"Rule on {rule.field!r} with operator {rule.operator!r} needs a value to compare with.",
            correction=Correction(f"rule on {rule.field!r} has no value", parameter="rules"),
        )
    flagged = []
    for row, record in enumerate(data, start=1):
        value = record.get(rule.field)
        if rule.operator == "missing":
            hit = _is_missing(value)
        elif _is_missing(value):
            continue
        elif pattern is not None:
            hit = pattern.search(str(value)) is not None
        else:
            hit = _compare(value, rule.operator, rule.value)
        if hit:
            flagged.append(Anomaly(row=row, column=rule.field, value=value, kind="rule", detail=f"rule: {label}"))
    return flagged


def _compare(value: Any, operator: str, expected: Any) -> bool:
    left: Any
    right: Any
    left, right = _as_number(value), _as_number(expected)
    if left is None or right is None:
        # Not both numbers: compare as text, so "==" and "!=" still work on names and codes.
        left, right = _normalized(value), _normalized(expected)
    match operator:
        case ">":
            return bool(left > right)
        case ">=":
            return bool(left >= right)
        case "<":
            return bool(left < right)
        case "<=":
            return bool(left <= right)
        case "==":
            return bool(left == right)
        case _:
            return bool(left != right)


def main() -> None:
    """Serve the data tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()

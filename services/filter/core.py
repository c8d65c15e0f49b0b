"""The tool pre-filter: a hybrid (dense + BM25) index built once, and the top-K tools for a step.

Each tool is represented by its description and by example requests written in users' words
(`examples.yaml`): embedding example queries finds a tool far more reliably than its description alone.
A request is scored against every tool two ways:

- dense: the best cosine similarity between the request and any of the tool's texts (all-MiniLM-L6-v2);
- lexical: BM25 over one document per tool (its name words, description and examples).

The two are fused (a weighted sum of scores normalised per request) and the candidates are taken
server-first: every tool of the most likely server, then the best of the rest, up to K. The index is
built once per catalogue (never per request) and the encoder is passed in, so this module stays pure.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from switchboard.extract import retrieval_text

Encoder = Callable[[list[str]], np.ndarray]

# Set on the dev halves with the trained encoder (docs/benchmarks.md); 0.65 suited the base encoder.
DENSE_WEIGHT = 0.8
# How many embeddings of callers' own tools are kept (see `EmbeddingCache`).
CALLER_TOOLS_CACHED = 4096
# "No tool fits" for a caller's own tools (the OpenAI-compatible endpoint's), with the trained encoder.
# The catalogue's threshold (0.50) does not carry over: the encoder was trained to pull requests
# towards the catalogue's tools, and a catalogue tool is matched through its example requests too,
# while a caller's tool has only its name and description. Measured by hand on ten tools from other
# domains (weather, invoices, flights, stock prices, chat messages …) and twenty requests: fitting
# requests scored 0.21-0.60 against their tool, unrelated ones (jokes, recipes, greetings) 0.05-0.29.
# 0.20 keeps every fitting request and turns most unrelated ones away, fewer the more tools a
# caller sends; the two overlap, so this is a floor, not a fine judge. Another encoder needs its own.
CALLER_NO_FIT_SIMILARITY = 0.20
SERVER_FIRST = 1  # how many of the most likely servers contribute all their tools to the candidates
PROBE_LEARNING_RATE = 2.0
PROBE_L2 = 1e-3
BM25_K1 = 1.2
BM25_B = 0.75
STOPWORDS = frozenset(
    "a an the of to in on at for from by with and or is are be it this that these those my me i you your "
    "please can could would will do does all any some what which who how into as up out over".split()
)


@dataclass(frozen=True)
class ToolEntry:
    """What the index knows of a tool."""

    name: str
    server: str
    description: str
    input_schema_json: str = "{}"
    changes: bool = False  # it changes something (it needs a person's confirmation)


@dataclass(frozen=True)
class Ranked:
    tool: ToolEntry
    score: float
    dense: float = 0.0
    lexical: float = 0.0


@dataclass(frozen=True)
class Assessment:
    """The candidates for a request, and how likely the request asks to change something (0..1)."""

    ranked: list[Ranked]
    change_intent: float


def tool_document(tool: ToolEntry) -> str:
    """The text a tool is embedded as: its name in words, then its description's first paragraph."""
    words = tool.name.replace(".", " ").replace("_", " ")
    return f"{words}. {tool.description.strip().split(chr(10) + chr(10))[0]}"


def dense_text(text: str) -> str:
    """A text as the encoder reads it, in the index and in training alike: a path becomes its file type
    ("pdf", "md") or the word "folder", an address "someone". The trained encoder learns what a type
    says about the tool (a .md file is read, a .pdf extracted, a .jpg recognised); the shipped one,
    untrained, matched requests on those words alone, which is why it read paths dropped."""
    return retrieval_text(text, keep_file_types=True, folder_word="folder")


def tokens(text: str) -> list[str]:
    """Lower-case word stems for BM25 (a light suffix strip: files → file, listing → list)."""
    out = []
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS or len(word) < 2:
            continue
        for suffix in ("ing", "ed", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


def catalogue_digest(tools: Sequence[ToolEntry], examples: Mapping[str, Sequence[str]] | None = None) -> str:
    """A fingerprint of a catalogue (and its examples), to tell when the index must be rebuilt."""
    payload = json.dumps(
        [sorted((t.name, t.description, t.input_schema_json) for t in tools), sorted((examples or {}).items())]
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class Bm25:
    """Okapi BM25 over one document per tool."""

    def __init__(self, documents: list[list[str]]) -> None:
        self.documents = [Counter(doc) for doc in documents]
        self.lengths = np.array([len(doc) for doc in documents], dtype=np.float32)
        self.average = float(self.lengths.mean()) if len(documents) else 0.0
        frequency: Counter[str] = Counter(word for doc in documents for word in set(doc))
        n = len(documents)
        self.idf = {word: math.log(1 + (n - df + 0.5) / (df + 0.5)) for word, df in frequency.items()}

    def scores(self, query: list[str]) -> np.ndarray:
        result = np.zeros(len(self.documents), dtype=np.float32)
        norm = BM25_K1 * (1 - BM25_B + BM25_B * self.lengths / max(self.average, 1e-9))
        for word in set(query):
            idf = self.idf.get(word)
            if idf is None:
                continue
            tf = np.array([doc.get(word, 0) for doc in self.documents], dtype=np.float32)
            result += idf * tf * (BM25_K1 + 1) / (tf + norm)
        return result


class ToolIndex:
    """Dense and lexical representations of every tool, and their fused ranking."""

    def __init__(
        self,
        encode: Encoder,
        tools: Sequence[ToolEntry],
        examples: Mapping[str, Sequence[str]] | None = None,
        dense_weight: float = DENSE_WEIGHT,
        server_first: int = SERVER_FIRST,
        known_vectors: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """`known_vectors` maps texts (as `dense_text` gives them) to embeddings already made by the
        same encoder, so that thousands of example requests need not be embedded again at start."""
        if not tools:
            raise ValueError("cannot build a tool index from an empty catalogue")
        examples = examples or {}
        self.encode = encode
        self.tools = list(tools)
        self.dense_weight = dense_weight
        self.server_first = server_first
        self.digest = catalogue_digest(self.tools, examples)
        texts: list[str] = []
        owners: list[int] = []
        for i, tool in enumerate(self.tools):
            for text in (tool_document(tool), *examples.get(tool.name, ())):
                texts.append(dense_text(text))
                owners.append(i)
        self.owners = np.array(owners)
        self.matrix = _normalise(embed_all(encode, texts, known_vectors or {}))
        self.change_probe = fit_change_probe(self.matrix, np.array([self.tools[i].changes for i in owners]))
        self.bm25 = Bm25(
            [
                tokens(f"{tool.name.replace('.', ' ').replace('_', ' ')} " * 2)
                + tokens(tool_document(tool))
                + tokens(retrieval_text(" ".join(examples.get(tool.name, ()))))
                for tool in self.tools
            ]
        )

    def scores(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fused, dense and lexical scores of every tool for `text`."""
        return self._scores(text, embed_query(self.encode, text))

    def _scores(self, text: str, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        similarities = self.matrix @ query
        dense = np.full(len(self.tools), -1.0, dtype=np.float32)
        np.maximum.at(dense, self.owners, similarities)
        lexical = self.bm25.scores(tokens(retrieval_text(text)))
        top = float(lexical.max())
        lexical_norm = lexical / top if top > 0 else lexical
        fused = self.dense_weight * dense + (1 - self.dense_weight) * lexical_norm
        return fused, dense, lexical_norm

    def rank(self, text: str, k: int) -> list[Ranked]:
        """The `k` candidates for `text`, best first, server-first."""
        return self.assess(text, k).ranked

    def assess(self, text: str, k: int, query: np.ndarray | None = None) -> Assessment:
        """The `k` candidates for `text` (best first, server-first) and its change intent. `query` is
        the text's embedding when the caller already made it (`embed_query`)."""
        if query is None:
            query = embed_query(self.encode, text)
        fused, dense, lexical = self._scores(text, query)
        order = [int(i) for i in np.argsort(-fused, kind="stable")]
        chosen = server_first_order(order, [t.server for t in self.tools], k, self.server_first)
        ranked = [Ranked(self.tools[i], float(fused[i]), float(dense[i]), float(lexical[i])) for i in chosen]
        return Assessment(ranked, self.change_probe(query))


def embed_query(encode: Encoder, text: str) -> np.ndarray:
    """A request's embedding, as every index compares it with its tools."""
    return _normalise(encode([dense_text(text)]))[0]


def caller_tool_key(name: str, description: str) -> str:
    """What a caller's tool is embedded from, hashed: the same name and description, sent again with
    the next request, find their embedding in the cache."""
    return hashlib.sha256(json.dumps([name, description]).encode()).hexdigest()


class EmbeddingCache:
    """The embeddings of tools a caller sent (see `ToolFilter.assess_tools`), by `caller_tool_key`.

    An agent harness sends the same tools with every request; embedding them again each time would
    cost more than ranking them. The least recently used are forgotten beyond `size`, so callers
    sending ever new tools cannot grow it without bound. Safe to use from several threads.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the cache must hold at least one embedding")
        self.size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vectors)

    def vectors(self, encode: Encoder, tools: Sequence[ToolEntry]) -> dict[str, np.ndarray]:
        """The embedding of each tool's document, keyed by the document as `dense_text` gives it (what
        `ToolIndex` looks up in `known_vectors`); those not cached are encoded in one batch."""
        documents = {caller_tool_key(t.name, t.description): dense_text(tool_document(t)) for t in tools}
        with self._lock:
            found = {key: self._vectors[key] for key in documents if key in self._vectors}
            for key in found:
                self._vectors.move_to_end(key)
        missing = [key for key in documents if key not in found]
        if missing:
            fresh = _normalise(encode([documents[key] for key in missing]))
            found.update(zip(missing, fresh, strict=True))
            with self._lock:
                for key in missing:
                    self._vectors[key] = found[key]
                    self._vectors.move_to_end(key)
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return {documents[key]: vector for key, vector in found.items()}


def fit_change_probe(vectors: np.ndarray, changes: np.ndarray, steps: int = 300) -> Callable[[np.ndarray], float]:
    """A logistic regression over the index's own texts (example requests and tool documents, each
    labelled by whether its tool changes something), as a function of a query's embedding.

    It says whether a request asks for a change even when the tool it lands on only reads: "kill
    whatever is eating my CPU" lands on the process list, but reads like the requests for tools that
    change things. Deterministic (full-batch gradient descent from zero); a catalogue whose tools all
    change, or all read, gives a constant probe."""
    labels = changes.astype(np.float32)
    if labels.min() == labels.max():
        constant = float(labels[0]) if len(labels) else 0.0
        return lambda query: constant
    weights = np.zeros(vectors.shape[1], dtype=np.float32)
    bias = 0.0
    for _ in range(steps):
        predicted = 1 / (1 + np.exp(-(vectors @ weights + bias)))
        error = predicted - labels
        weights -= PROBE_LEARNING_RATE * (vectors.T @ error / len(labels) + PROBE_L2 * weights)
        bias -= PROBE_LEARNING_RATE * float(error.mean())
    return lambda query: float(1 / (1 + np.exp(-(float(query @ weights) + bias))))


def embed_all(encode: Encoder, texts: list[str], known: Mapping[str, np.ndarray]) -> np.ndarray:
    """The embedding of every text, in order: the known ones looked up, the rest encoded in one batch."""
    missing = sorted({t for t in texts if t not in known})
    fresh = dict(zip(missing, encode(missing), strict=True)) if missing else {}
    return np.stack([known[t] if t in known else fresh[t] for t in texts]).astype(np.float32)


def no_tool_fits(ranked: Sequence[Ranked], min_similarity: float) -> bool:
    """Whether even the closest tool is further from the request than `min_similarity` (cosine): the
    request asks for something no tool does, or says too little to tell."""
    return not ranked or max(r.dense for r in ranked) < min_similarity


def server_first_order(order: list[int], servers: list[str], k: int, top_servers: int) -> list[int]:
    """The first `k` of `order`, making room for every tool of the `top_servers` best servers.

    The ranking itself is kept: the likely server's tools are added in their own ranked order, and the
    best of the rest fill the remaining places.
    """
    k = max(1, k)
    likely: list[str] = []
    for i in order:
        if servers[i] not in likely:
            likely.append(servers[i])
        if len(likely) == top_servers:
            break
    must = [i for i in order if servers[i] in likely][:k]
    rest = [i for i in order if i not in must][: k - len(must)]
    keep = set(must) | set(rest)
    return [i for i in order if i in keep]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)

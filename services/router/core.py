"""Choosing one tool and its arguments for a step. Pure logic: the model is passed in.

Order of work, each stage narrowing what the model is trusted with:
1. The filter's fused ranking decides when it is clear: if the best candidate leads the next by at
   least `CONFIDENT_MARGIN`, it is chosen without asking the model (fast, and never worse than retrieval).
2. Otherwise the model picks among the near-tied candidates only, under a grammar over their names, so
   it cannot invent a tool and cannot pick one retrieval ranked far below.
3. Arguments are filled in order of trust: the request's own words as the planner read them
   (`switchboard.reading`: paths, well-known folders, e-mail addresses, dates in the tool's format,
   quoted text, ids, stated numbers, file types, values named beside their parameter's name), then the
   values the planner carried over from earlier results (`StepInputs`), then paths named in the
   context; the model fills only the required ones still open, and only by copying: a run of the
   request's words, a number it states, an option it names (`copy_grammar`). The model never supplies
   a path or a date.
4. A required argument that is still missing turns the decision into "needs clarification" — the
   router never answers in prose.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.extract import (
    Identifier,
    PathMention,
    expand_name_range,
    extract_app_name,
    extract_cc_emails,
    extract_choices,
    extract_count,
    extract_duration,
    extract_file_pattern,
    extract_file_patterns,
    extract_identifiers,
    extract_name_pattern,
    extract_named,
    extract_number_after,
    extract_page_numbers,
    extract_paths,
    extract_quoted,
    extract_target_format,
    extract_tool_names,
    looks_like_placeholder,
    mentions_folder_creation,
    mentions_recursion,
    mentions_word,
)
from switchboard.llm import chat_prompt, gbnf_literal, gbnf_runs
from switchboard.metrics import FailureMode
from switchboard.reading import Reading, blank_spans

log = logging.getLogger(__name__)

# The lead over the runner-up at which retrieval decides alone (fused scores, 0..1).
CONFIDENT_MARGIN = 0.04
# How close to the best a candidate must be for the request's own words (its verb, an id) to pick it.
AGREEMENT_MARGIN = 0.12
# At most this many near-tied candidates are put to the model.
TIE_SET = 3
# Without fusion (an ablation), the model picks among this many of the best candidates.
SHORTLIST = 5
# Parameter names that always hold a path; `folder`, `directory`, `file` and `target` unless their
# description speaks of mail (an e-mail `folder` is a mailbox name, not a directory).
PATH_PARAMS = ("path", "source", "destination", "dest", "src", "file_path", "input_path", "output_path", "db_path")
MAYBE_PATH_PARAMS = ("folder", "directory", "dir", "file", "target")
# Where something is written or put; a path the words give after "to", "into", "as" ... goes here.
DESTINATION_PARAMS = (
    "destination",
    "dest",
    "target",
    "target_path",
    "output_path",
    "output",
    "output_file",
    "out_path",
    "save_path",
    "new_path",
    "to_path",
)
PATH_LIST_PARAMS = ("paths", "files", "file_paths")
EMAIL_PARAMS = ("to", "recipients", "recipient", "email", "attendees", "cc", "bcc")
DATE_PARAMS = ("date", "start", "end", "start_date", "end_date", "due_date", "start_time", "end_time", "when")
TEXT_PARAMS = ("title", "subject", "content", "text", "body", "name", "description", "query", "question")
# Parameters that take the body of what is written or read: quoted words first, then carried-over text.
CONTENT_PARAMS = ("content", "body", "text", "transcript", "message")
QUERY_PARAMS = ("query", "question")
# "How many" parameters, filled from "top 5", "at most 20", "show 3" ...
COUNT_PARAMS = ("limit", "count", "n", "num", "number", "k", "top_k", "top_n", "max_results", "max_items", "max_count")
# Integer parameters a number is written right after ("priority 2", "volume 40", "level 3").
LEVEL_PARAMS = ("priority", "volume", "level")
# String parameters that name a thing of this kind ("sheet March", "a table called customers").
NAMED_PARAMS = ("sheet", "table", "calendar", "folder", "mailbox")
APP_PARAMS = ("app", "app_name", "application", "program")
# A task's `source` enum (meeting, email, ...) names where it came from; those words turn up in what a
# task is about ("remind me to email Bob"), so they are no evidence for it.
ENUM_SKIPPED = ("source",)


@dataclass(frozen=True)
class StepInputs:
    """Values the planner carried over from earlier results for this step (`Step.inputs_json`).

    `paths`: paths from earlier results, most relevant first (what a search found, the item a per-item
    step is about); they fill source-like path parameters the words leave open. `text`: content made
    from earlier results, for a `content`/`body`/`text` parameter the words leave open. `base_dir`: the
    folder the request is about; bare file names in the words (`notes.md`) are taken to be in it.
    """

    paths: tuple[str, ...] = ()
    text: str = ""
    base_dir: str = ""
    # A retry's corrections: argument values the tool host asked for ("call again with create_dirs
    # true"); they fill parameters the words leave open.
    arguments: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> StepInputs:
        """The inputs in `raw`; keys that are missing or of the wrong type are ignored."""
        if not raw:
            return cls()
        paths = raw.get("paths")
        if isinstance(paths, str):
            paths = [paths]
        clean = tuple(p.strip() for p in paths if isinstance(p, str) and p.strip()) if isinstance(paths, list) else ()
        text = raw.get("text")
        base_dir = raw.get("base_dir")
        arguments = raw.get("arguments")
        return cls(
            paths=tuple(dict.fromkeys(clean)),
            text=text if isinstance(text, str) else "",
            base_dir=base_dir.strip() if isinstance(base_dir, str) else "",
            arguments=tuple(arguments.items()) if isinstance(arguments, dict) else (),
        )


class ChoiceModel(Protocol):
    """What the router needs from a language model."""

    def choose(self, prompt: str, options: list[str]) -> str: ...

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str: ...


@dataclass(frozen=True)
class CandidateTool:
    """A tool the filter proposed for this step."""

    name: str
    description: str
    score: float
    input_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteDecision:
    """The router's output: a tool with arguments, or why none can be called yet."""

    tool: str
    arguments: dict[str, Any]
    needs_clarification: bool
    reason: str
    confidence: float
    # Required parameters nothing gave a value: the step is shown with these as open fields.
    missing: tuple[str, ...] = ()
    # What the router caught the model doing on the way, and mended or dropped (one entry per time).
    caught: tuple[FailureMode, ...] = ()


def route(
    text: str,
    candidates: list[CandidateTool],
    model: ChoiceModel | None,
    schema_grammar: Any = None,
    context: str = "",
    fusion: bool = True,
    inputs: dict[str, Any] | None = None,
    model_choice: bool = True,
    reading: Reading | None = None,
    span_copy: bool = True,
) -> RouteDecision:
    """Decide the tool call for `text` among `candidates` (ranked best first).

    With `model` None the router is retrieval alone; with `fusion` off the model picks among the best
    `SHORTLIST` candidates whatever retrieval's margin (both for ablations); with `model_choice` off
    the model only fills arguments and retrieval with the request's words chooses the tool. `schema_grammar(schema)`
    turns a JSON schema into GBNF; without it the model fills no arguments. `inputs` are the values
    carried over from earlier results (see `StepInputs`); they only fill what the words leave open.
    `reading` is the step's parse (made from `text` now when not given); with `span_copy` off the model
    writes free-text values instead of copying them from the words (an ablation).
    """
    if not candidates:
        return RouteDecision("", {}, True, "no tool matches this request; say what you want done", 0.0)
    if reading is None or reading.text != text:
        reading = Reading.of(text)
    # The tool comes from the step's own words; the context (earlier results, the session) only helps
    # fill arguments. Shown to the model while it chooses, it pulls a follow-up back to the tools of
    # the turn before ("session drift").
    chosen, how = choose_tool(reading, candidates, model if model_choice else None, fusion)
    caught: list[FailureMode] = []
    arguments, missing = fill_arguments(
        text, chosen, model, schema_grammar, context, inputs, reading, span_copy, caught=caught
    )
    confidence = round(float(chosen.score), 4)
    if missing:
        what = ", ".join(missing)
        return RouteDecision(
            chosen.name,
            arguments,
            True,
            f"{chosen.name} needs {what}; the request does not say it",
            confidence,
            tuple(missing),
            tuple(caught),
        )
    return RouteDecision(chosen.name, arguments, False, how, confidence, caught=tuple(caught))


def tie_set(candidates: list[CandidateTool]) -> list[CandidateTool]:
    """The candidates within `CONFIDENT_MARGIN` of the best one (the best first), at most `TIE_SET`."""
    top = candidates[0].score
    return [c for c in candidates[:TIE_SET] if top - c.score < CONFIDENT_MARGIN]


def choose_tool(
    reading: Reading, candidates: list[CandidateTool], model: ChoiceModel | None, fusion: bool = True
) -> tuple[CandidateTool, str]:
    """The tool to call, and how it was decided."""
    text = reading.text
    if fusion:
        pointed = named_by_the_words(reading, candidates)
        if pointed is not None:
            return pointed
    close = tie_set(candidates) if fusion else candidates[:SHORTLIST]
    if len(close) == 1 or model is None:
        return candidates[0], "retrieval"
    picked = model.choose(selection_prompt(text, close), [c.name for c in close])
    chosen = next((c for c in close if c.name == picked), close[0])
    return chosen, f"model, among {len(close)} near-tied candidates"


def named_by_the_words(reading: Reading | str, candidates: list[CandidateTool]) -> tuple[CandidateTool, str] | None:
    """A close runner-up the request names more directly than retrieval's best, and why; else None.

    Tool names are verb_object, and people say the verb first ("Draft an email …", "Delete …"), so a
    request whose leading verb is the first word of a close candidate's name, but not of the best
    one's, means that candidate; a request that names an existing thing by its id ("task 8", "draft
    d-311") means a tool that takes that id. Only candidates within `AGREEMENT_MARGIN` of the best are
    considered, so the words can settle what retrieval is unsure of, not overrule what it is sure of.
    The verb and the ids are the step's reading's (read from the words here when given words).
    """
    if isinstance(reading, str):
        reading = Reading.of(reading)
    top = candidates[0]
    window = [c for c in candidates[:TIE_SET] if top.score - c.score < AGREEMENT_MARGIN]
    verb = normalise_verb(reading.verb)
    sharing = sum(1 for c in candidates if tool_verb(c.name) == verb)
    if verb in LOOSE_VERBS or sharing >= CROWDED_VERB:
        verb = ""  # a verb many tools start with ("create" a task, an event, a PDF …) names none of them
    if verb and tool_verb(top.name) == verb:
        if not any(tool_verb(c.name) == verb for c in tie_set(candidates)[1:]):
            return top, f"retrieval, and the request's verb “{verb}” names it"
    elif verb:
        match = next((c for c in window[1:] if tool_verb(c.name) == verb), None)
        if match is not None:
            return match, f"the request's verb “{verb}” names it"
    ids = [i.kind for i in reading.identifiers if i.kind]
    if ids and not takes_id(top, ids):
        match = next((c for c in window[1:] if takes_id(c, ids)), None)
        if match is not None:
            return match, "the request names an existing item by id, which it takes"
    return None


# Verbs people use for many kinds of work ("read the text on a photo" is OCR, not read_file): they name
# no tool on their own.
LOOSE_VERBS = frozenset({"read", "get", "show", "give", "make", "open", "check", "find", "list", "tell", "look", "do"})
# A verb that this many of the candidates' names start with is as loose as the ones above.
CROWDED_VERB = 4


def normalise_verb(word: str) -> str:
    """A verb as tool names spell it ("Summarise" → "summarize")."""
    word = word.lower()
    return word[:-3] + "ize" if word.endswith("ise") and len(word) > 5 else word


def tool_verb(name: str) -> str:
    """The verb a tool's name starts with (`email.draft_email` → "draft")."""
    return normalise_verb(name.split(".", 1)[-1].split("_", 1)[0])


def takes_id(tool: CandidateTool, kinds: list[str]) -> bool:
    """Whether `tool` takes an id of one of these kinds ("task" → `task_id`, "d" → `draft_id`)."""
    names = tool.input_schema.get("properties", {})
    prefixes = [name[: -len("_id")] for name in names if name.endswith("_id")]
    return any(p.startswith(k) or k.startswith(p) for p in prefixes for k in kinds)


def selection_prompt(text: str, shortlist: list[CandidateTool]) -> str:
    """The prompt for picking a tool: the request and one line per candidate."""
    lines = "\n".join(f"- {c.name}: {first_sentence(c.description)}" for c in shortlist)
    system = "You pick the single tool that carries out the user's request. Reply with the tool name only."
    return chat_prompt(system, f"Tools:\n{lines}\n\nRequest: {text}")


def fill_arguments(
    text: str,
    tool: CandidateTool,
    model: ChoiceModel | None,
    schema_grammar: Any,
    context: str = "",
    inputs: dict[str, Any] | None = None,
    reading: Reading | None = None,
    span_copy: bool = True,
    *,
    caught: list[FailureMode] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Arguments for `tool`, and the required parameters still without a trustworthy value.

    Values are taken in order of trust: the request's words (as `reading` parsed them), then `inputs`
    (carried over from earlier results), then paths named in `context`, and the model last, for required
    parameters only and never for a path or a date. The model copies a free-text value as a span of the
    words and a number as one the words state, under a grammar that admits nothing else (`span_copy`
    off lets it write under the schema's grammar instead: an ablation). A value taken from the words
    or the inputs goes to one parameter only.

    What the model gave and was dropped is added to `caught`: a value copied from an example
    (a placeholder: an invented argument), or output that is no JSON object (a malformed call).
    """
    caught = caught if caught is not None else []
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required: list[str] = list(tool.input_schema.get("required", []))
    carried = StepInputs.from_mapping(inputs)
    if reading is None or reading.text != text:
        reading = Reading.of(text)

    arguments: dict[str, Any] = fill_paths(reading, properties, context, carried)
    fill_addresses(reading, properties, arguments)
    fill_identifiers(reading, properties, required, context, arguments)
    fill_dates(reading, properties, arguments)
    fill_patterns(text, properties, arguments)
    fill_numbers(text, properties, arguments)
    fill_flags(text, properties, arguments)
    fill_choices(text, properties, arguments)
    fill_names(reading, properties, arguments)
    fill_text(reading, properties, required, context, carried, arguments)
    for name, value in carried.arguments:
        if name in properties and name not in arguments:
            arguments[name] = value

    # Paths and dates are never the model's to give: a small model copies example paths and makes up
    # days. A date the words do not give stays open.
    not_for_model = {name for name, schema in properties.items() if is_path_param(name, schema)}
    not_for_model |= {name for name, schema in properties.items() if is_path_list_param(name, schema)}
    not_for_model |= {name for name, schema in properties.items() if date_format(name, schema)}
    unfilled = [name for name in required if name not in arguments and name not in not_for_model]
    if unfilled and model is not None and schema_grammar is not None:
        if span_copy:
            generated = copy_arguments(reading, tool, unfilled, properties, model, caught=caught)
        else:
            generated = generate_arguments(text, tool, unfilled, properties, model, schema_grammar, caught=caught)
        for name in unfilled:
            if name not in generated:
                continue
            if looks_like_placeholder(generated[name]):
                caught.append(FailureMode.INVENTED_ARGUMENT)
                continue
            if name not in DATE_PARAMS and repeats_a_value(generated[name], arguments):
                continue  # e.g. a subject copied into the body: two parameters never share a value
            arguments[name] = generated[name]

    missing = [name for name in required if name not in arguments]
    return arguments, missing


def fill_paths(
    reading: Reading | str, properties: dict[str, Any], context: str = "", inputs: StepInputs | None = None
) -> dict[str, Any]:
    """Values for the path parameters (single paths and lists of paths), from the words, `inputs` and `context`.

    Paths written in the request come first, in order: one written after "to", "into", "over", "as" or
    "onto" goes to a destination-like parameter if the tool has one, the others fill the source-like
    parameters first and then any destination still open. Then `inputs.paths`, then paths in `context`,
    fill the source-like parameters still open. Nothing from the inputs or the context ever fills a
    destination: writing over the file a step is about must be asked for in words.

    A bare file name (`notes.md`) is taken to be in `inputs.base_dir`; without one, in a folder the
    words name for it that no parameter takes ("a.pdf and b.pdf in ~/Books"), or, for a destination,
    next to the source ("rename ~/Documents/a.docx to b.docx"); else it is kept as written.
    No path goes to two parameters. A well-known folder named in words ("my Downloads folder") is a
    path like any other (`~/Downloads`).
    """
    if isinstance(reading, str):
        reading = Reading.of(reading)
    text = reading.text
    inputs = inputs or StepInputs()
    scalar = [name for name, schema in properties.items() if is_path_param(name, schema)]
    lists = [name for name, schema in properties.items() if is_path_list_param(name, schema)]
    if not scalar and not lists:
        return {}
    # A tool that writes the content it is given (write_file) writes it to its path.
    destinations = [name for name in scalar if is_destination_param(name)] or (
        scalar if "content" in properties else []
    )
    sources = [name for name in scalar if name not in destinations]

    mentions = placed_in_named_folder(reading.paths) if not inputs.base_dir else reading.paths
    # Without a destination parameter "to" only joins things ("compare it to ~/b.pdf"): no mark then.
    marked = [m for m in mentions if m.to_destination and destinations]
    unmarked = [m for m in mentions if m not in marked]

    def resolved(mention: PathMention) -> str:
        return place_in(inputs.base_dir, mention.value) if mention.bare else mention.value

    # A path the words name is placed by the words, never a second time as a carried-over value.
    written = {path_key(resolved(m)) for m in mentions}
    chosen: dict[str, Any] = {}
    bare: set[str] = set()  # parameters holding a bare name still to be put in a folder (no base_dir)
    used: set[str] = set()

    def give(name: str, pool: Iterable[PathMention | str]) -> None:
        if name in chosen:
            return
        for item in pool:
            value = resolved(item) if isinstance(item, PathMention) else item
            if path_key(value) in used:
                continue
            chosen[name] = value
            used.add(path_key(value))
            if isinstance(item, PathMention) and item.bare and not inputs.base_dir:
                bare.add(name)
            return

    for name in destinations:
        give(name, marked)
    for name in sources:
        give(name, unmarked)
    for name in destinations:
        give(name, unmarked)
    for pool in (inputs.paths, extract_paths(context)):
        for name in sources:
            give(name, [p for p in pool if path_key(p) not in written])

    listed: dict[str, list[str]] = {}
    for name in lists:
        words = listed_files(text, [m for m in unmarked if path_key(resolved(m)) not in used])
        files = [(place_in(inputs.base_dir, v) if is_bare else v, is_bare) for v, is_bare in words]
        if not files:
            files = [(p, False) for p in inputs.paths if path_key(p) not in used]
        if files:
            listed[name] = [value for value, _ in files]
            used.update(path_key(value) for value, _ in files)
            if any(is_bare for _, is_bare in files) and not inputs.base_dir:
                bare.add(name)

    if bare and not inputs.base_dir:
        folder = leftover_folder(text, mentions, used)  # bare names are only left when there is no base_dir
        placed = [chosen[n] for n in sources if n in chosen] + [p for n in listed for p in listed[n]]
        source_folder = next((posixpath.dirname(p) for p in placed if p.startswith(("/", "~"))), "")
        for name in bare:
            if name in listed:
                listed[name] = [place_in(folder, value) for value in listed[name]]
            elif folder or (name in destinations and source_folder):
                chosen[name] = place_in(folder or source_folder, chosen[name])

    arguments: dict[str, Any] = {}
    seen: set[str] = set()
    for name in properties:  # placing bare names can make two values equal: the later one is dropped
        value = chosen.get(name, listed.get(name))
        keys = [path_key(v) for v in value] if isinstance(value, list) else [path_key(value)] if value else []
        if keys and not seen.intersection(keys):
            arguments[name] = value
            seen.update(keys)
    return arguments


def placed_in_named_folder(mentions: list[PathMention]) -> list[PathMention]:
    """`mentions` with bare file names put in the one well-known folder the words name as where they are
    ("the html file on my Desktop called summary.html" → `~/Desktop/summary.html`); that folder is then
    no mention of its own. A folder named as where something goes ("to my Desktop") is left alone."""
    folders = [m for m in mentions if m.value.startswith("~") and not m.bare and not has_extension(m.value)]
    bare = [m for m in mentions if m.bare]
    if len(folders) != 1 or folders[0].to_destination or not bare or any(m.to_destination for m in bare):
        return mentions
    folder = folders[0]
    if not any(m.value.startswith(("/", "~")) and m is not folder for m in mentions):
        return [
            PathMention(place_in(folder.value, m.value), m.start, m.end, False, m.to_destination) if m.bare else m
            for m in mentions
            if m is not folder
        ]
    return mentions


def path_key(path: str) -> str:
    """`path` as compared for sameness: a trailing slash makes no other path."""
    return path.rstrip("/") or path


def place_in(folder: str, name: str) -> str:
    """`name` inside `folder`, when it is a bare file name; a path is kept as it is."""
    if not folder or name.startswith(("/", "~")):
        return name
    return posixpath.join(folder, name)


_RANGE_WORD = re.compile(r"^\s*(?:through|thru|till|until|[-–])\s*$", re.IGNORECASE)
_IN_FOLDER = re.compile(r"\b(?:in|inside|from|under|within)\s+(?:the\s+folder\s+|folder\s+)?$", re.IGNORECASE)


def listed_files(text: str, mentions: list[PathMention]) -> list[tuple[str, bool]]:
    """The files the words list (each with whether it is a bare name), ranges spelled out.

    "chapter-01.pdf through chapter-04.pdf" lists four files. Folders are not listed: a parameter taking
    several paths takes files.
    """
    files: list[tuple[str, bool]] = []
    for index, mention in enumerate(mentions):
        if not has_extension(mention.value):
            continue
        if files and index > 0:
            previous = mentions[index - 1]
            between = text[previous.end : mention.start]
            spanned = expand_name_range(previous.value, mention.value) if _RANGE_WORD.match(between) else []
            if spanned and files[-1][0] == previous.value:
                files.extend((value, mention.bare) for value in spanned[1:])
                continue
        files.append((mention.value, mention.bare))
    return files


def leftover_folder(text: str, mentions: list[PathMention], used: set[str]) -> str:
    """A folder the words put the named files in ("… in /home/user/Books/draft") that no parameter took."""
    for mention in mentions:
        if mention.bare or path_key(mention.value) in used or has_extension(mention.value):
            continue
        if _IN_FOLDER.search(text[max(0, mention.start - 30) : mention.start].rstrip("\"'“‘")):
            return mention.value
    return ""


def has_extension(path: str) -> bool:
    """True when the last part of `path` has a file extension (`a.pdf`, not `~/Books` or `.env`)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." in name.strip(".")


def fill_addresses(reading: Reading, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """E-mail addresses: those the words put in copy go to `cc`, the others to the recipients.

    `bcc` is left alone: the words rarely say it, and a blind copy sent to the wrong person is not undone.
    """
    emails = reading.emails
    if not emails:
        return
    has_copy = "cc" in properties
    copied = extract_cc_emails(reading.text) if has_copy else []
    direct = [e for e in emails if e not in copied]
    for name, schema in properties.items():
        if name in arguments or name not in EMAIL_PARAMS or name == "bcc":
            continue
        pool = copied if name == "cc" else direct
        if pool:
            arguments[name] = list(pool) if "array" in schema_types(schema) else pool[0]


def fill_identifiers(
    reading: Reading, properties: dict[str, Any], required: list[str], context: str, arguments: dict[str, Any]
) -> None:
    """Parameters named `id` or `*_id` from ids in the words, else (required ones) from the context.

    An id whose prefix or word matches the parameter (`d-311` or "draft 17" for `draft_id`) is preferred;
    an id that matches another id parameter of the tool better is left for that one.
    """
    names = [n for n in properties if (n == "id" or n.endswith("_id")) and n not in arguments]
    if not names:
        return
    spoken = reading.identifiers
    remembered = [] if spoken else extract_identifiers(context)
    used: set[str] = set()
    for name in names:
        pool = spoken or (remembered if name in required else [])
        free = [i for i in pool if i.value not in used]
        fitting = [i for i in free if identifier_fits(name, i)]
        others = [i for i in free if i not in fitting and not any(identifier_fits(n, i) for n in names if n != name)]
        numeric = bool(schema_types(properties[name]) & {"integer", "number"})
        for ident in fitting + others:
            value: Any = ident.number if numeric else ident.value
            if value is not None:
                arguments[name] = value
                used.add(ident.value)
                break


def identifier_fits(name: str, ident: Identifier) -> bool:
    """True when the id's prefix or word names what the parameter holds (`sess-441` → `session_id`)."""
    stem = name.removesuffix("_id") if name.endswith("_id") else ""
    return bool(stem and ident.kind) and (stem.startswith(ident.kind) or ident.kind.startswith(stem))


# Pairs of parameters that bound a stretch of time: the first day or moment named fills the first, the
# end of a range ("2pm to 3pm", "this week") or a second date the second.
DATE_SUFFIXES = ("_date", "_time", "_at", "_day")
DATE_PAIRS = (("start", "end"), ("start_time", "end_time"), ("start_date", "end_date"), ("since", "until"))


def date_format(name: str, schema: dict[str, Any]) -> str:
    """How a parameter takes a date: "day" (`2026-12-03`), "moment" (`2026-12-03T14:00:00`), or "" for
    one that takes none. Read from the schema's `format`, else from the name and the description."""
    types = schema_types(schema)
    if types and "string" not in types:
        return ""
    formats = {str(b.get("format", "")) for b in schema_branches(schema)}
    if "date" in formats:
        return "day"
    if "date-time" in formats:
        return "moment"
    description = " ".join(str(b.get("description", "")) for b in schema_branches(schema)).lower()
    named = name in DATE_PARAMS or name in ("due", "deadline", "since", "until")
    # A name like `preferred_time` may hold "morning": only a described date format makes it a date.
    if not named and not (name.endswith(DATE_SUFFIXES) and ("iso" in description or "date" in description)):
        return ""
    if "time" in name or name in ("start", "end", "when", "since", "until") or name.endswith("_at"):
        return "moment"
    return "day"


def fill_dates(reading: Reading, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Days and moments the words name, read relative to when the person asked, in each parameter's format.

    A moment without a time said stays a day: no time of day is made up, and neither is any date.
    """
    formats = {name: date_format(name, schema) for name, schema in properties.items() if name not in arguments}
    formats = {name: kind for name, kind in formats.items() if kind}
    dates = list(reading.dates)
    if not formats or not dates:
        return

    def written(when: Any, kind: str, end: bool = False) -> str | None:
        if end:
            return when.end_moment() if kind == "moment" else when.end_day()
        return when.as_moment() if kind == "moment" else when.as_day()

    for first, second in DATE_PAIRS:
        if first not in formats or second not in formats or not dates:
            continue
        opening = dates.pop(0)
        arguments[first] = written(opening, formats[first])
        closing = written(opening, formats[second], end=True)
        if closing is None and dates:
            closing = written(dates.pop(0), formats[second])
        if closing is None and formats[second] == "day":
            closing = opening.as_day()  # "on 2026-03-12": a range of one day, which its end includes
        if closing is not None:
            arguments[second] = closing
        del formats[first], formats[second]
    for name, kind in formats.items():
        if dates:
            arguments[name] = written(dates.pop(0), kind)


def fill_patterns(text: str, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Name globs ("named X", "with X in its name") and file-type globs ("all PDFs") for glob parameters."""
    for name, schema in properties.items():
        if name in arguments or is_path_param(name, schema):
            continue
        types = schema_types(schema)
        description = str(schema.get("description", "")).lower()
        globbing = name in ("pattern", "glob", "patterns", "globs") or "glob" in description
        if globbing and "array" in types:
            found = extract_file_patterns(text) or [p for p in [extract_name_pattern(text)] if p]
            if found:
                arguments[name] = found
        elif globbing and (not types or "string" in types):
            value = extract_name_pattern(text) or extract_file_pattern(text)
            if value:
                arguments[name] = value
        elif name in ("file_types", "extensions") and "array" in types:
            kinds = [glob.removeprefix("*.") for glob in extract_file_patterns(text)]
            if kinds:
                arguments[name] = kinds


def fill_numbers(text: str, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Whole numbers the words state next to a word that fits the parameter, within its bounds."""
    for name, schema in properties.items():
        if name in arguments:
            continue
        types = schema_types(schema)
        value: Any = None
        if name == "pages" and "array" in types and takes_numbers(schema):
            value = extract_page_numbers(text) or None
        elif types & {"integer", "number"}:
            value = stated_number(name, text)
        if value is not None and within_bounds(schema, value):
            arguments[name] = value


def stated_number(name: str, text: str) -> int | None:
    """The number the words give for an integer parameter called `name`, if its name says what to look for."""
    for unit in ("minutes", "hours", "days", "seconds"):
        if name == unit or name.endswith("_" + unit):
            return extract_duration(text, unit)
    if name in COUNT_PARAMS or name.endswith(("_limit", "_count")):
        return extract_count(text)
    if name == "page":
        pages = extract_page_numbers(text)
        return pages[0] if len(pages) == 1 else None
    for word in LEVEL_PARAMS:
        if name == word or name.endswith("_" + word):
            return extract_number_after(text, word)
    return None


def takes_numbers(schema: dict[str, Any]) -> bool:
    """True for an array parameter whose items are numbers (or not typed at all)."""
    for branch in schema_branches(schema):
        items = branch.get("items")
        if branch.get("type") == "array":
            return not isinstance(items, dict) or items.get("type") in (None, "integer", "number")
    return False


def within_bounds(schema: dict[str, Any], value: Any) -> bool:
    """True when `value` (a number or a list of numbers) respects the schema's minimum and maximum."""
    numbers = value if isinstance(value, list) else [value]
    for branch in schema_branches(schema):
        bounds = branch.get("items", {}) if isinstance(value, list) else branch
        if not isinstance(bounds, dict):
            continue
        low, high = bounds.get("minimum"), bounds.get("maximum")
        if any((low is not None and n < low) or (high is not None and n > high) for n in numbers):
            return False
    return True


def fill_flags(text: str, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Boolean options the words ask for are set true ("subfolders included" → `recursive`); never false."""
    for name, schema in properties.items():
        if name in arguments or "boolean" not in schema_types(schema):
            continue
        if "recursive" in name:
            asked = mentions_recursion(text)
        elif "create" in name and any(word in name for word in ("dir", "folder", "parent")):
            asked = mentions_folder_creation(text)
        else:
            # A one-word option named in the words, un-negated: "as a signed PDF" → `sign`.
            asked = "_" not in name and mentions_word(text, name)
        if asked:
            arguments[name] = True


def fill_choices(text: str, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Enum parameters whose options the words name: one option for a single choice, all for a list."""
    for name, schema in properties.items():
        if name in arguments or name in ENUM_SKIPPED:
            continue
        options, several = enum_options(schema)
        if not options:
            continue
        named = extract_choices(text, options)
        if several and named:
            arguments[name] = named
        elif len(named) == 1:
            arguments[name] = named[0]


def fill_names(reading: Reading, properties: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Names the words give: a sheet, table, calendar or folder; a program; a tool; a target format.
    Dates are blanked out of the words first: a date is no name ("my calendar 2030-01-07")."""
    text = blank_spans(reading.text, [(w.start, w.end) for w in reading.dates])
    opens_a_file = any(is_path_param(name, schema) for name, schema in properties.items())
    for name, schema in properties.items():
        types = schema_types(schema)
        if name in arguments or is_path_param(name, schema) or (types and "string" not in types):
            continue
        if enum_options(schema)[0]:
            continue
        value: str | None = None
        if name in NAMED_PARAMS:
            value = extract_named(text, name)
        elif name in APP_PARAMS:
            # With a file to open, "open" is followed by the file, not the program.
            value = extract_app_name(text, allow_open_verb=not opens_a_file)
        elif name in ("tool", "tool_name"):
            value = next(iter(extract_tool_names(text)), None)
        elif name.endswith("format"):
            value = extract_target_format(text)
        if not value and name not in TEXT_PARAMS and name not in CONTENT_PARAMS:
            value = named_value(text, name)
        if value:
            arguments[name] = value


def named_value(text: str, name: str) -> str | None:
    """The value the words give a parameter by naming it: "callback id inv-watch", "inv-watch as the
    callback id", "template: board", "the letterhead template" (for `callback_id`, `template`).

    The value must look like one: quoted, or a single word with a digit, a hyphen, an underscore or a
    capital; so "the template for it" gives nothing.
    """
    parts = [re.escape(part) for part in name.split("_") if part]
    if not parts:
        return None
    words = "(?i:" + r"\s+".join(parts) + ")"  # the name in any case; the value's case is evidence
    value = r"""(?:["“'‘]([^"”'’]{1,80})["”'’]|([\w.-]*[\d_A-Z-][\w.-]*))"""
    # Right before the name, as in "the letterhead template", a plain word names it too.
    plain = r"""(?:["“'‘]([^"”'’]{1,80})["”'’]|([\w.-]+))"""
    forms = (
        rf"\b{words}\s*(?:is|=|:|of|to)?\s*{value}",
        rf"{value}\s+(?i:as)\s+(?i:the\s+|a\s+|my\s+)?{words}\b",
        rf"\b(?i:the|my|a|an|our|your)\s+{plain}\s+{words}\b",
    )
    flat = " ".join(text.split())
    for form in forms:
        match = re.search(form, flat)
        if match is None:
            continue
        found = (match.group(1) or match.group(2) or "").strip().rstrip(_TRAILING_MARKS)
        if found and found.lower() not in _NOT_VALUES:
            return found
    return None


_TRAILING_MARKS = ".,;:!?)"
# Words that fill the value slot of a form above without being a value.
_NOT_VALUES = frozenset("the a an my it this that is as to new same usual other right whole old own current".split())


def fill_text(
    reading: Reading,
    properties: dict[str, Any],
    required: list[str],
    context: str,
    inputs: StepInputs,
    arguments: dict[str, Any],
) -> None:
    """Titles, subjects and bodies from quoted words or the phrase a cue introduces ("titled …", "about
    …", "saying …"); a body the words leave open from `inputs.text`.

    A required body that none of these gives falls back to the longest quotation in the context (the
    text of an earlier result: "put that on my clipboard"), and a required query to the request itself.
    """
    text = reading.text
    file_names = {m.value for m in reading.paths if m.bare}
    taken = {value for value in arguments.values() if isinstance(value, str)}
    quoted = [q for q in reading.quotes if q not in file_names and q not in taken]
    carried = inputs.text
    remembered = sorted((q for q in extract_quoted(context) if q not in taken), key=len, reverse=True)
    for name in properties:
        if name in arguments:
            continue
        cued = cued_phrase(reading, name) if not quoted else ""
        if (name in TEXT_PARAMS or name in CONTENT_PARAMS) and quoted:
            arguments[name] = quoted.pop(0)
        elif cued and cued not in taken:
            arguments[name] = cued
            taken.add(cued)
        elif name in CONTENT_PARAMS and carried.strip():
            arguments[name] = carried
            carried = ""
        elif name in CONTENT_PARAMS and name in required and remembered:
            arguments[name] = remembered.pop(0)
        elif name in QUERY_PARAMS and name in required:
            arguments[name] = text


# Words that introduce the value of a kind of parameter ("a task titled X", "an email about X",
# "a note saying X"): what follows them, up to where the phrase ends, is that value as the person wrote it.
TEXT_CUES: dict[str, str] = {
    "title": r"titled|entitled|called|named",
    "name": r"called|named",
    "subject": r"subject(?:\s+line)?(?:\s+of)?|titled|about|regarding|re",
    "body": r"saying|that\s+says|which\s+says|(?:with\s+)?the\s+(?:text|message|body)|telling\s+(?:them|him|her)",
    "content": r"saying|that\s+says|containing|(?:with\s+)?the\s+(?:text|content)",
    "description": r"description|notes?",
}
# Parameters a colon gives a value to ("Add a to-do: renew passport").
COLON_VALUES = ("title", "content", "text", "name")
# Where a cued phrase stops: punctuation that ends a clause, or a word that starts the next part
# (a time, a place, a recipient, a further instruction).
_PHRASE_END = re.compile(
    r"[.;!?()\[\]]|,\s|\s(?:and|then|on|at|by|due|before|after|until|from|with|to|for|in|into|tomorrow|today|next)\s",
    re.IGNORECASE,
)


def cued_phrase(reading: Reading, name: str) -> str:
    """The words a cue introduces for parameter `name`, or ''. Stops at a date, path or address too.

    Besides the cues of `TEXT_CUES`, a colon after the request's first words introduces the title or
    the content of what it makes ("Add a to-do: renew passport").
    """
    cues = TEXT_CUES.get(name)
    if cues is None and name not in COLON_VALUES:
        return ""
    text = reading.text
    match = re.search(rf"\b(?:{cues})\b\s*[:=-]?\s*", text, re.IGNORECASE) if cues else None
    if match is None and name in COLON_VALUES:
        match = re.search(r"^[^:\d]{3,60}:\s+(?=\S)", text)
    if match is None:
        return ""
    start = match.end()
    stops = [m.start for m in reading.paths] + [w.start for w in reading.dates]
    stops += [text.find(e) for e in reading.emails]
    if start in stops:
        return ""  # the cue introduces a date, a path or an address, not words of its own
    end = min([p for p in stops if p > start] + [len(text)])
    stop = _PHRASE_END.search(text, start, end)
    phrase = text[start : stop.start() if stop else end].strip(" ,:-\"'“”‘’")
    words = phrase.split()
    # A phrase of one article or pronoun names nothing ("about it", "called the").
    if not words or (len(words) == 1 and words[0].lower() in ("it", "this", "that", "them", "the", "a", "an")):
        return ""
    return phrase if len(words) <= 12 else ""


def repeats_a_value(value: Any, arguments: dict[str, Any]) -> bool:
    """True when `value` is a text some other parameter already holds."""
    return isinstance(value, str) and any(value == other for other in arguments.values() if isinstance(other, str))


def schema_branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and the alternatives of its `anyOf`/`oneOf` (optional parameters are `X | null`)."""
    branches = [schema]
    for key in ("anyOf", "oneOf"):
        branches += [b for b in schema.get(key, []) if isinstance(b, dict)]
    return branches


def schema_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a parameter accepts, `null` left out; empty when the schema does not say."""
    types: set[str] = set()
    for branch in schema_branches(schema):
        declared = branch.get("type")
        if isinstance(declared, str):
            types.add(declared)
        elif isinstance(declared, list):
            types.update(t for t in declared if isinstance(t, str))
    types.discard("null")
    return types


def enum_options(schema: dict[str, Any]) -> tuple[list[str], bool]:
    """A parameter's string options, and whether it takes several of them (an array of an enum)."""
    for branch in schema_branches(schema):
        if isinstance(branch.get("enum"), list):
            return [o for o in branch["enum"] if isinstance(o, str)], False
        items = branch.get("items")
        if branch.get("type") == "array" and isinstance(items, dict) and isinstance(items.get("enum"), list):
            return [o for o in items["enum"] if isinstance(o, str)], True
    return [], False


def copy_arguments(
    reading: Reading,
    tool: CandidateTool,
    names: list[str],
    properties: dict[str, Any],
    model: ChoiceModel,
    *,
    caught: list[FailureMode] | None = None,
) -> dict[str, Any]:
    """The model's values for `names`, each one copied from the request's words.

    The grammar (see `copy_grammar`) admits a free-text value only as a run of consecutive words of the
    request, a number only as one the request states, a choice only among its options; a parameter with
    none of these to offer is left out, and stays open. The model decides where a title starts and
    ends, never what it says. Output that is no JSON object (the grammar cut short by max_tokens) is
    dropped and added to `caught` as a malformed call.
    """
    taken = [(m.start, m.end) for m in reading.paths] + [(w.start, w.end) for w in reading.dates]
    taken += [(m.start(), m.end()) for e in reading.emails for m in re.finditer(re.escape(e), reading.text)]
    grammar, fields = copy_grammar(reading.text, names, properties, taken)
    if not fields:
        return {}
    lines = "\n".join(f"- {name}: {first_sentence(str(properties[name].get('description', '')))}" for name in fields)
    prompt = chat_prompt(
        "You copy the values of a tool call out of the user's request, word for word. Reply with JSON only.",
        f"Tool: {tool.name}: {first_sentence(tool.description)}\nFields:\n{lines}\nRequest: {reading.text}",
    )
    return json_object_or_caught(model.complete(prompt, grammar, max_tokens=48), caught)


# Punctuation that joins a word to the sentence, not part of a value copied from it.
_WORD_EDGES = ".,;:!?\"'“”‘’()[]"


def copy_grammar(
    text: str, names: list[str], properties: dict[str, Any], taken: list[tuple[int, int]] | None = None
) -> tuple[str, list[str]]:
    """GBNF for a JSON object whose values can only be copied from `text`, and the fields it holds.

    Free text: a span of the words (punctuation at their edges dropped) that does not run over `taken`
    (character ranges other parameters' values came from: paths, dates, addresses). Integers and
    numbers: a number written in the text, within the schema's bounds. Enums: an option the words name.
    Booleans: true or false. Other types (objects, lists), and enums the words name no option of, are
    never copied, so those parameters are left out.
    """
    runs: list[list[str]] = [[]]
    for match in re.finditer(r"\S+", text):
        if any(start < match.end() and match.start() < end for start, end in taken or []):
            runs.append([])  # a span may not cross a value that is someone else's
            continue
        word = match.group(0).strip(_WORD_EDGES)
        if word:
            runs[-1].append(word)
    runs = [run for run in runs if run]
    words = [w for run in runs for w in run]
    numbers = list(dict.fromkeys(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text)))
    values: dict[str, str] = {}
    for name in names:
        schema = properties[name]
        types = schema_types(schema)
        options, several = enum_options(schema)
        if options and not several:
            named = extract_choices(text, options)
            if named:
                values[name] = " | ".join(gbnf_literal(json.dumps(option)) for option in named)
        elif types & {"integer", "number"}:
            fitting = [n for n in numbers if ("." not in n or "number" in types) and within_bounds(schema, float(n))]
            if fitting:
                values[name] = " | ".join(gbnf_literal(n) for n in fitting)
        elif types == {"boolean"}:
            values[name] = '"true" | "false"'
        elif (not types or types == {"string"}) and words:
            values[name] = '"\\"" span "\\""'
    if not values:
        return "", []
    fields = list(values)
    members = ' ", " '.join(f"{gbnf_literal(json.dumps(name) + ': ')} value{i}" for i, name in enumerate(fields))
    rules = [f'root ::= "{{" {members} "}}"']
    rules += [f"value{i} ::= {values[name]}" for i, name in enumerate(fields)]
    grammar = "\n".join(rules) + "\n"
    if any("span" in values[name] for name in fields):
        grammar += gbnf_runs(runs)
    return grammar, fields


def generate_arguments(
    text: str,
    tool: CandidateTool,
    names: list[str],
    properties: dict[str, Any],
    model: ChoiceModel,
    schema_grammar: Any,
    *,
    caught: list[FailureMode] | None = None,
) -> dict[str, Any]:
    """The model's values for `names`, under a grammar that only admits JSON of the right shape
    (output that is none is added to `caught` as a malformed call)."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: properties[name] for name in names},
        "required": names,
    }
    for definitions in ("$defs", "definitions"):  # parameters may refer to shared definitions
        if definitions in tool.input_schema:
            schema[definitions] = tool.input_schema[definitions]
    prompt = chat_prompt(
        "You fill in the arguments of a tool call from the user's request. Reply with JSON only.",
        f"Tool: {tool.name}: {first_sentence(tool.description)}\nRequest: {text}",
    )
    try:
        grammar = schema_grammar(schema)
    except (AssertionError, ValueError, KeyError) as exc:  # llama.cpp's converter rejects some schemas
        log.warning("no argument grammar for %s: %s", tool.name, exc)
        return {}
    return json_object_or_caught(model.complete(prompt, grammar, max_tokens=96), caught)


def json_object_or_caught(raw: str, caught: list[FailureMode] | None) -> dict[str, Any]:
    """The JSON object a model wrote, or nothing when it wrote none (a grammar cut short by max_tokens
    leaves half an object): then a malformed call (FM-1) is added to `caught`, and nothing
    half-written is used."""
    try:
        generated = json.loads(raw)
    except json.JSONDecodeError:
        generated = None
    if isinstance(generated, dict):
        return generated
    if caught is not None:
        caught.append(FailureMode.MALFORMED_CALL)
    return {}


def is_path_param(name: str, schema: dict[str, Any]) -> bool:
    """True for a parameter that names one file or folder."""
    types = schema_types(schema)
    if types and "string" not in types:
        return False
    if name in PATH_PARAMS or name.endswith("_path") or name.startswith("path_"):
        return True
    if name in MAYBE_PATH_PARAMS:
        # A mail folder is a mailbox name ("inbox", "sent"), not a place on disk.
        return "mail" not in str(schema.get("description", "")).lower()
    return False


def is_path_list_param(name: str, schema: dict[str, Any]) -> bool:
    """True for a parameter that takes several files (`paths` of merge_pdfs)."""
    if "array" not in schema_types(schema):
        return False
    return name in PATH_LIST_PARAMS or name.endswith("_paths")


def is_destination_param(name: str) -> bool:
    """True for a path parameter that says where something goes (`destination`, `output_path` ...)."""
    return name in DESTINATION_PARAMS or name.startswith(("output_", "dest"))


def first_sentence(description: str) -> str:
    """The first sentence of a description: what a tool does, without the fine print."""
    head = description.strip().split("\n", 1)[0]
    return head.split(". ", 1)[0].rstrip(".")

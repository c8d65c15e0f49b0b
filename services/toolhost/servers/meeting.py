"""The `meeting` MCP server: transcribe recordings, find action items, commitments and decisions, write minutes.

Transcription runs on this computer: pocketsphinx with its bundled US English model (audio converted
to 16 kHz mono 16-bit WAV with `sox` when needed), or faster-whisper when `SWITCHBOARD_WHISPER_MODEL`
names a model folder. Extraction is deterministic: a sentence is reported only when it carries a cue
("will", "need to", "Action:", "decided" ...), and every item quotes its exact source sentence, so
nothing is invented. Run over stdio with `python -m services.toolhost.servers.meeting`; logs go to stderr.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    Trash,
    UndoAction,
    existing_file,
    serve,
    sha256_of,
    tool,
    write_atomically,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.meeting")

SERVER_NAME = "meeting"
SAMPLE_RATE = 16000
SOX_TIMEOUT_SECONDS = 300
MAX_TRANSCRIPT_BYTES = 5 * 1024 * 1024
ENGLISH = frozenset({"en", "en-us", "en_us", "english"})

Template = Literal["standard", "brief", "detailed"]


class MeetingSettings(BaseSettings):
    """`SWITCHBOARD_WHISPER_MODEL`: a faster-whisper (CTranslate2) model folder; empty means pocketsphinx."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    whisper_model: str = Field("", description="faster-whisper model folder; empty: use pocketsphinx.")


# results


class Segment(BaseModel):
    start: float = Field(description="Seconds from the start of the recording.")
    end: float
    text: str


class Transcript(BaseModel):
    path: str
    text: str = Field(description="Everything recognised, segments joined by spaces.")
    transcript: list[Segment]
    duration_seconds: float
    engine: str = Field(description="Which recogniser produced the text.")
    language: str
    note: str | None = None


class ActionItem(BaseModel):
    task: str = Field(description="What is to be done: the source sentence without any 'Action:' label.")
    assignee: str | None = Field(None, description="Who does it, when the transcript says so; null otherwise.")
    due: str | None = Field(None, description='The due phrase as said, e.g. "by Friday"; null if none.')
    sentence: str = Field(description="The exact sentence of the transcript the item comes from.")
    line: int = Field(description="1-based line of the transcript.")
    speaker: str | None = None
    cue: str = Field(description="The words that mark it as an action item.")


class ActionItems(BaseModel):
    items: list[ActionItem]
    sentences_read: int
    source: str = Field(description='The transcript file, or "text" when the transcript was given directly.')


class Commitment(BaseModel):
    who: str | None = Field(None, description="Who committed: the speaker for 'I', the named person, or 'we'.")
    due: str | None = None
    sentence: str = Field(description="The exact sentence of the transcript.")
    line: int
    speaker: str | None = None


class Decision(BaseModel):
    sentence: str = Field(description="The exact sentence of the transcript.")
    line: int
    speaker: str | None = None


class CommitmentsResult(BaseModel):
    commitments: list[Commitment]
    decisions: list[Decision]
    open_questions: list[str] = Field(description="Exact sentences that ask or leave something open.")
    sentences_read: int
    source: str


class MinutesResult(BaseModel):
    success: bool
    path: str
    format: Literal["markdown", "docx"]
    template: str
    attendees: list[str]
    attendees_from: Literal["list", "speakers", "none"] = Field(
        description='"list" when the transcript lists attendees, "speakers" when taken from speaker labels.'
    )
    decisions: int
    action_items: int
    commitments: int
    open_questions: int
    overwrote: bool
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


# transcription


_whisper_models: dict[str, Any] = {}
_whisper_lock = threading.Lock()


def _whisper(model_dir: str) -> Any:
    """The faster-whisper model in `model_dir`, loaded once per process."""
    with _whisper_lock:
        if model_dir not in _whisper_models:
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:
                raise ToolError(
                    f"SWITCHBOARD_WHISPER_MODEL is set ({model_dir}) but the faster-whisper package is not "
                    "installed. Install it (pip install faster-whisper) or unset SWITCHBOARD_WHISPER_MODEL to use "
                    "pocketsphinx."
                ) from exc
            if not Path(model_dir).is_dir():
                raise ToolError(
                    f"SWITCHBOARD_WHISPER_MODEL is {model_dir}, which is not a folder. Point it at a "
                    "faster-whisper (CTranslate2) model folder, or unset it to use pocketsphinx."
                )
            _whisper_models[model_dir] = WhisperModel(model_dir, device="cpu", compute_type="int8")
        return _whisper_models[model_dir]


def _is_pcm16k_mono(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
    except (wave.Error, EOFError):
        return False


def _as_pcm16k(source: Path, folder: Path) -> Path:
    """`source` itself if it is 16 kHz mono 16-bit WAV, else a copy converted to that with sox."""
    if _is_pcm16k_mono(source):
        return source
    sox = shutil.which("sox")
    if sox is None:
        raise ToolError(
            f"{source.name} must be converted to 16 kHz mono WAV first, and sox is not installed "
            "(apt-get install sox), or give a 16 kHz mono 16-bit WAV file."
        )
    target = folder / "audio-16k.wav"
    try:
        done = subprocess.run(
            [sox, str(source), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(target)],
            capture_output=True,
            text=True,
            timeout=SOX_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolError(
            f"Converting {source.name} took longer than {SOX_TIMEOUT_SECONDS} s; try a shorter file."
        ) from exc
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise ToolError(
            f"sox could not read {source.name}: {why}. Give a WAV, FLAC or OGG file (for MP3, sox needs "
            "libsox-fmt-mp3), or convert the file to WAV first."
        )
    return target


def _pocketsphinx(wav: Path) -> tuple[list[Segment], float]:
    """Speech segments found by voice activity detection, each decoded with the bundled en-us model."""
    from pocketsphinx import Decoder, Endpointer

    with wave.open(str(wav), "rb") as w:
        rate = w.getframerate()
        audio = w.readframes(w.getnframes())
    duration = len(audio) / 2 / rate
    endpointer = Endpointer(sample_rate=rate)
    decoder = Decoder(samprate=rate, loglevel="ERROR")
    segments: list[Segment] = []
    stream = io.BytesIO(audio)
    in_utterance = False

    def finish() -> None:
        decoder.end_utt()
        hypothesis = decoder.hyp()
        words = [w for w in (hypothesis.hypstr.split() if hypothesis else []) if not re.fullmatch(r"[<\[].*[>\]]", w)]
        if words:
            segments.append(
                Segment(
                    start=round(endpointer.speech_start, 2), end=round(endpointer.speech_end, 2), text=" ".join(words)
                )
            )

    while frame := stream.read(endpointer.frame_bytes):
        was_speech = endpointer.in_speech
        if len(frame) < endpointer.frame_bytes:
            speech = endpointer.end_stream(frame)
        else:
            speech = endpointer.process(frame)
        if speech is None:
            continue
        if not was_speech:
            decoder.start_utt()
            in_utterance = True
        decoder.process_raw(speech)
        if not endpointer.in_speech:
            finish()
            in_utterance = False
    if in_utterance:
        finish()
    return segments, duration


# transcripts: lines, speakers, sentences


ATTENDEE_LABELS = frozenset({"attendees", "participants", "present", "attendance", "attending"})
TITLE_LABELS = frozenset({"title", "meeting", "subject", "topic"})
DATE_LABELS = frozenset({"date", "when"})
ACTION_LABELS = frozenset(
    {"action", "action item", "action items", "actions", "todo", "to-do", "to do", "task", "follow-up", "follow up"}
)
DECISION_LABELS = frozenset({"decision", "decisions", "decided", "agreed", "resolution"})
OTHER_LABELS = frozenset({"agenda", "location", "notes", "note", "next steps", "time", "re", "minutes"})

LABELLED = re.compile(
    r"^(?:\[?\(?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\)?\]?\s*[-–]?\s*)?"
    r"(?P<label>[A-Za-z][\w.'-]*(?: [A-Za-z][\w.'-]*){0,3})\s*(?:\(\d{1,2}:\d{2}(?::\d{2})?\))?\s*:\s*(?P<rest>.*)$"
)
VTT_VOICE = re.compile(r"^<v\s+(?P<label>[^>]+)>(?P<rest>.*?)(?:</v>)?$")
CUE_TIMING = re.compile(r"^(?:WEBVTT.*|\d+|[\d:.,]+\s*-->\s*[\d:.,]+.*)$")
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[A-Z0-9\"'“‘(\[@])")
ABBREVIATION = re.compile(r"(?i)\b(?:mr|mrs|ms|dr|prof|st|vs|etc|e\.g|i\.e|no|approx)\.$")


@dataclass(frozen=True)
class Sentence:
    text: str  # exactly as in the transcript
    line: int
    speaker: str | None
    label: str | None  # "action" or "decision" when the line carried such a label


@dataclass
class ParsedTranscript:
    sentences: list[Sentence]
    attendees: list[str]
    speakers: list[str]
    title: str | None
    date: str | None


def _split_sentences(text: str) -> Iterator[str]:
    start = 0
    for boundary in SENTENCE_BOUNDARY.finditer(text):
        if ABBREVIATION.search(text[start : boundary.start()]):
            continue
        piece = text[start : boundary.start()].strip()
        if piece:
            yield piece
        start = boundary.end()
    if text[start:].strip():
        yield text[start:].strip()


def _names(listing: str) -> list[str]:
    return [n.strip(" .") for n in re.split(r",|;|\band\b|&", listing) if n.strip(" .")]


def parse_transcript(text: str) -> ParsedTranscript:
    """Sentences with their line and speaker, and what the header lines say (attendees, title, date)."""
    sentences: list[Sentence] = []
    attendees: list[str] = []
    speakers: list[str] = []
    title = date = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or CUE_TIMING.match(line):
            continue
        speaker = None
        label: str | None = None
        content = line
        labelled = VTT_VOICE.match(line) or LABELLED.match(line)
        if labelled:
            name, rest = labelled.group("label").strip(), labelled.group("rest").strip()
            key = name.lower()
            if key in ATTENDEE_LABELS:
                attendees.extend(n for n in _names(rest) if n not in attendees)
                continue
            if key in TITLE_LABELS and title is None:
                title = rest
                continue
            if key in DATE_LABELS and date is None:
                date = rest
                continue
            if key in ACTION_LABELS:
                label = "action"  # the label is part of the sentence: "Action: Bob to send the slides."
            elif key in DECISION_LABELS:
                label = "decision"
            elif key in OTHER_LABELS:
                content = rest
            elif rest and (labelled.re is VTT_VOICE or all(word[0].isupper() for word in name.split())):
                # "Alice:" or "Bob Smith:"; "The plan was simple: ..." is a sentence, not a speaker.
                speaker, content = name, rest
                if speaker not in speakers:
                    speakers.append(speaker)
        if label is not None:
            sentences.append(Sentence(line, number, None, label))
            continue
        sentences.extend(Sentence(s, number, speaker, None) for s in _split_sentences(content))
    return ParsedTranscript(sentences, attendees, speakers, title, date)


# cues


NOT_PEOPLE = frozenset(
    "It This That There These Those Which What Who Here Everything Nothing Something Anything Nobody Someone "
    "Everyone The A An And But So Then If When Maybe Also Yes No Ok Okay Well Now Today Tomorrow Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday Next Last First Please Let Thanks Hopefully Perhaps".split()
)
SUBJECT = r"(?P<who>I|[Ww]e|[Yy]ou|[Hh]e|[Ss]he|[Tt]hey|[A-Z][a-z]+(?:\s+(?:and|&)\s+[A-Z][a-z]+)?)"
PROMISE_WORDS = ("will", "shall", "is going to", "are going to", "am going to")
PROMISE = "|".join(PROMISE_WORDS)
OBLIGATION = r"needs to|need to|has to|have to|must|should"
ADVERB = r"(?:(?:also|then|still|just|quickly|first|definitely|probably|personally)\s+)?"
SOFT_VERBS = r"be\s+(?:fine|good|great|ok|okay|nice|better|worse|hard|easy|possible|interesting|there|able)\b"
MODAL_CUE = re.compile(
    rf"(?<![\w'’]){SUBJECT}(?:\s+(?P<modal>{PROMISE}|{OBLIGATION})\s+|(?P<contracted>['’]ll)\s+){ADVERB}"
    rf"(?!not\b|never\b|{SOFT_VERBS})(?P<verb>[a-z]+)\b"
)
COMMITMENT_PHRASE = re.compile(
    r"(?i)\b(?:I|we)\s+(?:promise|commit|guarantee|can take care|will take care|'ll take care|can handle|"
    r"can do that|am on it|will own|'ll own)\b|\b(?:I'm|I’m|we're|we’re) on it\b|\bleave it with me\b"
)
MARKER = re.compile(r"(?i)^\s*(?:action(?:\s+items?)?|actions|todo|to-do|to do|task|follow[- ]?up)\s*[:\-–]\s*")
REQUEST = re.compile(
    r"^(?:(?P<voc>[A-Z][a-z]+),\s+)?(?:(?:can|could|would|will)\s+you\s+(?:please\s+)?|please\s+)"
    r"(?!note\b|see\b|be aware\b)(?P<verb>[a-z]+)",
    re.IGNORECASE,
)
INLINE_PLEASE = re.compile(r"(?i)(?:^|,\s*|\band\s+)please\s+(?!note\b|see\b)(?P<verb>[a-z]+)")
BARE_NEED = re.compile(
    r"(?i)^(?:need to|needs to|remember to|don['’]t forget to|make sure (?:to|that|we)|be sure to)\b"
)
ASSIGNED = re.compile(r"(?:\bowner|\bassigned to|\bassignee)\s*[:\-]?\s*@?(?P<who>[A-Z][a-z]+)|@(?P<at>[A-Z][a-z]+)")
MARKED_WHO = re.compile(
    r"^@?(?P<who>[A-Z][a-z]+(?:\s+(?:and|&)\s+[A-Z][a-z]+)?)\s*(?:to|will|should|needs? to|must|:|-|–)\s+"
)

WEEKDAY = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
MONTH = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"  # noqa: E501
WORD_DATE = (
    rf"tomorrow|tonight|today|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|quarter|year|sprint)|eod|eow|cob"
    rf"|(?:next|this)\s+(?:week|month|quarter|{WEEKDAY})|{WEEKDAY}"
)
NUMBER_DATE = (
    rf"(?:{MONTH})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTH})"
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?|noon|\d{1,2}(?::\d{2})?\s*(?:am|pm)"
)
DUE = re.compile(
    rf"(?i)\b(?:(?:by|before|until|no later than|due(?:\s+(?:on|by))?|on)\s+(?:{WORD_DATE}|{NUMBER_DATE})"
    rf"|(?:{WORD_DATE}))\b"
)
DECIDED = re.compile(
    r"(?i)\b(?:decided|agreed|decision|settled on|approved|resolved to|concluded"
    r"|(?:we['’]ll|we will|let['’]s) go with)\b"
)
UNDECIDED = re.compile(
    r"(?i)(?:\bnot|n['’]t|\bnever|\byet to)\b[\w\s]{0,20}\b(?:decided?|agreed|decision)\b|\bundecided\b"
)
OPEN = re.compile(
    r"(?i)\b(?:open question|tbd|to be decided|to be determined|not sure|unclear|unresolved|"
    r"still need to decide|need to figure out|pending decision)\b"
)


def _due(sentence: str) -> str | None:
    found = DUE.search(sentence)
    return found.group(0) if found else None


def _person(who: str, speaker: str | None) -> str | None:
    """The person a subject names: the speaker for "I", the name itself, or None for pronouns."""
    if who == "I":
        return speaker
    if who.lower() in {"we", "you", "he", "she", "they"}:
        return None
    return who


def _modal_cues(text: str) -> Iterator[re.Match[str]]:
    for found in MODAL_CUE.finditer(text):
        if found.group("who") not in NOT_PEOPLE:
            yield found


def find_action_items(parsed: ParsedTranscript) -> list[ActionItem]:
    """Sentences that say something is to be done, each with its assignee and due phrase when stated."""
    items: list[ActionItem] = []
    for s in parsed.sentences:
        if s.label == "decision":
            continue
        marker = MARKER.match(s.text)
        task = s.text[marker.end() :] if marker else s.text
        assignee: str | None = None
        cue: str | None = None
        if marker or s.label == "action":
            cue = marker.group(0).strip(" :-–") if marker else "action label"
            named = MARKED_WHO.match(task)
            if named and named.group("who") not in NOT_PEOPLE:
                assignee = named.group("who")
        elif request := REQUEST.match(s.text):
            cue = request.group(0)
            assignee = request.group("voc")
        elif modal := next(_modal_cues(s.text), None):
            if s.text.rstrip().endswith("?"):
                continue  # "Will you be there?" asks, it does not assign
            cue = modal.group(0)
            assignee = _person(modal.group("who"), s.speaker)
        elif (please := INLINE_PLEASE.search(s.text)) or (please := BARE_NEED.match(s.text)):
            cue = please.group(0).strip(" ,")
        if cue is None:
            continue
        if assignee is None and (assigned := ASSIGNED.search(s.text)):
            assignee = assigned.group("who") or assigned.group("at")
        items.append(
            ActionItem(
                task=task.strip(),
                assignee=assignee,
                due=_due(s.text),
                sentence=s.text,
                line=s.line,
                speaker=s.speaker,
                cue=cue.strip(),
            )
        )
    return items


def find_commitments(parsed: ParsedTranscript) -> tuple[list[Commitment], list[Decision], list[str]]:
    """Promises made (someone will do something), decisions taken, and questions left open."""
    commitments: list[Commitment] = []
    decisions: list[Decision] = []
    open_questions: list[str] = []
    for s in parsed.sentences:
        question = s.text.rstrip().endswith("?")
        if UNDECIDED.search(s.text) or OPEN.search(s.text) or (question and not REQUEST.match(s.text)):
            open_questions.append(s.text)
            continue
        if s.label == "decision" or (DECIDED.search(s.text) and not question):
            decisions.append(Decision(sentence=s.text, line=s.line, speaker=s.speaker))
            continue
        if question:
            continue
        promise = next(
            (m for m in _modal_cues(s.text) if m.group("contracted") or m.group("modal") in PROMISE_WORDS), None
        )
        if promise is not None:
            who = promise.group("who")
            if who.lower() in {"you", "he", "she", "they"}:
                continue  # said about someone else: an action item, not a commitment of theirs
            person = _person(who, s.speaker) if who != "I" else (s.speaker or "I")
            committed = "we" if who.lower() == "we" else person
        elif COMMITMENT_PHRASE.search(s.text):
            committed = s.speaker or ("we" if re.search(r"(?i)\bwe\b", s.text) else "I")
        else:
            continue
        commitments.append(Commitment(who=committed, due=_due(s.text), sentence=s.text, line=s.line, speaker=s.speaker))
    return commitments, decisions, open_questions


# minutes


@dataclass
class Minutes:
    title: str
    date: str | None
    source: str
    attendees: list[str]
    attendees_from: Literal["list", "speakers", "none"]
    decisions: list[Decision]
    items: list[ActionItem]
    commitments: list[Commitment]
    open_questions: list[str]
    transcript: str


def _where(line: int, speaker: str | None) -> str:
    return f"{speaker}, line {line}" if speaker else f"line {line}"


def _item_line(item: ActionItem) -> str:
    details = [f"owner: {item.assignee}" if item.assignee else "owner: not stated"]
    if item.due:
        details.append(f"due: {item.due}")
    return f"{item.task} ({'; '.join(details)})"


def _sections(m: Minutes, template: str) -> list[tuple[str, list[str]]]:
    """The minutes as (heading, bullet lines) pairs, for either output format."""
    none = ["None recorded."]
    sections: list[tuple[str, list[str]]] = [
        (
            "Attendees" if m.attendees_from != "speakers" else "Attendees (speakers in the transcript)",
            m.attendees or none,
        ),
        ("Decisions", [f"{d.sentence} ({_where(d.line, d.speaker)})" for d in m.decisions] or none),
        ("Action items", [f"{_item_line(i)} [{_where(i.line, i.speaker)}]" for i in m.items] or none),
    ]
    if template != "brief":
        sections.append(
            (
                "Commitments",
                [f"{c.who or 'Someone'}: {c.sentence} ({_where(c.line, c.speaker)})" for c in m.commitments] or none,
            )
        )
        sections.append(("Open questions", m.open_questions or none))
    if template == "detailed":
        sections.append(("Transcript", [line for line in m.transcript.splitlines() if line.strip()]))
    return sections


def _preamble(m: Minutes) -> list[str]:
    lines = []
    if m.date:
        lines.append(f"Date: {m.date}")
    lines.append(f"Source: {m.source}")
    lines.append(f"Written by Switchboard from the transcript on {datetime.now().astimezone().date().isoformat()}.")
    return lines


def render_markdown(m: Minutes, template: str) -> str:
    """The minutes as a Markdown document."""
    out = [f"# {m.title}", ""]
    out.extend(f"{line}  " for line in _preamble(m))
    for heading, lines in _sections(m, template):
        out += ["", f"## {heading}", ""]
        bullet = "" if heading == "Transcript" else "- "
        out.extend(f"{bullet}{line}" if bullet else f"    {line}" for line in lines)
    return "\n".join(out) + "\n"


def render_docx(m: Minutes, template: str) -> bytes:
    """The minutes as the bytes of a Word document."""
    import docx

    document = docx.Document()
    document.add_heading(m.title, level=0)
    for line in _preamble(m):
        document.add_paragraph(line)
    for heading, lines in _sections(m, template):
        document.add_heading(heading, level=1)
        style = None if heading == "Transcript" else "List Bullet"
        for line in lines:
            document.add_paragraph(line, style=style)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def build_server(settings: ToolHostSettings, meeting: MeetingSettings | None = None) -> MCPServer:
    """The meeting server, confined to `settings.roots()`."""
    meeting = meeting or MeetingSettings()
    sandbox = settings.sandbox()
    trash = Trash(settings.trash_dir)
    resolve = sandbox.resolve
    server = MCPServer(
        SERVER_NAME,
        instructions="Meeting recordings and transcripts: transcribe, find action items and decisions, write minutes.",
    )

    def load(transcript: str) -> tuple[str, Path | None]:
        return _load_transcript(transcript, resolve)

    @tool(server, Effects.reads())
    def transcribe_audio(
        path: Annotated[str, Field(description="The recording: WAV, or FLAC/OGG and others sox can read.")],
        language: Annotated[
            str, Field(description='Language spoken, e.g. "en". Only English works without a Whisper model.')
        ] = "en",
        diarize: Annotated[
            bool, Field(description="Label who speaks when. Not available on this computer; leave false.")
        ] = False,
    ) -> Transcript:
        """Turn speech in an audio recording into text, with the time of each spoken segment, on this computer.

        Then use meeting.extract_action_items, meeting.extract_commitments or meeting.generate_minutes
        on the returned text. Recognition of English uses pocketsphinx (imperfect on unclear audio),
        or Whisper when one is configured.
        """
        audio = existing_file(resolve(path), path)
        if diarize:
            raise ToolError(
                "Telling speakers apart (diarize) is not available: it needs a diarization model such as "
                "pyannote.audio, which is not installed here. Call again with diarize false.",
                correction=Correction("diarize is not available here", parameter="diarize", suggested_value=False),
            )
        wanted = language.strip().lower() or "en"
        if meeting.whisper_model:
            model = _whisper(meeting.whisper_model)
            parts, info = model.transcribe(str(audio), language=wanted.split("-")[0].split("_")[0])
            segments = [Segment(start=round(p.start, 2), end=round(p.end, 2), text=p.text.strip()) for p in parts]
            return _transcript(
                audio, segments, float(info.duration), f"faster-whisper ({meeting.whisper_model})", wanted
            )
        if wanted not in ENGLISH:
            raise ToolError(
                f"Only English can be transcribed here (pocketsphinx has the US English model only), not {language!r}. "
                "For other languages set SWITCHBOARD_WHISPER_MODEL to a faster-whisper model folder.",
                correction=Correction(f"language {language!r} cannot be transcribed here", parameter="language"),
            )
        with tempfile.TemporaryDirectory(prefix="switchboard-audio-") as temp:
            segments, duration = _pocketsphinx(_as_pcm16k(audio, Path(temp)))
        return _transcript(audio, segments, duration, "pocketsphinx (en-us)", "en")

    @tool(server, Effects.reads())
    def extract_action_items(
        transcript: Annotated[
            str, Field(description="The meeting transcript text, or the path of a transcript file (.txt, .md, .vtt).")
        ],
    ) -> ActionItems:
        """List the tasks agreed in a meeting transcript: who will do what, by when, each with its exact sentence.

        Finds "Action:"/"TODO" lines, "X will ...", "I'll ...", "we need to ...", "please ..." and
        due phrases such as "by Friday". For promises, decisions and open questions use
        meeting.extract_commitments; for a whole minutes document use meeting.generate_minutes.
        """
        text, source = load(transcript)
        parsed = parse_transcript(text)
        return ActionItems(
            items=find_action_items(parsed),
            sentences_read=len(parsed.sentences),
            source=str(source) if source else "text",
        )

    @tool(server, Effects.reads())
    def extract_commitments(
        transcript: Annotated[
            str, Field(description="The meeting transcript text, or the path of a transcript file (.txt, .md, .vtt).")
        ],
    ) -> CommitmentsResult:
        """List the promises made ("I will ...", "Ana will ..."), the decisions taken ("we agreed ...") and
        the questions left open in a meeting transcript, each as its exact sentence.

        For the list of tasks with owners and due dates use meeting.extract_action_items.
        """
        text, source = load(transcript)
        parsed = parse_transcript(text)
        commitments, decisions, open_questions = find_commitments(parsed)
        return CommitmentsResult(
            commitments=commitments,
            decisions=decisions,
            open_questions=open_questions,
            sentences_read=len(parsed.sentences),
            source=str(source) if source else "text",
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Write meeting minutes[ to {output_path}]",
            overwrites=("output_path",),
        ),
    )
    def generate_minutes(
        transcript: Annotated[
            str, Field(description="The meeting transcript text, or the path of a transcript file (.txt, .md, .vtt).")
        ],
        output_path: Annotated[
            str, Field(description="Where to write the minutes: a .md (Markdown) or .docx (Word) file.")
        ],
        template: Annotated[
            Template | None,
            Field(
                description='"standard" (attendees, decisions, action items, commitments, open questions), '
                '"brief" (attendees, decisions, action items) or "detailed" (standard plus the transcript).'
            ),
        ] = None,
    ) -> MinutesResult:
        """Write meeting minutes to a Markdown or Word file: attendees, decisions, action items, commitments
        and open questions, all taken from the transcript's own sentences.

        An existing file at output_path is kept in the trash first. To only list the items without
        writing a file, use meeting.extract_action_items or meeting.extract_commitments.
        """
        text, source = load(transcript)
        target = resolve(output_path)
        suffix = target.suffix.lower()
        if suffix not in {".md", ".markdown", ".txt", ".docx"}:
            raise ToolError(
                f"Cannot write minutes as {suffix or 'a file without extension'}: end output_path in .md or .docx.",
                correction=Correction(
                    "output_path does not end in .md or .docx",
                    parameter="output_path",
                    suggested_value=str(target.with_suffix(".md")) if target.name else None,
                ),
            )
        if target.is_dir():
            raise ToolError(
                f"{target} is a folder. Give a file path inside it, e.g. {target / 'minutes.md'}.",
                correction=Correction(f"{output_path!r} is a folder, not a file", parameter="output_path"),
            )
        if source is not None and target == source:
            raise ToolError(
                "output_path is the transcript file itself. Choose another name for the minutes.",
                correction=Correction("output_path is the transcript file itself", parameter="output_path"),
            )
        parsed = parse_transcript(text)
        commitments, decisions, open_questions = find_commitments(parsed)
        attendees, attendees_from = _attendees(parsed)
        chosen = template or "standard"
        minutes = Minutes(
            title=parsed.title or (f"Minutes: {source.stem}" if source else "Meeting minutes"),
            date=parsed.date,
            source=str(source) if source else "transcript text given in the request",
            attendees=attendees,
            attendees_from=attendees_from,
            decisions=decisions,
            items=find_action_items(parsed),
            commitments=commitments,
            open_questions=open_questions,
            transcript=text,
        )
        is_docx = suffix == ".docx"
        data = render_docx(minutes, chosen) if is_docx else render_markdown(minutes, chosen).encode("utf-8")
        trash_id = None
        if target.is_symlink() or target.exists():
            trash_id = trash.keep(target, move=False, reason="overwritten by meeting.generate_minutes").trash_id
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        log.info("wrote minutes %s (previous file in trash %s)", target, trash_id)
        if trash_id is not None:
            undo = UndoAction(kind="restore_trash", path=str(target), trash_id=trash_id, replace=True)
        else:
            undo = UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))
        return MinutesResult(
            success=True,
            path=str(target),
            format="docx" if is_docx else "markdown",
            template=chosen,
            attendees=attendees,
            attendees_from=attendees_from,
            decisions=len(decisions),
            action_items=len(minutes.items),
            commitments=len(commitments),
            open_questions=len(open_questions),
            overwrote=trash_id is not None,
            undo=[undo],
        )

    return server


def _transcript(audio: Path, segments: list[Segment], duration: float, engine: str, language: str) -> Transcript:
    text = " ".join(s.text for s in segments)
    note = None if text else "No speech was recognised in this recording."
    return Transcript(
        path=str(audio),
        text=text,
        transcript=segments,
        duration_seconds=round(duration, 2),
        engine=engine,
        language=language,
        note=note,
    )


def _attendees(parsed: ParsedTranscript) -> tuple[list[str], Literal["list", "speakers", "none"]]:
    if parsed.attendees:
        return parsed.attendees, "list"
    if parsed.speakers:
        return parsed.speakers, "speakers"
    return [], "none"


def _looks_like_path(value: str) -> bool:
    if "\n" in value or len(value) > 4096:
        return False
    if value.startswith(("/", "~")):
        return True
    return not re.search(r"\s", value) and bool(re.search(r"(?i)\.(?:txt|md|vtt|srt|docx)$", value))


def _load_transcript(transcript: str, resolve: Callable[[str], Path]) -> tuple[str, Path | None]:
    """The transcript text, read from the file it names when it is a path (checked against the sandbox)."""
    value = transcript.strip()
    if not value:
        raise ToolError(
            "The transcript is empty. Give the transcript text, or the path of a transcript file.",
            correction=Correction("the transcript is empty", parameter="transcript"),
        )
    if not _looks_like_path(value):
        return transcript, None
    path = existing_file(resolve(value), value)
    if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
        raise ToolError(f"{path} is larger than 5 MiB; that is not a meeting transcript.")
    if path.suffix.lower() == ".docx":
        import docx

        return "\n".join(p.text for p in docx.Document(str(path)).paragraphs), path
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise ToolError(
            f"{path} is not a text file. For a recording use meeting.transcribe_audio first; for a PDF use "
            "document.extract_text.",
            correction=Correction(f"{path.name} is not a text file", parameter="transcript"),
        )
    try:
        return data.decode("utf-8-sig"), path
    except UnicodeDecodeError:
        return data.decode("latin-1"), path


def main() -> None:
    """Serve the meeting tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()

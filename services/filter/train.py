"""Fine-tune the filter's encoder so that a request lands nearest the tool it asks for.

`python -m services.filter.train` (`make train`; `make setup` runs it on first use).

The training data is generated, never taken from an evaluation suite: phrasing templates written from
the tool contract (`training/phrasings-*.yaml`, see `training/FORMAT.md`) are filled with varied slot
values (`training/slots.yaml`), some wrapped in chat framing (`training/frames.yaml`). The example
requests of `examples.yaml` join them. Requests that no tool serves (`training/no-tool.yaml`) teach the
encoder what "nothing fits" looks like. The generated requests are kept beside the trained encoder,
with their embeddings, and the filter's index uses them as example requests too.

The objective is classification by similarity: each request's embedding is compared with the embedding
of every tool's document (name and description, as the index embeds it; refreshed every
`REFRESH_EVERY` steps), and cross-entropy over all
tools pulls it to its own tool and away from every other one, siblings included. Two hinge terms keep
the similarities calibrated, so that one threshold can say "no tool fits": a request's own tool above
`POSITIVE_FLOOR`, and every tool below `NONE_CEILING` for a request that no tool serves.

Training is seeded and cached by a digest of everything it reads (this file and the code that shapes
a text for the encoder, the data, the tool documents, the base model, the versions of torch and
sentence-transformers): the result is kept in
`~/.cache/switchboard/encoders/<digest>` and copied to `models/filter-encoder`, so a fresh clone on the
same machine does not train again. About six minutes on two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import re
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from services.filter import core
from services.filter.app import GENERATED_REQUESTS, GENERATED_VECTORS
from services.filter.core import ToolEntry, dense_text, tool_document
from services.filter.settings import TRAINED_ENCODER
from switchboard import extract
from switchboard.errors import ConfigurationError
from switchboard.settings import default_embedding_path

log = logging.getLogger(__name__)

TRAINING_DIR = Path(__file__).with_name("training")
EXAMPLES = Path(__file__).with_name("examples.yaml")
CACHE = Path.home() / ".cache" / "switchboard" / "encoders"
MANIFEST = "training.json"
TRAINING_CODE = (Path(__file__), Path(core.__file__), Path(extract.__file__))

SEED = 20261130
VARIANTS_PER_TEMPLATE = 3  # fills of each template, each with other slot values
FRAME_SHARE = 0.3  # share of generated requests wrapped in a chat framing
STEPS = 360
BATCH = 48
NONE_PER_BATCH = 8
LEARNING_RATE = 3e-5
WARMUP_STEPS = 30
# The tools' documents are embedded without gradients and refreshed every few steps (a memory bank):
# back-propagating through all of them each step would cost three times as much, for little gain.
REFRESH_EVERY = 10
SCALE = 20.0  # similarities are cosines; the logits are scaled as in multiple-negatives ranking
POSITIVE_FLOOR = 0.55
NONE_CEILING = 0.35
MAX_TOKENS = 64
HELD_OUT_SHARE = 0.05  # of templates, kept out of training to report how well the encoder generalises

_SLOT = re.compile(r"\{([a-z]+)\}")


@dataclass(frozen=True)
class Example:
    text: str
    tool: str  # "" for a request no tool serves
    generated: bool = True  # False for the hand-written requests of examples.yaml


@dataclass(frozen=True)
class TrainingData:
    tools: list[ToolEntry]
    train: list[Example]
    held_out: list[Example]


# ---- the data ----


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read training data {path}: {exc}") from exc


def load_templates(folder: Path = TRAINING_DIR) -> dict[str, list[str]]:
    """Every tool's request templates (requests and follow-ups) from `phrasings-*.yaml`."""
    templates: dict[str, list[str]] = {}
    for path in sorted(folder.glob("phrasings-*.yaml")):
        for tool, entry in (load_yaml(path) or {}).items():
            texts = [*entry.get("requests", []), *entry.get("followups", [])]
            templates.setdefault(str(tool), []).extend(str(t) for t in texts)
    if not templates:
        raise ConfigurationError(f"no phrasing templates in {folder}")
    return templates


def fill(template: str, slots: Mapping[str, Sequence[str]], rng: random.Random) -> str:
    """`template` with each `{slot}` replaced by a value drawn from its pool."""

    def value(match: re.Match[str]) -> str:
        pool = slots.get(match.group(1))
        if not pool:
            raise ConfigurationError(f"template {template!r} uses the unknown slot {{{match.group(1)}}}")
        return str(rng.choice(pool))

    return " ".join(_SLOT.sub(value, template).split())


def variants(
    template: str, slots: Mapping[str, Sequence[str]], frames: Sequence[str], rng: random.Random, count: int
) -> list[str]:
    """Up to `count` distinct requests from one template; a share of them framed as chat."""
    out: list[str] = []
    for _ in range(count * 3):
        text = fill(template, slots, rng)
        if frames and rng.random() < FRAME_SHARE:
            text = rng.choice(frames).format(r=decapitalise(text))
        if text not in out:
            out.append(text)
        if len(out) == count or not _SLOT.search(template) and len(out) == 1 and rng.random() < 0.5:
            break
    return out


def decapitalise(text: str) -> str:
    """`text` with a capitalised first word lowered, to sit inside a framing ("Show me" → "show me")."""
    first = text.split(" ", 1)[0]
    return text[0].lower() + text[1:] if first[:1].isupper() and first[1:].islower() else text


def generate(
    templates: Mapping[str, Sequence[str]],
    no_tool: Sequence[str],
    examples: Mapping[str, Sequence[str]],
    slots: Mapping[str, Sequence[str]],
    frames: Sequence[str],
    seed: int = SEED,
) -> tuple[list[Example], list[Example]]:
    """Training and held-out requests. Held-out ones come from templates training never sees."""
    rng = random.Random(seed)
    train: list[Example] = []
    held: list[Example] = []
    for tool in sorted(templates):
        for template in templates[tool]:
            bucket = held if rng.random() < HELD_OUT_SHARE else train
            bucket.extend(Example(t, tool) for t in variants(template, slots, frames, rng, VARIANTS_PER_TEMPLATE))
        train.extend(Example(text, tool, generated=False) for text in examples.get(tool, ()))
    for template in no_tool:
        bucket = held if rng.random() < HELD_OUT_SHARE else train
        bucket.extend(Example(t, "") for t in variants(template, slots, frames, rng, 2))
    return train, held


def load_data(tools: list[ToolEntry]) -> TrainingData:
    templates = load_templates()
    known = {t.name for t in tools}
    unknown = sorted(set(templates) - known)
    if unknown:
        raise ConfigurationError(f"phrasing templates name tools the catalogue lacks: {', '.join(unknown)}")
    examples = {k: v for k, v in (load_yaml(EXAMPLES) or {}).items() if k in known}
    no_tool = (load_yaml(TRAINING_DIR / "no-tool.yaml") or {}).get("requests", [])
    slots = load_yaml(TRAINING_DIR / "slots.yaml") or {}
    frames = load_yaml(TRAINING_DIR / "frames.yaml") or []
    train, held = generate(templates, no_tool, examples, slots, frames)
    return TrainingData(tools, train, held)


def digest(tools: Iterable[ToolEntry], base: Path) -> str:
    """A fingerprint of every input of training: change one and the encoder is trained again."""
    import sentence_transformers
    import torch

    h = hashlib.sha256()
    # This file, and the code that decides how a text reads to the encoder (`dense_text`).
    for source in TRAINING_CODE:
        h.update(source.read_bytes())
    for path in [EXAMPLES, *sorted(TRAINING_DIR.glob("*.yaml"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    for tool in sorted(tools, key=lambda t: t.name):
        h.update(f"{tool.name}\n{tool.description}\n".encode())
    for name in ("config.json", "tokenizer.json", "modules.json"):
        if (base / name).is_file():
            h.update((base / name).read_bytes())
    h.update(f"torch={torch.__version__} st={sentence_transformers.__version__}".encode())
    return h.hexdigest()[:20]


# ---- training ----


def train_encoder(data: TrainingData, base: Path, out: Path) -> dict[str, Any]:
    """Fine-tune the model at `base` on `data` and save it to `out`; returns what was measured."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    model = SentenceTransformer(str(base), device="cpu")
    model.max_seq_length = MAX_TOKENS
    names = [t.name for t in data.tools]
    index = {name: i for i, name in enumerate(names)}
    documents = [dense_text(tool_document(t)) for t in data.tools]
    positives = [e for e in data.train if e.tool]
    negatives = [e for e in data.train if not e.tool]

    def embed(texts: list[str]) -> torch.Tensor:
        features = model.preprocess(texts)
        return F.normalize(model(features)["sentence_embedding"], dim=-1)

    def embed_documents() -> torch.Tensor:
        with torch.no_grad():
            return embed(documents)

    before = evaluate(model, documents, index, data.held_out)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / WARMUP_STEPS) * max(0.05, 1 - s / STEPS)
    )
    rng = random.Random(SEED)
    model.train()
    started = time.monotonic()
    losses: list[float] = []
    for step in range(STEPS):
        batch = rng.sample(positives, BATCH)
        none = rng.sample(negatives, min(NONE_PER_BATCH, len(negatives)))
        if step % REFRESH_EVERY == 0:
            tool_vectors = embed_documents()
        queries = embed([dense_text(e.text) for e in batch] + [dense_text(e.text) for e in none])
        similarity = queries @ tool_vectors.T
        labels = torch.tensor([index[e.tool] for e in batch])
        own = similarity[: len(batch)]
        loss = F.cross_entropy(own * SCALE, labels)
        loss = loss + F.relu(POSITIVE_FLOOR - own.gather(1, labels[:, None])).mean()
        if none:
            loss = loss + F.relu(similarity[len(batch) :].max(dim=1).values - NONE_CEILING).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 40 == 0 or step == STEPS - 1:
            print(
                f"train: step {step + 1}/{STEPS} loss {sum(losses[-40:]) / len(losses[-40:]):.3f} "
                f"({time.monotonic() - started:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
    model.eval()
    after = evaluate(model, documents, index, data.held_out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    save_generated(model, [e for e in (*data.train, *data.held_out) if e.tool and e.generated], out)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "steps": STEPS,
        "batch": BATCH,
        "training_requests": len(positives),
        "training_no_tool": len(negatives),
        "held_out_requests": len(data.held_out),
        "held_out_before": before,
        "held_out_after": after,
        "final_loss": round(sum(losses[-40:]) / len(losses[-40:]), 4),
    }


def save_generated(model: Any, generated: list[Example], out: Path) -> None:
    """Keep the generated requests and their embeddings beside the encoder: the filter's index uses
    them as example requests (many phrasings per tool), without embedding them again at start."""
    import numpy as np

    vectors = model.encode(
        [dense_text(e.text) for e in generated], batch_size=128, normalize_embeddings=True, show_progress_bar=False
    )
    # One record per request: in two parallel lists, the end of one request and the start of the next
    # would read as one run of words to anything that scans the file as text (the leak check does).
    records = [{"text": e.text, "tool": e.tool} for e in generated]
    (out / GENERATED_REQUESTS).write_text(json.dumps({"requests": records}), encoding="utf-8")
    np.save(out / GENERATED_VECTORS, np.asarray(vectors, dtype=np.float32))


def evaluate(model: Any, documents: list[str], index: dict[str, int], held: list[Example]) -> dict[str, float]:
    """Top-1 accuracy on held-out requests, and the mean best similarity of held-out no-tool requests."""
    import torch

    with torch.no_grad():
        tool_vectors = model.encode(documents, convert_to_tensor=True, normalize_embeddings=True)
        own = [e for e in held if e.tool]
        none = [e for e in held if not e.tool]
        result: dict[str, float] = {}
        if own:
            vectors = model.encode([dense_text(e.text) for e in own], convert_to_tensor=True, normalize_embeddings=True)
            best = (vectors @ tool_vectors.T).argmax(dim=1).tolist()
            result["top1"] = round(sum(b == index[e.tool] for b, e in zip(best, own, strict=True)) / len(own), 4)
        if none:
            vectors = model.encode(
                [dense_text(e.text) for e in none], convert_to_tensor=True, normalize_embeddings=True
            )
            result["no_tool_best_similarity"] = round(float((vectors @ tool_vectors.T).max(dim=1).values.mean()), 4)
        return result


# ---- the cached result ----


def trained_digest(folder: Path) -> str:
    try:
        return str(json.loads((folder / MANIFEST).read_text())["digest"])
    except (OSError, ValueError, KeyError):
        return ""


def ensure_trained(out: Path = TRAINED_ENCODER, base: Path | None = None, force: bool = False) -> Path:
    """The trained encoder at `out`: kept if current, copied from the cache, or trained now."""
    from services.toolhost.catalogue import read_catalogue

    base = base or default_embedding_path()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tools = [ToolEntry(s.name, s.server, s.description) for s in asyncio.run(read_catalogue())]
    wanted = digest(tools, base)
    if not force and trained_digest(out) == wanted:
        print(f"train: {out} is current ({wanted})", file=sys.stderr)
        return out
    cached = CACHE / wanted
    if force or trained_digest(cached) != wanted:
        data = load_data(tools)
        print(
            f"train: fine-tuning {base.name} on {len(data.train)} generated requests ({wanted})",
            file=sys.stderr,
            flush=True,
        )
        scratch = cached.with_name(cached.name + ".part")
        shutil.rmtree(scratch, ignore_errors=True)
        report = train_encoder(data, base, scratch)
        (scratch / MANIFEST).write_text(json.dumps({"digest": wanted, "base": str(base), **report}, indent=2))
        shutil.rmtree(cached, ignore_errors=True)
        scratch.rename(cached)
        print(f"train: {json.dumps(report)}", file=sys.stderr)
    scratch_out = out.with_name(out.name + ".part")
    shutil.rmtree(scratch_out, ignore_errors=True)
    shutil.copytree(cached, scratch_out)
    shutil.rmtree(out, ignore_errors=True)
    scratch_out.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.filter.train", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=TRAINED_ENCODER, help="where the trained encoder goes")
    parser.add_argument("--base", type=Path, default=None, help="the sentence-transformers model to start from")
    parser.add_argument("--force", action="store_true", help="train even when a current result exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        ensure_trained(args.out, args.base, args.force)
    except ConfigurationError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What a call will do, said plainly, before the person confirms it.

Each tool that changes something declares a preview template over its arguments, the parameter a
typed confirmation names, and the parameters naming a file it replaces when that file is there
(`kit.Effects`; they travel in the tool's `_meta`). From those and a call's arguments this module makes
the `Preview` the person sees, the same in the CLI, the API and the page:

- `Move /docs/a.txt → /docs/b.txt`
- `Delete /docs/b.txt (goes to the trash, can be undone)` — typed: the person types `b.txt`
- `Overwrite /docs/c.txt (the old version is kept in the trash)` — typed, because the file is there

Templates: `{name}` is the argument's value; a part in `[...]` is left out when an argument it names
was not given (`Encrypt {path}[ into {output_path}]`). The tier is the one the tool's effects ask for:
a read runs, a change asks for a click, a destructive call or one that replaces an existing file asks
for its target to be typed. The configured policy may then raise or lower it (`switchboard.confirmation`).

Pure: whether a file exists is asked of the caller (the tool host, which can see the files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from switchboard.v1 import switchboard_pb2 as pb

# The longest a value is shown in a preview before it is cut short.
VALUE_CHARS = 80

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_FIELD = re.compile(r"\{(\w+)\}")
_ADDRESS = re.compile(r".*<([^<>@\s]+@[^<>\s]+)>")


@dataclass(frozen=True)
class Declared:
    """What a tool declares about its effects, as the preview needs it."""

    read_only: bool
    destructive: bool
    template: str = ""
    target: str = ""
    overwrites: tuple[str, ...] = ()


def shown(value: Any) -> str:
    """A value as a preview shows it: text as it is, lists joined, anything else as compact JSON; long
    values cut short."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ", ".join(str(v) for v in value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ": "))
    text = " ".join(text.split())
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def render(template: str, arguments: Mapping[str, Any]) -> str:
    """`template` filled from `arguments` (see the module's note on templates)."""

    def given(name: str) -> bool:
        return arguments.get(name) not in (None, "", [], {})

    def optional(match: re.Match[str]) -> str:
        part = match.group(1)
        return part if all(given(name) for name in _FIELD.findall(part)) else ""

    text = _OPTIONAL.sub(optional, template)
    return _FIELD.sub(lambda m: shown(arguments[m.group(1)]) if given(m.group(1)) else "?", text)


def generic(tool: str, arguments: Mapping[str, Any]) -> str:
    """The preview of a tool that declares none: its name and every argument."""
    listed = ", ".join(f"{name}={shown(value)}" for name, value in arguments.items())
    return f"Run {tool}" + (f" with {listed}" if listed else "")


def replaced_path(overwrites: Sequence[str], arguments: Mapping[str, Any]) -> list[str]:
    """The paths a call would write that it replaces if they exist, in the order declared.
    `name+.enc` is the value of `name` with `.enc` added, `name-.enc` with it taken off (only when the
    value ends with it); the first rule whose argument is given decides."""
    for rule in overwrites:
        name, sign, suffix = overwrite_rule(rule)
        value = arguments.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        if sign == "+":
            return [value + suffix]
        if sign == "-":
            if value.endswith(suffix) and len(value) > len(suffix):
                return [value[: -len(suffix)]]
            continue
        return [value]
    return []


def overwrite_rule(rule: str) -> tuple[str, str, str]:
    """An `overwrites` rule's parameter, sign ('+', '-' or '') and suffix."""
    for sign in ("+", "-"):
        if sign in rule:
            name, _, suffix = rule.partition(sign)
            return name, sign, suffix
    return rule, "", ""


def target_name(value: Any) -> str:
    """What a person types to confirm an action on `value`: a path's file name, the first of several
    (the first recipient), anything else as shown."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str) and (address := _ADDRESS.fullmatch(value.strip())):
        return address.group(1)  # "Ana Lima <ana@example.org>": the address
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return PurePath(value.rstrip("/")).name or value
    return shown(value) if value is not None else ""


def replaced_file(declared: Declared, arguments: Mapping[str, Any], exists: Callable[[str], bool]) -> str | None:
    """The existing file a call would replace (None: it replaces nothing)."""
    return next((path for path in replaced_path(declared.overwrites, arguments) if exists(path)), None)


def declared_tier(
    declared: Declared | None, arguments: Mapping[str, Any], exists: Callable[[str], bool]
) -> pb.ConfirmTier:
    """The tier the tool's effects ask for with these arguments: `preview`'s tier, without its text."""
    if declared is None:
        return pb.CONFIRM_TIER_CONFIRM
    if declared.read_only:
        return pb.CONFIRM_TIER_RUN
    if declared.destructive or replaced_file(declared, arguments, exists) is not None:
        return pb.CONFIRM_TIER_TYPED
    return pb.CONFIRM_TIER_CONFIRM


def preview(
    tool: str, declared: Declared | None, arguments: Mapping[str, Any], exists: Callable[[str], bool]
) -> pb.Preview:
    """The preview of calling `tool` with `arguments`; `exists` says whether a path is already a file."""
    if declared is None:  # a tool nobody declared: asked with a click, shown as it is
        return pb.Preview(text=generic(tool, arguments), tier=pb.CONFIRM_TIER_CONFIRM)
    text = render(declared.template, arguments) if declared.template else generic(tool, arguments)
    if declared.read_only:
        return pb.Preview(text=text, tier=pb.CONFIRM_TIER_RUN)
    if declared.destructive:
        named = next((arguments[n] for n in declared.target.split("|") if arguments.get(n) not in (None, "", [])), None)
        return pb.Preview(text=text, tier=pb.CONFIRM_TIER_TYPED, target=target_name(named))
    replaced = replaced_file(declared, arguments, exists)
    if replaced is not None:
        fields = set(_FIELD.findall(declared.template))
        kept = "(the old version is kept in the trash)"
        if len(fields) == 1 and shown(arguments.get(next(iter(fields)))) == shown(replaced):
            text = f"Overwrite {shown(replaced)} {kept}"  # "Write {path}" over a file that is there
        else:
            text = f"{text}; overwrites {shown(replaced)} {kept}"
        return pb.Preview(text=text, tier=pb.CONFIRM_TIER_TYPED, target=target_name(replaced))
    return pb.Preview(text=text, tier=pb.CONFIRM_TIER_CONFIRM)


def typed_matches(preview_: pb.Preview, typed: str, arguments: Mapping[str, Any] | None = None) -> bool:
    """Whether what the person typed confirms the preview's target (its name, or the whole path)."""
    typed = typed.strip()
    if not typed or not preview_.target:
        return False
    if typed == preview_.target:
        return True
    return any(
        isinstance(value, str) and typed == value.strip() and target_name(value) == preview_.target
        for value in (arguments or {}).values()
    )

"""A scorer's parameters: read from its factory's signature, checked, and written into its id.

    @scorer("similar", family="quality", needs=("reference",), batched=True, factory=True)
    def similar(threshold: float = 0.8) -> BatchScorer:
        '''1 when the output means what a reference says (MiniLM cosine >= threshold), else 0.

        Args:
            threshold: the cosine (0-1) an output must reach.
        '''

A parameter is a keyword with a default, typed float, int, str, bool, ``Literal[...]`` or ``X | None``; its help
is its line under ``Args:`` in the docstring. A parameterisation's id is the scorer's name when every parameter is
at its default, else ``name(k=v, k2=v2)``: the parameters that differ from their defaults, sorted by name, values
written as YAML scalars (``similar(threshold=0.75)``). ``parse_id`` reads an id back.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import yaml

from evaltune.suggestions import did_you_mean
from evaltune.textfiles import FileProblem, parse_yaml

Kind = Literal["number", "integer", "text", "boolean"]
_KINDS: dict[type, Kind] = {bool: "boolean", int: "integer", float: "number", str: "text"}
_WANTED: dict[Kind, str] = {"number": "a number", "integer": "a whole number", "text": "text",
                            "boolean": "true or false"}
_ID = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_PLAIN_TEXT_UNSAFE = re.compile(r"[,()='\"\s]")


class ScorerParamError(ValueError):
    """A scorer's parameter is unknown or has a value it cannot take. ``param`` is the parameter's name (None when
    the problem is not one parameter's); the message says the fix."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ScorerParam:
    """One parameter of a scorer factory. ``choices`` is set for a ``Literal``; ``optional`` allows null."""

    name: str
    kind: Kind
    default: Any
    choices: tuple[Any, ...] | None = None
    help: str = ""
    optional: bool = False

    def describe(self) -> str:
        """``threshold (number; default 0.8)`` or ``variant (1, 2 or l; default l)``, for messages and listings."""
        wanted = _or(self.choices) if self.choices else self.kind
        if self.optional:
            wanted += " or null"
        return f"{self.name} ({wanted}; default {format_value(self.default)})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind, "default": self.default,
                "choices": list(self.choices) if self.choices else None, "optional": self.optional, "help": self.help}


def params_of(factory: Callable[..., Any]) -> tuple[ScorerParam, ...]:
    """The parameters of a scorer factory, from its signature and type hints. Raises ``TypeError`` for a
    parameter that is positional-only, has no default, or has a type a suite file cannot write."""
    name = getattr(factory, "__name__", repr(factory))
    hints = typing.get_type_hints(factory)
    helps = _arg_help(factory.__doc__ or "")
    params = []
    for parameter in inspect.signature(factory).parameters.values():
        where = f"scorer factory {name}: parameter '{parameter.name}'"
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TypeError(f"{where} must be a plain keyword parameter")
        if parameter.default is parameter.empty:
            raise TypeError(f"{where} needs a default (a suite may leave it out)")
        kind, choices, optional = _kind_of(hints.get(parameter.name), where)
        param = ScorerParam(parameter.name, kind, parameter.default, choices, helps.get(parameter.name, ""), optional)
        try:  # 1 as a float parameter's default is kept as 1.0; a default its own type refuses is a bug
            params.append(replace(param, default=check_value("", param, parameter.default)))
        except ScorerParamError as error:
            raise TypeError(f"scorer factory {name}: the default of {error}") from None
    return tuple(params)


def _kind_of(hint: Any, where: str) -> tuple[Kind, tuple[Any, ...] | None, bool]:
    """(kind, choices, optional) for a type hint; ``TypeError`` for one a YAML value cannot be."""
    written, args = hint, typing.get_args(hint)
    optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [arg for arg in args if arg is not type(None)]
        hint = rest[0] if len(rest) == 1 else None
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        kinds = {_KINDS.get(type(choice)) for choice in choices}
        if len(kinds) == 1 and None not in kinds:
            return kinds.pop(), choices, optional  # type: ignore[return-value]
        raise TypeError(f"{where}: a Literal's values must all be of one type (text, number or boolean)")
    if hint in _KINDS:
        return _KINDS[hint], None, optional
    found = f"not {written!r}" if written is not None else "it has no type hint"
    raise TypeError(f"{where} must be typed float, int, str, bool, Literal[...] or X | None; {found}")


def _arg_help(doc: str) -> dict[str, str]:
    """Each parameter's help from a Google-style ``Args:`` section (continuation lines joined)."""
    lines = inspect.cleandoc(doc).splitlines()
    stripped = [line.strip() for line in lines]
    if "Args:" not in stripped:
        return {}
    helps: dict[str, str] = {}
    current, indent = "", -1
    for line in lines[stripped.index("Args:") + 1:]:
        if not line.strip() or not line[0].isspace():
            break
        depth = len(line) - len(line.lstrip())
        indent = depth if indent < 0 else indent
        match = re.match(r"\s*(\w+)\s*(?:\([^)]*\))?:\s*(.*)$", line)
        if depth == indent and match:
            current = match.group(1)
            helps[current] = match.group(2)
        elif current:
            helps[current] += " " + line.strip()
    return helps


def check_value(scorer: str, param: ScorerParam, value: Any) -> Any:
    """``value`` as the parameter takes it (an int for a number becomes a float); raises ``ScorerParamError``."""
    where = f"parameter '{param.name}'" + (f" of scorer '{scorer}'" if scorer else "")
    if value is None and param.optional:
        return None
    checked = _coerce(param, value)
    if checked is None:
        wanted = _WANTED[param.kind] + (" or null" if param.optional else "")
        raise ScorerParamError(f"{where} must be {wanted}, not {_shown(value)}", param.name)
    if param.choices is not None and checked not in param.choices:
        raise ScorerParamError(f"{where} must be {_or(param.choices)}, not {_shown(value)}", param.name)
    return checked


def _coerce(param: ScorerParam, value: Any) -> Any:
    """The value in the parameter's type, or None when it is of another type."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if param.kind == "number" and is_number and math.isfinite(value):
        return float(value)
    if param.kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if param.kind == "boolean" and isinstance(value, bool):
        return value
    if param.kind == "text" and isinstance(value, str):
        return value
    if param.kind == "text" and param.choices and is_number:
        return str(value)  # `variant: 1` in YAML is the number 1; the choice is the text "1"
    return None


def check_values(scorer: str, params: tuple[ScorerParam, ...], values: Mapping[str, Any],
                 start: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every parameter's value: ``values`` checked, over ``start`` (a preset's), over the defaults."""
    known = {param.name: param for param in params}
    for key in values:
        if key not in known:
            hint = did_you_mean(str(key), known)
            takes = f"its parameters: {', '.join(p.describe() for p in params)}" if params else "it takes none"
            raise ScorerParamError(f"scorer '{scorer}' has no parameter '{key}'{hint}; {takes}", str(key))
    full = {param.name: param.default for param in params}
    full.update(start or {})
    full.update({key: check_value(scorer, known[key], value) for key, value in values.items()})
    return full


def format_id(name: str, params: tuple[ScorerParam, ...], values: Mapping[str, Any]) -> str:
    """``name`` when every value is its default, else ``name(k=v, ...)`` over the others, sorted by name."""
    changed = sorted(p.name for p in params if values[p.name] != p.default)
    if not changed:
        return name
    return f"{name}({', '.join(f'{key}={format_value(values[key])}' for key in changed)})"


def format_value(value: Any) -> str:
    """A parameter's value as a YAML scalar (``0.75``, ``true``, ``null``, ``l``); text that the id's syntax or YAML
    would misread is double-quoted."""
    if isinstance(value, str):
        plain = yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")
        if plain == value and not _PLAIN_TEXT_UNSAFE.search(value) and value:
            return value
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n").removesuffix("\n...")


def parse_id(text: str) -> tuple[str, dict[str, Any]]:
    """(name, parameters) of an id such as ``similar(threshold=0.75)``; raises ``ScorerParamError`` when the text
    is not ``name`` or ``name(k=v, ...)``."""
    match = _ID.match(text)
    if match is None:
        raise ScorerParamError(f"'{text}' is not a scorer name or id; write NAME or NAME(param=value, ...), "
                               "for example similar(threshold=0.75)")
    name, inside = match.group(1), match.group(2)
    values: dict[str, Any] = {}
    for part in _split_top_level(inside or ""):
        key, equals, raw = part.partition("=")
        key = key.strip()
        if not equals or not re.fullmatch(r"\w+", key):
            raise ScorerParamError(f"'{text}': '{part.strip()}' is not param=value; write {name}(param=value, ...)")
        if key in values:
            raise ScorerParamError(f"'{text}' sets '{key}' twice; set it once", key)
        values[key] = _parse_value(raw.strip(), text, key)
    return name, values


def split_ids(text: str) -> list[str]:
    """The ids in a comma-separated list (``--scorers a,similar(threshold=0.7, x=1)``): commas inside an id's
    parentheses or quotes do not split it."""
    return [part.strip() for part in _split_top_level(text) if part.strip()]


def _split_top_level(text: str) -> list[str]:
    parts, current, depth, quote = [], "", 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote and not current.endswith("\\") else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += char
    if current.strip() or parts:
        parts.append(current)
    return [part for part in parts if part.strip()]


def _parse_value(raw: str, text: str, key: str) -> Any:
    if _NUMBER.match(raw):
        return float(raw) if any(c in raw for c in ".eE") else int(raw)  # YAML 1.1 reads 1e-3 as text
    try:
        return parse_yaml(raw, text) if raw else ""
    except FileProblem:
        raise ScorerParamError(f"'{text}': the value of '{key}' ({raw}) is not a YAML value; quote text",
                               key) from None


def _or(choices: tuple[Any, ...] | None) -> str:
    shown = [str(choice) if isinstance(choice, str) else format_value(choice) for choice in choices or ()]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _shown(value: Any) -> str:
    """A value in a message, with its YAML type: ``'high' (text)``, ``1.5 (number)``, ``a list``."""
    if isinstance(value, str):
        return f"'{value}' (text)"
    kind = {bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(value))
    if kind is None:
        return "a mapping" if isinstance(value, Mapping) else f"a {type(value).__name__}"
    return f"{format_value(value)} ({kind})" if kind != "null" else "null"

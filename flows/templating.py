"""Liquid templates in flow steps: checked when saved, rendered within bounds, nil for missing.

python-liquid renders, sandboxed (no loader: no file access). Every template is

- **checked** (``check``) when its step is saved and when the flow is published or imported:
  syntax errors, unknown filters, variables that cannot exist in a run's context (see
  ``KNOWN_ROOTS``) and ranges larger than ``MAX_ITEMS`` are problems in plain words with their
  line and column;
- **bounded** when it renders (``render``): loops stop after ``loop_iteration_limit``
  iterations, output after ``output_stream_limit`` characters, a filter refuses input or output
  larger than ``MAX_ITEMS`` items or ``MAX_CHARS`` characters, a range is at most ``MAX_ITEMS``
  long, and a render stops with an error at its next filter once it is past
  ``RENDER_BUDGET_MS`` (the row locks of a step are held no longer than that);
- **nil for missing**: a value the persona lacks is ``None`` (Liquid's nil), never ``""``, and a
  missing attribute is nil too, so ``{% if persona.email %}`` and a split's "is empty" agree.

``TemplateError`` is what a step reports when its template cannot render.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from functools import lru_cache
from typing import Any

import regex
from liquid import Environment
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.exceptions import LiquidError
from liquid.undefined import Undefined

MAX_ITEMS = 10_000  # items a filter takes or makes (a range, a split), at most
MAX_CHARS = 10_000  # characters a filter takes or makes, at most
RENDER_BUDGET_MS = 100
# What a run's templates can read (see ``engine._context``): the first name of a path.
KNOWN_ROOTS = ("persona", "trigger", "widgets", "flow")
PERSONA_KEYS = (
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "customer_id",
    "birthday",
    "points",
    "loyalty_enrolled",
    "attributes",
    "consents",
)
FLOW_KEYS = ("name", "run_id", "version", "variables")


class TemplateError(Exception):
    """A template that cannot render, in plain words (shown as the step's error)."""


class Nil(Undefined):
    """A missing value: renders as nothing, is falsy, and equals nil like a value that is
    there but empty (``None``), so a missing attribute and a missing email behave alike."""

    def __eq__(self, other: object) -> bool:
        return other is None or isinstance(other, Undefined)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(None)


class _BoundedEnvironment(Environment):
    loop_iteration_limit = 1000
    output_stream_limit = 10_000
    local_namespace_limit = 10_000
    context_depth_limit = 10


def _size(value: Any) -> tuple[int, str]:
    if isinstance(value, str):
        return len(value), "characters"
    if isinstance(value, list | tuple | range | dict):
        return len(value), "items"
    return 0, ""


# The time by which the render in progress must end (``time.perf_counter()``), if any.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "flow_template_deadline", default=None
)


def _bounded(name: str, func: Any) -> Any:
    """``func`` (a filter) refusing input or output beyond ``MAX_ITEMS``/``MAX_CHARS``, and
    stopping the render once it is past its time budget (filters are where the work is:
    loops alone stop at ``loop_iteration_limit``)."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        deadline = _DEADLINE.get()
        if deadline is not None and time.perf_counter() > deadline:
            raise TemplateError(
                f"it takes longer than {RENDER_BUDGET_MS} ms to render: make it simpler."
            )
        for value in (*args, *kwargs.values()):
            _check_size(name, value)
        result = func(*args, **kwargs)
        _check_size(name, result)
        return result

    return guarded


def _check_size(name: str, value: Any) -> None:
    size, unit = _size(value)
    limit = MAX_CHARS if unit == "characters" else MAX_ITEMS
    if size > limit:
        raise TemplateError(
            f"The filter “{name}” would handle {size:,} {unit} (at most {limit:,})."
        )


def _environment() -> Environment:
    env = _BoundedEnvironment(undefined=Nil)
    for name, func in list(env.filters.items()):
        env.filters[name] = _bounded(name, func)
    return env


_ENV = _environment()


def _position(source: str, index: int) -> str:
    if index < 0:
        return "at the end"
    before = source[:index]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return f"line {line}, column {column}"


def _walk_expressions(nodes: Any) -> Any:
    """The expressions under ``nodes`` (the nodes of a ``liquid.template.BoundTemplate``)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        for expression in node.expressions():
            todo = [expression]
            while todo:
                current = todo.pop()
                yield current
                todo.extend(current.children())
        stack.extend(node.children(None, include_partials=False))  # type: ignore[arg-type]


@lru_cache(maxsize=2048)
def _compile(text: str):
    """The parsed template, or TemplateError naming the first problem in plain words."""
    try:
        template = _ENV.from_string(text)
    except LiquidError as exc:
        token = getattr(exc, "token", None)
        where = _position(text, token.start_index) if token is not None else "at the end"
        raise TemplateError(f"{where}: {_plain(exc)}") from None
    for expression in _walk_expressions(template.nodes):
        if isinstance(expression, RangeLiteral):
            start, stop = expression.start, expression.stop
            if not (isinstance(start, IntegerLiteral) and isinstance(stop, IntegerLiteral)):
                raise TemplateError(
                    f"{_position(text, expression.token.start_index)}: a range needs whole "
                    "numbers at both ends, like (1..10)."
                )
            if stop.value - start.value + 1 > MAX_ITEMS:
                raise TemplateError(
                    f"{_position(text, expression.token.start_index)}: the range "
                    f"({start.value}..{stop.value}) is longer than {MAX_ITEMS:,} items."
                )
    return template


def _plain(exc: LiquidError) -> str:
    message = getattr(exc, "message", "") or str(exc).split("\n", 1)[0]
    return message.replace("'", "“", 1).replace("'", "”", 1) if message.count("'") == 2 else message


def check(text: Any, *, step_names: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The problems of one template, each "line L, column C: what is wrong"; [] when fine.

    Checks syntax, filters (python-liquid's standard ones), ranges and the variables it reads:
    a path must start at one of ``KNOWN_ROOTS``; ``persona.X`` and ``trigger.persona.X`` must
    be a persona field (``PERSONA_KEYS``; any attribute key under ``attributes``);
    ``widgets.S`` must name a step in ``step_names``; ``flow.X`` one of ``FLOW_KEYS``."""
    source = "" if text is None else str(text)
    if "{" not in source:
        return []
    try:
        template = _compile(source)
    except TemplateError as exc:
        return [str(exc)]
    problems = []
    analysis = template.analyze(include_partials=False)
    for name, spans in analysis.filters.items():
        if name not in _ENV.filters:
            problems.append(
                f"{_position(source, spans[0].index)}: there is no filter called “{name}”."
            )
    for _root, variables in analysis.globals.items():
        for variable in variables:
            why = _unknown_variable([str(s) for s in variable.segments], step_names)
            if why:
                problems.append(f"{_position(source, variable.span.index)}: {why}")
    return problems


def _unknown_variable(path: list[str], step_names: frozenset[str] | set[str]) -> str:
    root, rest = path[0], path[1:]
    if root not in KNOWN_ROOTS:
        roots = ", ".join(KNOWN_ROOTS)
        return f"“{root}” is not something a flow can read (use {roots})."
    persona = rest if root == "persona" else rest[1:] if rest[:1] == ["persona"] else None
    if root == "trigger" and rest[:1] != ["persona"]:
        return ""  # what a trigger holds depends on it
    if persona is not None and persona and persona[0] not in PERSONA_KEYS:
        if not persona[0].startswith("attr_"):
            return f"a persona has no “{persona[0]}” (attributes are persona.attributes.KEY)."
    if root == "widgets" and rest and step_names and rest[0] not in step_names:
        return f"there is no step called “{rest[0]}” in this flow."
    if root == "flow" and rest and rest[0] not in FLOW_KEYS:
        return f"“flow.{rest[0]}” does not exist (use {', '.join(FLOW_KEYS)})."
    return ""


# ---------------------------------------------------------------------------------------------
# Rendering

# The common template shape, "text {{ a.b.c }} text", rendered without Liquid when every name
# on the path is a key of a plain dict and the value is text, a whole number or nil: the result
# is then exactly Liquid's (tests compare the two). Anything else goes through Liquid.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_OUTPUT_RE = re.compile(rf"\{{\{{[ \t\r\n]*({_NAME}(?:\.{_NAME})*)[ \t\r\n]*\}}\}}")
# Liquid's expression keywords: as a name anywhere on a path they are literals or syntax.
_LIQUID_WORDS = frozenset(
    "true false nil null empty blank and or contains not in offset limit reversed cols "
    "continue with for as if else required".split()
)
_FAST_OUTPUT_LIMIT = 1000  # well under the sandbox's output limit
_MISSING = object()  # a key the dict does not have: nil
_COMPLEX = object()  # a path through something else (a list's size, …): Liquid reads it


@lru_cache(maxsize=2048)
def simple_parts(text: str) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """``((literal, path), …)`` for a template made only of literal text and plain
    ``{{ a.b }}`` outputs; None for anything else (tags, filters, indexes, keywords)."""
    parts = []
    pos = 0
    for m in _OUTPUT_RE.finditer(text):
        literal = text[pos : m.start()]
        if "{" in literal or "}" in literal:
            return None
        path = tuple(m.group(1).split("."))
        if not _LIQUID_WORDS.isdisjoint(path):
            return None
        parts.append((literal, path))
        pos = m.end()
    tail = text[pos:]
    if "{" in tail or "}" in tail:
        return None
    parts.append((tail, ()))
    return tuple(parts)


def _lookup(context: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = context
    for name in path:
        if type(value) is not dict:
            return _COMPLEX
        if name not in value:
            # Liquid's own properties of a collection (a list's size, first, last)
            return _COMPLEX if name in ("size", "first", "last") else _MISSING
        value = value[name]
    return value


def _render_simple(parts, context: dict[str, Any]) -> str | None:
    out = []
    for literal, path in parts:
        out.append(literal)
        if not path:
            continue
        value = _lookup(context, path)
        if type(value) is str:
            out.append(value)
        elif type(value) is int:
            out.append(str(value))
        elif value is None or value is _MISSING:
            continue  # nil renders as nothing
        else:  # booleans, floats, lists, Liquid's own properties: Liquid renders them
            return None
    text = "".join(out)
    if len(text) > _FAST_OUTPUT_LIMIT or "\r" in text:
        return None  # the sandbox's bounded output stream turns "\r" into "\n"
    if not text.isascii():
        try:  # Liquid counts its output in UTF-8 and fails on what cannot be encoded
            text.encode()
        except UnicodeEncodeError:
            return None
    return text


def render(template: Any, context: dict[str, Any]) -> str:
    """The template rendered with ``context``; TemplateError in plain words otherwise."""
    text = "" if template is None else str(template)
    if "{" not in text:
        return text
    parts = simple_parts(text)
    if parts is not None:
        fast = _render_simple(parts, context)
        if fast is not None:
            return fast
    started = time.perf_counter()
    token = _DEADLINE.set(started + RENDER_BUDGET_MS / 1000)
    try:
        out = _compile(text).render(**context)
    except TemplateError as exc:
        raise TemplateError(f"Template “{text[:60]}”: {exc}") from None
    except LiquidError as exc:
        raise TemplateError(f"Template “{text[:60]}”: {_plain(exc)}") from None
    except (RecursionError, MemoryError):
        raise TemplateError(f"Template too complex: “{text[:60]}”") from None
    finally:
        _DEADLINE.reset(token)
    elapsed = (time.perf_counter() - started) * 1000
    if elapsed > RENDER_BUDGET_MS:
        raise TemplateError(
            f"Template “{text[:60]}” took {elapsed:,.0f} ms to render (at most "
            f"{RENDER_BUDGET_MS} ms): make it simpler."
        )
    return out


def value_of(template: Any, context: dict[str, Any]) -> tuple[Any, bool]:
    """(what a template reads, typed?): for exactly one ``{{ a.b }}`` the value itself (a
    number stays a number, nil is None) and True; for any other template its rendered text
    and False."""
    text = "" if template is None else str(template)
    parts = simple_parts(text.strip()) if "{" in text else None
    if parts is not None and len(parts) == 2 and parts[0][0] == "" and parts[1] == ("", ()):
        value = _lookup(context, parts[0][1])
        if value is not _COMPLEX:
            return (None if value is _MISSING else value), True
    return render(text, context), False


# ---------------------------------------------------------------------------------------------
# Split conditions: the same decision as Liquid's ``{% if %}`` on the same value

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _number(text: str) -> int | float | None:
    t = text.strip()
    if not _NUMBER_RE.match(t):
        return None
    return float(t) if "." in t else int(t)


def is_empty(value: Any) -> bool:
    """Nil, blank text or an empty list: Liquid's ``v == nil or v == blank``."""
    if value is None or isinstance(value, Undefined):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | dict | tuple):
        return not value
    return False


def split_matches(operator: str, value: Any, argument: str, *, typed: bool = True) -> bool:
    """Whether a split condition holds: ``value`` (what the input reads: typed when the input
    is one ``{{ path }}``, else its rendered text with ``typed=False``) against ``argument``
    (the condition's text).

    Typed, each comparison is Liquid's ``{% if %}`` with the argument written as a literal of
    the value's own type: a number compares as a number (``1250 > 1000``), true/false as a
    boolean, text as text (case-insensitive for "is equal to" and "contains"), nil equals
    nothing; a comparison Liquid cannot make (text against a number) does not hold. Untyped
    (text rendered from a template of several parts), numbers written in the text compare as
    numbers, as before values were typed."""
    if operator == "is_empty":
        return is_empty(value)
    if operator == "is_not_empty":
        return not is_empty(value)
    if operator in _NEGATIONS:
        return not split_matches(_NEGATIONS[operator], value, argument, typed=typed)
    if operator == "regex":
        return value is not None and _pattern_matches(argument, _text(value))
    if operator == "starts_with":
        if value is None or isinstance(value, Undefined | bool):
            return False
        return _text(value).strip().lower().startswith(argument.strip().lower())
    if value is None or isinstance(value, Undefined):
        return False
    if operator == "in_list":
        items = {a.strip().lower() for a in argument.split(",")}
        return _text(value).strip().lower() in items
    if isinstance(value, bool):
        wanted = argument.strip().lower()
        if wanted not in ("true", "false") or operator == "contains":
            return False
        return _ordered(operator, value, wanted == "true")
    if isinstance(value, int | float):
        number = _number(argument)
        if number is None or operator == "contains":
            return False
        return _ordered(operator, value, number)
    if isinstance(value, list | tuple):
        return operator == "contains" and argument in [_text(v) for v in value]
    text = _text(value)
    if operator == "equal_to":
        return text.strip().lower() == argument.strip().lower()
    if operator == "contains":
        return argument.strip().lower() in text.lower()
    if not typed:  # rendered text: "11" > "10" as numbers, as it always was
        a, b = _number(text), _number(argument)
        return a is not None and b is not None and _ordered(operator, a, b)
    return _ordered(operator, text, argument)


_NEGATIONS = {
    "not_equal_to": "equal_to",
    "not_in_list": "in_list",
    "not_contains": "contains",
    "not_starts_with": "starts_with",
}
PATTERN_TIMEOUT = 0.05  # seconds a "matches the regular expression" condition may take
PATTERN_INPUT = 1000  # characters of the value it looks at


def _pattern_matches(pattern: str, text: str) -> bool:
    """Studio's "Matches regex": does ``pattern`` match within ``text``. Bounded: a pattern
    of ``definition.MAX_PATTERN`` characters at most (checked when saved) over the first
    ``PATTERN_INPUT`` characters, within ``PATTERN_TIMEOUT`` (the regex library's timeout;
    a pattern that takes longer does not match)."""
    try:
        return regex.search(pattern, text[:PATTERN_INPUT], timeout=PATTERN_TIMEOUT) is not None
    except (regex.error, TimeoutError):
        return False


def _ordered(operator: str, a: Any, b: Any) -> bool:
    if operator == "equal_to":
        return a == b
    if operator == "greater_than":
        return a > b
    if operator == "less_than":
        return a < b
    return False


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)

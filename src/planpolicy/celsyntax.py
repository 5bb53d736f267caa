"""CEL parsing without lark: an LALR driver and a contextual lexer over exported tables.

Checking a new CEL expression needs its parse tree only. lark builds that tree
well but costs a lint process about 0.1 s before the first expression is
parsed: importing lark and compiling one scanner regex per lexer state. This
module parses with tables exported from lark's own parser for cel-python's
grammar (``cel_syntax.json``, written by ``planpolicy schema --write``) and
builds the trees lark builds: the same rule names, children and tokens (type,
value and position). A differential test holds the two together.

The tables say, per parser state, which terminals the lexer tries, in lark's
order, and how lark shapes each rule's tree (filtered punctuation, inlined
``_rules``). Only valid expressions are parsed here: on any syntax error
:class:`NotParsed` is raised and the caller parses with lark, which reports
the error as before. The tables are used only when their key matches the
installed grammar and lark version; otherwise :func:`load` returns None.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

TABLES_FILE: Final = Path(__file__).with_name("cel_syntax.json")
"""The exported tables shipped with the package."""

FORMAT: Final = 1
"""The layout of the tables file; another layout is ignored."""


class NotParsed(Exception):
    """The text is not a valid expression (or the tables cannot parse it): ask lark."""


class CelToken(str):
    """A token as lark builds it: a ``str`` with ``type``, ``value`` and its position.

    Tokens re-created by a lexer callback (``true``/``false``) carry no
    position, as in lark.
    """

    type: str
    value: str
    start_pos: int | None
    line: int | None
    column: int | None
    end_line: int | None
    end_column: int | None
    end_pos: int | None

    def __new__(
        cls,
        type_: str,
        value: str,
        start_pos: int | None = None,
        line: int | None = None,
        column: int | None = None,
        end_line: int | None = None,
        end_column: int | None = None,
        end_pos: int | None = None,
    ) -> CelToken:
        token = super().__new__(cls, value)
        token.type = type_
        token.value = value
        token.start_pos = start_pos
        token.line = line
        token.column = column
        token.end_line = end_line
        token.end_column = end_column
        token.end_pos = end_pos
        return token

    def __repr__(self) -> str:
        return f"CelToken({self.type!r}, {self.value!r})"

    def __reduce__(self) -> Any:
        fields = (self.start_pos, self.line, self.column, self.end_line, self.end_column)
        return (CelToken, (self.type, self.value, *fields, self.end_pos))


class _NoMeta:
    """A tree's position metadata when positions are not kept (as lark's empty ``Meta``)."""

    __slots__ = ()
    empty = True


_NO_META: Final = _NoMeta()


class CelTree:
    """A parse tree node as lark builds it: the rule's name and its children."""

    __slots__ = ("children", "data")
    meta = _NO_META

    def __init__(self, data: str, children: list[Any]) -> None:
        self.data = data
        self.children = children

    def __repr__(self) -> str:
        return f"CelTree({self.data!r}, {self.children!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CelTree):
            return NotImplemented
        return self.data == other.data and self.children == other.children

    __hash__ = None  # type: ignore[assignment]  # mutable, as lark's trees


class _Lexer:
    """The terminals one parser state's lexer tries, in lark's order."""

    __slots__ = ("names", "order", "unless")

    def __init__(self, data: Mapping[str, Any], global_index: Mapping[str, int]) -> None:
        order = [str(name) for name in data["order"]]
        self.names = frozenset(order)
        self.order = [(global_index[name], name) for name in order]
        self.unless: dict[str, dict[str, str]] = {
            str(k): {str(s): str(t) for s, t in v.items()} for k, v in data["unless"].items()
        }


class SyntaxTables:
    """Loaded tables and the parser over them (:meth:`parse`)."""

    def __init__(self, data: Mapping[str, Any], keywords: Mapping[str, str]) -> None:
        terminals = [(str(name), str(regexp)) for name, regexp in data["terminals"]]
        self.flags = int(data["flags"])
        self.patterns = dict(terminals)
        self.global_index = {name: i for i, (name, _) in enumerate(terminals)}
        self.master = re.compile(
            "|".join(f"(?P<{name}>{regexp})" for name, regexp in terminals), self.flags
        )
        self.single: dict[str, re.Pattern[str]] = {}
        self.lexers = [_Lexer(item, self.global_index) for item in data["lexers"]]
        self.state_lexer = [int(i) for i in data["state_lexer"]]
        self.actions: list[dict[str, int]] = [
            {str(k): int(v) for k, v in row.items()} for row in data["actions"]
        ]
        self.rules: list[tuple[str, str, int, tuple[tuple[int, bool], ...] | None, bool]] = [
            (
                str(origin),
                str(name),
                int(size),
                None if include is None else tuple((int(i), bool(e)) for i, e in include),
                bool(expand1),
            )
            for origin, name, size, include, expand1 in data["rules"]
        ]
        self.start = int(data["start"])
        self.end = int(data["end"])
        self.ignore = frozenset(str(name) for name in data["ignore"])
        self.newline_types = frozenset(str(name) for name in data["newline_types"])
        self.keywords = dict(keywords)

    # lexing

    def _pattern(self, name: str) -> re.Pattern[str]:
        pattern = self.single.get(name)
        if pattern is None:
            pattern = self.single[name] = re.compile(self.patterns[name], self.flags)
        return pattern

    def _next(self, lexer: _Lexer, text: str, pos: int) -> tuple[str, str]:
        """The terminal and text lark's lexer for this state matches at ``pos``."""
        found = self.master.match(text, pos)
        if found is None:
            raise NotParsed
        name = found.lastgroup
        if name is None:  # pragma: no cover - every alternative is a named group
            raise NotParsed
        if name in lexer.names:
            return name, found.group()
        # Every terminal before `name` in lark's order fails here; try this
        # state's later ones, in order, as its own scanner would.
        after = self.global_index[name]
        for index, candidate in lexer.order:
            if index > after:
                match = self._pattern(candidate).match(text, pos)
                if match is not None:
                    return candidate, match.group()
        raise NotParsed

    # parsing

    def parse(self, text: str) -> Any:
        """The tree of ``text``, as lark builds it; :class:`NotParsed` when it is not valid."""
        actions, rules, lexers, state_lexer = (
            self.actions,
            self.rules,
            self.lexers,
            self.state_lexer,
        )
        ignore, newline_types, keywords = self.ignore, self.newline_types, self.keywords
        states = [self.start]
        values: list[Any] = []
        pos, line, line_start, end = 0, 1, 0, len(text)
        while True:
            token: CelToken | None = None
            while pos < end:
                lexer = lexers[state_lexer[states[-1]]]
                name, value = self._next(lexer, text, pos)
                start, start_line, column = pos, line, pos - line_start + 1
                if name in newline_types:
                    newlines = value.count("\n")
                    if newlines:
                        line += newlines
                        line_start = pos + value.rindex("\n") + 1
                pos += len(value)
                if name in ignore:
                    continue
                unless = lexer.unless.get(name)
                if unless is not None:
                    name = unless.get(value, name)
                if name == "IDENT" and value in keywords:
                    token = CelToken(keywords[value], value)
                else:
                    token = CelToken(
                        name, value, start, start_line, column, line, pos - line_start + 1, pos
                    )
                break
            if token is None:
                token = CelToken("$END", "", 0, 1, 1)
                return self._feed(states, values, token, actions, rules, True)
            self._feed(states, values, token, actions, rules, False)

    def _feed(
        self,
        states: list[int],
        values: list[Any],
        token: CelToken,
        actions: list[dict[str, int]],
        rules: list[tuple[str, str, int, tuple[tuple[int, bool], ...] | None, bool]],
        is_end: bool,
    ) -> Any:
        kind = token.type
        while True:
            action = actions[states[-1]].get(kind)
            if action is None:
                raise NotParsed
            if action >= 0:
                if is_end:  # pragma: no cover - the tables never shift the end
                    raise NotParsed
                states.append(action)
                values.append(token)
                return None
            origin, name, size, include, expand1 = rules[-action - 1]
            if size:
                children = values[-size:]
                del states[-size:]
                del values[-size:]
            else:
                children = []
            if include is not None:
                kept: list[Any] = []
                for index, expand in include:
                    if expand:
                        kept.extend(children[index].children)
                    else:
                        kept.append(children[index])
                children = kept
            value = children[0] if expand1 and len(children) == 1 else CelTree(name, children)
            goto = actions[states[-1]].get(origin)
            if goto is None or goto < 0:  # pragma: no cover - the tables always have the goto
                raise NotParsed
            states.append(goto)
            values.append(value)
            if is_end and goto == self.end:
                return value


def load(key: str, keywords: Mapping[str, str], path: Path | None = None) -> SyntaxTables | None:
    """The shipped tables if they were exported under ``key``, else None."""
    try:
        data = json.loads((TABLES_FILE if path is None else path).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return None
    try:
        return SyntaxTables(data, keywords)
    except (KeyError, TypeError, ValueError, re.error):
        return None


# --- exporting lark's tables (needs lark) ----------------------------------------


def export(parser: Any, key: str) -> dict[str, Any]:
    """The tables of lark ``parser`` (LALR, contextual lexer, no positions) as JSON data.

    States are numbered breadth-first from the start state, following
    symbols in sorted order, so the same grammar always gives the same file.
    """
    from lark.lexer import CallChain, UnlessCallback
    from lark.parsers.lalr_analysis import Shift

    frontend = parser.parser
    table = frontend.parser.parser.parse_table
    start = next(iter(table.start_states.values()))
    end = next(iter(table.end_states.values()))
    numbers: dict[Any, int] = {start: 0}
    order = [start]
    for state in order:
        for symbol in sorted(table.states[state]):
            action, arg = table.states[state][symbol]
            if action is Shift and arg not in numbers:
                numbers[arg] = len(order)
                order.append(arg)
    rules = sorted(
        {
            arg
            for row in table.states.values()
            for action, arg in row.values()
            if action is not Shift
        },
        key=lambda rule: (rule.origin.name, [symbol.name for symbol in rule.expansion]),
    )
    rule_numbers = {rule: i for i, rule in enumerate(rules)}
    actions = [
        {
            symbol: numbers[arg] if action is Shift else -rule_numbers[arg] - 1
            for symbol, (action, arg) in sorted(table.states[state].items())
        }
        for state in order
    ]
    root = frontend.lexer.root_lexer
    lexer_numbers: dict[int, int] = {}
    lexers: list[dict[str, Any]] = []
    state_lexer = []
    for state in order:
        basic = frontend.lexer.lexers[state]
        if id(basic) not in lexer_numbers:
            scanner = basic.scanner  # builds lark's scanner and its callbacks
            unless: dict[str, dict[str, str]] = {}
            for name, chained in sorted(basic.callback.items()):
                callback = chained.callback1 if isinstance(chained, CallChain) else chained
                if isinstance(callback, UnlessCallback):
                    strings = callback.scanner.terminals
                    unless[name] = {t.pattern.value: t.name for t in strings}
            lexer_numbers[id(basic)] = len(lexers)
            lexers.append({"order": [t.name for t in scanner.terminals], "unless": unless})
        state_lexer.append(lexer_numbers[id(basic)])
    return {
        "format": FORMAT,
        "key": key,
        "terminals": [[t.name, t.pattern.to_regexp()] for t in root.terminals],
        "flags": int(root.g_regex_flags),
        "ignore": sorted(root.ignore_types),
        "newline_types": sorted(root.newline_types),
        "start": numbers[start],
        "end": numbers[end],
        "state_lexer": state_lexer,
        "lexers": lexers,
        "actions": actions,
        "rules": [
            [
                rule.origin.name,
                rule.alias or rule.options.template_source or rule.origin.name,
                len(rule.expansion),
                _include(rule),
                bool(rule.options.expand1 and not rule.alias),
            ]
            for rule in rules
        ],
    }


def _include(rule: Any) -> list[list[Any]] | None:
    """Which children lark keeps for ``rule``, and which it inlines (None: all, as they are)."""
    expansion = rule.expansion
    keep_all = rule.options.keep_all_tokens
    include = [
        [i, not symbol.is_term and symbol.name.startswith("_")]
        for i, symbol in enumerate(expansion)
        if keep_all or not (symbol.is_term and symbol.filter_out)
    ]
    if len(include) < len(expansion) or any(expand for _, expand in include):
        return include
    return None


def text(data: Mapping[str, Any]) -> str:
    """The tables file's text for ``data`` (stable, one state or rule per line)."""
    lines = ["{"]
    items = list(data.items())
    for index, (name, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if isinstance(value, list) and value and name in ("actions", "lexers", "rules"):
            rows = ",\n".join("    " + json.dumps(row, sort_keys=True) for row in value)
            lines.append(f"  {json.dumps(name)}: [\n{rows}\n  ]{comma}")
        else:
            lines.append(f"  {json.dumps(name)}: {json.dumps(value, sort_keys=True)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"

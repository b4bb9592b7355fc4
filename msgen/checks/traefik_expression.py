"""msgen's own parser of Traefik's circuit breaker expressions.

Traefik hands the expression to vulcand/oxy, which parses it as a Go expression with
vulcand/predicate and type-checks it strictly. What it accepts:

    expr       := and ( "||" and )*
    and        := comparison ( "&&" comparison )*
    comparison := metric OP literal | "(" expr ")"
    metric     := NetworkErrorRatio()                       -> float
                | ResponseCodeRatio(int, int, int, int)     -> float
                | LatencyAtQuantileMS(float)                -> int (milliseconds)
                | "(" metric ")"
    OP         := ">" | "<" | ">=" | "<=" | "==" | "!="

A float metric compares only with a float literal (`0.5`, not `1`), an int metric only
with an int literal (`100`, not `100.0`): oxy rejects the other at config load, and
Traefik then disables the router at run time. There is no `!` and no negative literal.
The real Traefik confirms these rules in tests/test_traefik_real.py.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

# name -> (parameter types, result type)
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "NetworkErrorRatio": ((), "float"),
    "ResponseCodeRatio": (("int", "int", "int", "int"), "float"),
    "LatencyAtQuantileMS": (("float",), "int"),
}
COMPARISONS = (">=", "<=", "==", "!=", ">", "<")

_TOKEN = re.compile(
    r"\s*(?:(?P<float>(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)"
    r"|(?P<int>[0-9]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||>=|<=|==|!=|>|<)"
    r"|(?P<punct>[(),]))"
)


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


class ExpressionError(ValueError):
    """A breaker expression Traefik would reject; `column` is 1-based within the expression."""

    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Token:
    kind: str  # float, int, name, op, punct, end
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + len(text[position:]) - len(text[position:].lstrip()) + 1
            character = text[column - 1]
            extra = " (Traefik has no negation and no negative numbers)" if character in "!-" else ""
            raise ExpressionError(f"unexpected character {character!r}{extra}", column)
        kind = match.lastgroup or "end"
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        position = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    """Recursive descent over the tokens; every rule returns the type of what it parsed."""

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.current
        self.index += 1
        return token

    def expect(self, text: str, after: str) -> Token:
        if self.current.text != text:
            raise ExpressionError(f"expected {text!r} {after}, found {self._shown(self.current)}", self.current.column)
        return self.take()

    @staticmethod
    def _shown(token: Token) -> str:
        return "the end of the expression" if token.kind == "end" else repr(token.text)

    def parse(self) -> None:
        if self.current.kind == "end":
            raise ExpressionError("the expression is empty", 1)
        kind, column = self.disjunction()
        if self.current.kind != "end":
            raise ExpressionError(f"unexpected {self._shown(self.current)} after a complete condition", self.current.column)
        self.require_predicate(kind, column)

    def require_predicate(self, kind: str, column: int) -> None:
        if kind != "predicate":
            raise ExpressionError(f"{_a(kind)} value is not a condition: compare it, e.g. NetworkErrorRatio() > 0.5", column)

    def disjunction(self) -> tuple[str, int]:
        return self._joined("||", self.conjunction)

    def conjunction(self) -> tuple[str, int]:
        return self._joined("&&", self.comparison)

    def _joined(self, operator: str, operand) -> tuple[str, int]:
        kind, column = operand()
        while self.current.text == operator:
            self.require_predicate(kind, column)
            self.take()
            kind, column = operand()
            self.require_predicate(kind, column)
            kind = "predicate"
        return kind, column

    def comparison(self) -> tuple[str, int]:
        kind, column = self.operand()
        if self.current.text not in COMPARISONS:
            return kind, column
        operator = self.take()
        if kind not in ("int metric", "float metric"):
            raise ExpressionError(f"the left side of {operator.text} must be a metric function call, not {_a(kind)}", column)
        value_kind, value_column = self.operand()
        wanted = kind.split()[0]
        if value_kind in ("int metric", "float metric", "predicate"):
            raise ExpressionError(f"the right side of {operator.text} must be a number literal, not {_a(value_kind)}", value_column)
        if value_kind != wanted:
            example = "0.5" if wanted == "float" else "100"
            raise ExpressionError(
                f"{_a(wanted)} metric compares with {_a(wanted)} literal (e.g. {example}), not {_a(value_kind)}", value_column
            )
        if self.current.text in COMPARISONS:
            raise ExpressionError("comparisons cannot be chained; join them with && or ||", self.current.column)
        return "predicate", column

    def operand(self) -> tuple[str, int]:
        token = self.current
        if token.text == "(":
            self.take()
            kind, _ = self.disjunction()
            self.expect(")", "to close the parenthesis")
            return kind, token.column
        if token.kind in ("int", "float"):
            self.take()
            return token.kind, token.column
        if token.kind == "name":
            return self.call()
        raise ExpressionError(f"expected a metric function or a number, found {self._shown(token)}", token.column)

    def call(self) -> tuple[str, int]:
        name = self.take()
        if name.text not in FUNCTIONS:
            close = difflib.get_close_matches(name.text, FUNCTIONS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(FUNCTIONS)}"
            raise ExpressionError(f"unknown function {name.text!r}{hint}", name.column)
        parameters, result = FUNCTIONS[name.text]
        self.expect("(", f"after {name.text}")
        arguments: list[tuple[str, int]] = []
        while self.current.text != ")":
            if arguments:
                self.expect(",", "between arguments")
            argument = self.current
            if argument.kind not in ("int", "float"):
                raise ExpressionError(f"{name.text} takes number literals as arguments, found {self._shown(argument)}", argument.column)
            arguments.append((self.take().kind, argument.column))
        closing = self.expect(")", f"to close {name.text}(")
        self._check_arguments(name, parameters, arguments, closing.column)
        return f"{result} metric", name.column

    @staticmethod
    def _check_arguments(name: Token, parameters: tuple[str, ...], arguments: list[tuple[str, int]], end: int) -> None:
        signature = f"{name.text}({', '.join(parameters)})"
        if len(arguments) != len(parameters):
            raise ExpressionError(f"{signature} takes {len(parameters)} argument(s), got {len(arguments)}", end)
        for wanted, (kind, column) in zip(parameters, arguments, strict=True):
            if kind != wanted:
                raise ExpressionError(f"{signature}: {_a(kind)} argument where {_a(wanted)} is expected", column)


def check_expression(text: str) -> None:
    """Raise ExpressionError when Traefik would reject this circuit breaker expression."""
    _Parser(text).parse()


def expression_problem(text: str) -> ExpressionError | None:
    """The error Traefik would report for this expression, or None when it is well formed."""
    try:
        check_expression(text)
    except ExpressionError as error:
        return error
    return None

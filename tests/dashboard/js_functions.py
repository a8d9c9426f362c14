"""Where the functions of a JavaScript source start and end, for the static tests.

No JS parser ships with the test environment, so this masks what can hold braces
without opening a block (strings, template-literal text, comments, regex literals) and
matches braces in what is left. Enough for the dashboard's own code style; it is not a
general JavaScript parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# After one of these a '/' starts a regex literal, after anything else it divides.
_REGEX_AFTER = set("(,=:[!&|?{};+-*%<>~^") | {""}
# `function name(...) {`, `(...) => {`, and a method `name(...) {` at the start of a line.
_START = re.compile(r"\bfunction\b[^{;]*\{|=>\s*\{|^\s*(?:async\s+)?\w+\s*\([^)]*\)\s*\{", re.M)


def _skip_quoted(src: str, i: int, quote: str) -> int:
    """Index of the closing ``quote`` of the string opened at ``i``."""
    j = i + 1
    while src[j] != quote:
        j += 2 if src[j] == "\\" else 1
    return j


def _template_text_end(src: str, j: int) -> int:
    """Index of the backquote or ``${`` that ends template text starting at ``j``."""
    while src[j] != "`" and not src.startswith("${", j):
        j += 2 if src[j] == "\\" else 1
    return j


def _regex_end(src: str, i: int) -> int:
    j, in_class = i + 1, False
    while in_class or src[j] != "/":
        if src[j] == "\\":
            j += 1
        elif src[j] == "[":
            in_class = True
        elif src[j] == "]":
            in_class = False
        j += 1
    return j


def mask(src: str) -> str:
    """``src`` with the insides of strings, template text, comments and regexes blanked
    (newlines kept, so line numbers stay)."""
    out = list(src)
    templates: list[int] = []  # open `${` depth per template literal we are inside
    previous = ""

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    i = 0
    while i < len(src):
        c = src[i]
        if src.startswith("//", i) or src.startswith("/*", i):
            j = src.find("\n", i) if src[i + 1] == "/" else src.find("*/", i) + 2
            j = len(src) if j < 0 else j
            blank(i, j)
            i = j
            continue
        if c in "'\"":
            j = _skip_quoted(src, i, c)
            blank(i + 1, j)
            i, previous = j + 1, "x"
            continue
        if c == "`" or (c == "}" and templates and templates[-1] == 0):
            if c == "}":
                templates.pop()
            j = _template_text_end(src, i + 1)
            blank(i + 1, j)
            if src[j] == "`":
                i, previous = j + 1, "x"
            else:
                templates.append(0)
                i = j + 2
            continue
        if c == "/" and previous in _REGEX_AFTER:
            j = _regex_end(src, i)
            blank(i + 1, j)
            i, previous = j + 1, "x"
            continue
        if templates and c in "{}":
            templates[-1] += 1 if c == "{" else -1
        if not c.isspace():
            previous = c
        i += 1
    return "".join(out)


def functions(src: str) -> Iterator[tuple[int, int]]:
    """(first line, last line) of every function body in ``src``, 1-based."""
    masked = mask(src)
    for match in _START.finditer(masked):
        depth = 0
        for end in range(match.end() - 1, len(masked)):
            depth += {"{": 1, "}": -1}.get(masked[end], 0)
            if depth == 0:
                break
        yield masked.count("\n", 0, match.start()) + 1, masked.count("\n", 0, end) + 1

"""A minimal reader of protobuf text format, for the job config an export
embeds (proto/config.proto's JobConfig, printed by TextFormat::PrintToString).

It knows no schema: it parses the text into Messages (field name -> list of
values, a value being a nested Message or a scalar token), and the typed
getters apply the defaults the caller gives (config.py holds those of
config.proto). Accepted syntax: `name: value`, `name { ... }` or
`name: { ... }` or `name < ... >`, lists `name: [v, v]`, `#` comments,
strings in double or single quotes with C escapes (\\n \\t \\\\ \\" \\' \\NNN
octal \\xHH \\uXXXX ...) and adjacent strings concatenated, integers in
decimal, hex (0x) or octal (leading 0), floats with an optional f suffix,
inf and nan, identifiers (enum names, true/false). Pure Python.
"""

import re

import numpy as np


class TextFormatError(ValueError):
    """Text that is not protobuf text format; the message gives the line."""


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n\f\v]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)
                   (?:[eE][-+]?[0-9]+)?[fF]?))
  | (?P<ident>-?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}<>:\[\],;])
    """,
    re.VERBOSE | re.DOTALL,
)

_SIMPLE_ESCAPES = {
    "n": b"\n", "r": b"\r", "t": b"\t", '"': b'"', "'": b"'", "\\": b"\\",
    "a": b"\a", "b": b"\b", "f": b"\f", "v": b"\v", "?": b"?",
}


def _unescape(body, line):
    """The bytes of a quoted string's body (C escapes resolved)."""
    out = bytearray()
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        i += 1
        if i >= len(body):
            raise TextFormatError("line %d: string ends in a backslash" % line)
        c = body[i]
        if c in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[c]
            i += 1
        elif c in "01234567":
            m = re.match(r"[0-7]{1,3}", body[i:])
            out.append(int(m.group(0), 8) & 0xFF)
            i += len(m.group(0))
        elif c in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 1:])
            if not m:
                raise TextFormatError("line %d: \\x without hex digits" % line)
            out.append(int(m.group(0), 16))
            i += 1 + len(m.group(0))
        elif c in "uU":
            n = 4 if c == "u" else 8
            digits = body[i + 1:i + 1 + n]
            if not re.fullmatch(r"[0-9a-fA-F]{%d}" % n, digits):
                raise TextFormatError("line %d: bad \\%s escape" % (line, c))
            out += chr(int(digits, 16)).encode("utf-8", "surrogatepass")
            i += 1 + n
        else:
            raise TextFormatError("line %d: unknown escape \\%s" % (line, c))
    return bytes(out)


def _tokens(text):
    """(kind, value, line) tuples; strings are bytes."""
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise TextFormatError("line %d: unexpected %r" %
                                  (line, text[pos:pos + 20]))
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            yield kind, _unescape(value[1:-1], line), line
        elif kind != "space":
            yield kind, value, line
        line += value.count("\n") if kind in ("space", "string") else 0
        pos = m.end()


class Message:
    """A parsed message: fields in text order, each a list of values."""

    def __init__(self):
        self.fields = {}

    def _add(self, name, value):
        self.fields.setdefault(name, []).append(value)

    def has(self, name):
        return name in self.fields

    def _last(self, name):
        values = self.fields.get(name)
        return values[-1] if values else None

    def message(self, name):
        """The sub-message `name` (an empty one when absent)."""
        value = self._last(name)
        if value is None:
            return Message()
        if not isinstance(value, Message):
            raise TextFormatError("field '%s' is not a message" % name)
        return value

    def messages(self, name):
        values = self.fields.get(name, [])
        if any(not isinstance(v, Message) for v in values):
            raise TextFormatError("field '%s' is not a message" % name)
        return list(values)

    def _scalar(self, name, kinds):
        value = self._last(name)
        if value is None:
            return None
        if isinstance(value, Message) or value[0] not in kinds:
            raise TextFormatError("field '%s': %r is not a %s" %
                                  (name, value, "/".join(kinds)))
        return value[1]

    def int(self, name, default=0):
        text = self._scalar(name, ("number",))
        return default if text is None else parse_int(text, name)

    def ints(self, name):
        out = []
        for value in self.fields.get(name, []):
            if isinstance(value, Message) or value[0] != "number":
                raise TextFormatError("field '%s': %r is not an integer" %
                                      (name, value))
            out.append(parse_int(value[1], name))
        return out

    def float32(self, name, default=0.0):
        text = self._scalar(name, ("number", "ident"))
        return np.float32(default if text is None else parse_float(text, name))

    def float64(self, name, default=0.0):
        text = self._scalar(name, ("number", "ident"))
        return float(default if text is None else parse_float(text, name))

    def enum(self, name, default):
        """An enum's name (a number is returned as its int)."""
        value = self._last(name)
        if value is None:
            return default
        if isinstance(value, Message):
            raise TextFormatError("field '%s' is not an enum" % name)
        if value[0] == "number":
            return parse_int(value[1], name)
        if value[0] != "ident":
            raise TextFormatError("field '%s': %r is not an enum" %
                                  (name, value))
        return value[1]

    def string(self, name, default=""):
        raw = self._scalar(name, ("string",))
        if raw is None:
            return default
        return raw.decode("utf-8", "surrogateescape")

    def bool(self, name, default=False):
        value = self._last(name)
        if value is None:
            return default
        text = value[1] if not isinstance(value, Message) else None
        if text in ("true", "True", "t", "1"):
            return True
        if text in ("false", "False", "f", "0"):
            return False
        raise TextFormatError("field '%s': %r is not a bool" % (name, value))


def parse_int(text, name="value"):
    t = text[1:] if text.startswith("-") else text
    try:
        if t[:2] in ("0x", "0X"):
            v = int(t[2:], 16)
        elif len(t) > 1 and t[0] == "0" and t.isdigit():
            v = int(t, 8)
        elif t.isdigit():
            v = int(t)
        else:
            raise ValueError(text)
    except ValueError:
        raise TextFormatError("field '%s': %r is not an integer" %
                              (name, text)) from None
    return -v if text.startswith("-") else v


def parse_float(text, name="value"):
    t = text.lower()
    sign = -1.0 if t.startswith("-") else 1.0
    body = t.lstrip("-")
    if body in ("inf", "infinity", "inff", "infinityf"):
        return sign * float("inf")
    if body in ("nan", "nanf"):
        return float("nan")
    if body.endswith("f") and not body.startswith("0x"):
        body = body[:-1]
    try:
        return sign * float(body)
    except ValueError:
        raise TextFormatError("field '%s': %r is not a number" %
                              (name, text)) from None


def parse(text):
    """Parses protobuf text format into a Message; TextFormatError on bad
    syntax (with the line)."""
    tokens = list(_tokens(text))
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else (None, None, None)

    def parse_message(end):
        nonlocal pos
        msg = Message()
        while True:
            kind, value, line = peek()
            if kind is None:
                if end is None:
                    return msg
                raise TextFormatError("missing '%s' at the end" % end)
            if kind == "punct" and value == end:
                pos += 1
                return msg
            if kind != "ident" or value.startswith("-"):
                raise TextFormatError("line %d: expected a field name, got %r"
                                      % (line, value))
            name = value
            pos += 1
            kind, value, line = peek()
            colon = kind == "punct" and value == ":"
            if colon:
                pos += 1
                kind, value, line = peek()
            if kind == "punct" and value in ("{", "<"):
                pos += 1
                msg._add(name, parse_message("}" if value == "{" else ">"))
            elif colon and kind == "punct" and value == "[":
                pos += 1
                while not (peek()[0] == "punct" and peek()[1] == "]"):
                    if peek()[0] == "punct" and peek()[1] in ("{", "<"):
                        close = "}" if peek()[1] == "{" else ">"
                        pos += 1
                        msg._add(name, parse_message(close))
                    else:
                        msg._add(name, scalar())
                    if peek()[0] == "punct" and peek()[1] == ",":
                        pos += 1
                pos += 1
            elif colon:
                msg._add(name, scalar())
            else:
                raise TextFormatError("line %d: expected ':' or '{' after '%s'"
                                      % (line, name))
            if peek()[0] == "punct" and peek()[1] in (",", ";"):
                pos += 1

    def scalar():
        nonlocal pos
        kind, value, line = peek()
        if kind in ("number", "ident"):
            pos += 1
            return (kind, value)
        if kind == "string":
            parts = []
            while peek()[0] == "string":
                parts.append(peek()[1])
                pos += 1
            return ("string", b"".join(parts))
        raise TextFormatError("line %s: expected a value, got %r" %
                              (line, value))

    return parse_message(None)

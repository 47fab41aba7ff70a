"""Data lines to slot keys and dense features, as worker/data/'s parsers map
them (criteo_parser.h, slot_parser.h, movielens_parser.h, avazu_parser.h).

A parser's parse(line) takes one line (bytes, without its '\\n'; a trailing
'\\r' is ignored) and returns (values, counts, dense): the raw feature value
of each key in slot order (Python ints < 2^64), how many keys each slot has
(None: exactly one each) and the dense features (a list of float32, or
None). The key of raw value v in slot s is FeatureKey(hash_seed, s, v)
(hashing.py); batch.py computes keys for many lines at once. A malformed
line raises ValueError with the reason ("field 6 (I5): 'x1' is not an
integer"). Parsers are immutable once made.
"""

import datetime
import math
import re
from fractions import Fraction

import numpy as np

from .hashing import string_feature_value

_U64_MAX = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DECIMAL = re.compile(rb"[0-9]+")
_SIGNED = re.compile(rb"-?[0-9]+")
_HEX = re.compile(rb"[0-9a-fA-F]{1,16}")
_FLOAT = re.compile(rb"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def quote(value):
    """QuoteField: C-escaped in single quotes, cut after 40 bytes."""
    shown = value[:40]
    text = "".join(chr(c) if 32 <= c < 127 and c not in b"\\'\"" else
                   {9: "\\t", 10: "\\n", 13: "\\r", 92: "\\\\", 39: "\\'",
                    34: '\\"'}.get(c, "\\x%02x" % c) for c in shown)
    return "'%s%s'" % (text, "..." if len(value) > 40 else "")


def parse_decimal_uint64(s):
    """ParseDecimalUint64: digits only, < 2^64; else None."""
    if not _DECIMAL.fullmatch(s):
        return None
    v = int(s)
    return v if v <= _U64_MAX else None


def parse_decimal_int64(s):
    """ParseDecimalInt64: optional '-', digits, in int64; else None."""
    if not _SIGNED.fullmatch(s):
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


def parse_finite_float(s):
    """ParseFiniteFloat (std::from_chars to float): the decimal correctly
    rounded to float32, or None when malformed, not finite, or out of range
    (overflow, or a nonzero value that rounds to 0)."""
    if not _FLOAT.fullmatch(s):
        return None
    with np.errstate(over="ignore"):
        return _to_float32(s, float(s))


def _to_float32(s, d):
    f = np.float32(d)
    if not np.isfinite(f):
        return None
    if f == 0 and re.search(rb"[1-9]", re.split(rb"[eE]", s)[0]):
        return None  # underflow
    # float() rounds to double first; settle a double that lies exactly
    # halfway between two floats with the exact decimal value.
    if d != 0 and float(f) != d:
        other = np.nextafter(f, np.float32(np.inf if float(f) < d else -np.inf))
        mid = (float(f) + float(other)) / 2
        if mid == d:
            exact = Fraction(s.decode("ascii"))
            if exact != Fraction(mid):
                f = max(f, other) if exact > Fraction(mid) else min(f, other)
                if not np.isfinite(f):
                    return None
    return np.float32(f)


def _strip_cr(line):
    return line[:-1] if line.endswith(b"\r") else line


class CriteoParser:
    """label, I1..I13, C1..C26: TAB-separated, empty = missing. LOG_BUCKET:
    slots 0..12 the integers' buckets, 13..38 the categoricals; NORMALIZE:
    slots 0..25 the categoricals, 13 dense log(1 + max(v, 0))."""

    MISSING_CATEGORICAL = _U64_MAX
    MISSING_INTEGER = 1 << 62

    def __init__(self, normalize):
        self.normalize = normalize
        self.num_slots = 26 if normalize else 39
        self.num_dense = 13 if normalize else 0

    @staticmethod
    def _name(field):
        if field == 0:
            return "label"
        return "I%d" % field if field <= 13 else "C%d" % (field - 13)

    def _error(self, field, value, problem):
        return ValueError("field %d (%s): %s %s" %
                          (field + 1, self._name(field), quote(value), problem))

    @staticmethod
    def log_bucket(v):
        """v for v <= 2, else floor(ln(v)^2) (in double, as C++)."""
        if v <= 2:
            return v
        lg = math.log(float(v))
        return int(math.floor(lg * lg))

    def parse(self, line):
        fields = _strip_cr(line).split(b"\t")
        if len(fields) != 40:
            raise ValueError("expected 40 TAB-separated fields, got %d" %
                             len(fields))
        if fields[0] not in (b"0", b"1"):
            raise self._error(0, fields[0], "is not 0 or 1")
        values, dense = [], []
        for i in range(13):
            s = fields[1 + i]
            v = 0
            if s:
                if not _SIGNED.fullmatch(s):
                    raise self._error(1 + i, s, "is not an integer")
                v = int(s)
                if not _INT64_MIN <= v <= _INT64_MAX:
                    raise self._error(1 + i, s,
                                      "is out of the 64-bit integer range")
            if self.normalize:
                dense.append(np.float32(0.0) if not s or v <= 0 else
                             np.float32(math.log1p(float(v))))
            else:
                values.append(self.MISSING_INTEGER if not s else
                              self.log_bucket(v) & _U64_MAX)
        for c in range(26):
            s = fields[14 + c]
            if not s:
                values.append(self.MISSING_CATEGORICAL)
                continue
            if len(s) > 16:
                raise self._error(14 + c, s, "has more than 16 hex digits")
            if not _HEX.fullmatch(s):
                raise self._error(14 + c, s, "is not a hex string")
            values.append(int(s, 16))
        return values, None, dense if self.normalize else None


class SlotParser:
    """`label token ...` separated by spaces or TABs; a token is slot:key or
    d<i>:value. Keys of a slot keep their order in the line."""

    def __init__(self, num_slots, num_dense, max_features_per_line):
        self.num_slots = num_slots
        self.num_dense = num_dense
        self.max_features = max_features_per_line

    def parse(self, line):
        tokens = [t for t in re.split(rb"[ \t]+", _strip_cr(line)) if t]
        if not tokens:
            raise ValueError("empty line")
        if tokens[0] not in (b"0", b"1"):
            raise ValueError("label %s is not 0 or 1" % quote(tokens[0]))
        per_slot = [[] for _ in range(self.num_slots)]
        dense = [np.float32(0.0)] * self.num_dense
        dense_tokens = []  # (index, token number, text)
        for number, text in enumerate(tokens[1:], start=2):
            if number - 1 > self.max_features:
                raise ValueError("more than data.max_features_per_line = %d "
                                 "features (token %d %s)" %
                                 (self.max_features, number, quote(text)))
            left, colon, right = text.partition(b":")
            if not colon:
                raise ValueError("token %d %s: is not slot:key or "
                                 "d<index>:value" % (number, quote(text)))
            if left.startswith(b"d"):
                index = parse_decimal_uint64(left[1:])
                if index is None:
                    raise ValueError("token %d %s: dense index %s is not a "
                                     "decimal integer" %
                                     (number, quote(text), quote(left[1:])))
                if index >= self.num_dense:
                    raise ValueError("token %d %s: dense index %d is not in "
                                     "[0, num_dense = %d)" %
                                     (number, quote(text), index,
                                      self.num_dense))
                value = parse_finite_float(right)
                if value is None:
                    raise ValueError("token %d %s: value %s is not a finite "
                                     "number" % (number, quote(text),
                                                 quote(right)))
                dense_tokens.append((index, number, text))
                dense[index] = value
                continue
            slot = parse_decimal_uint64(left)
            if slot is None:
                raise ValueError("token %d %s: slot %s is not a decimal "
                                 "integer" % (number, quote(text), quote(left)))
            if slot >= self.num_slots:
                raise ValueError("token %d %s: slot %d is not in [0, "
                                 "num_slots = %d)" %
                                 (number, quote(text), slot, self.num_slots))
            key = parse_decimal_uint64(right)
            if key is None:
                raise ValueError("token %d %s: key %s is not a decimal integer "
                                 "in [0, 2^64)" %
                                 (number, quote(text), quote(right)))
            per_slot[slot].append(key)
        dense_tokens.sort()
        for prev, cur in zip(dense_tokens, dense_tokens[1:]):
            if prev[0] == cur[0]:
                raise ValueError("token %d %s: dense index %d was given "
                                 "before, in token %d" %
                                 (cur[1], quote(cur[2]), cur[0], prev[1]))
        values = [v for keys in per_slot for v in keys]
        return values, [len(k) for k in per_slot], dense


class AvazuParser:
    """24 comma-separated fields; slots: hour of day, day of the week
    (0 = Sunday), then C1..C21 by the FNV-1a of their text."""

    NAMES = ("id", "click", "hour", "C1", "banner_pos", "site_id",
             "site_domain", "site_category", "app_id", "app_domain",
             "app_category", "device_id", "device_ip", "device_model",
             "device_type", "device_conn_type", "C14", "C15", "C16", "C17",
             "C18", "C19", "C20", "C21")
    num_slots = 23
    num_dense = 0

    def _error(self, field, value, problem):
        return ValueError("field %d (%s): %s %s" %
                          (field + 1, self.NAMES[field], quote(value), problem))

    @staticmethod
    def is_header(line):
        if line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        return line.startswith(b"id,click,hour")

    def parse(self, line):
        fields = _strip_cr(line).split(b",")
        if len(fields) != 24:
            raise ValueError("expected 24 comma-separated fields, got %d" %
                             len(fields))
        if not fields[0]:
            raise self._error(0, fields[0], "is empty")
        if fields[1] not in (b"0", b"1"):
            raise self._error(1, fields[1], "is not 0 or 1")
        hour = fields[2]
        if len(hour) != 8 or not all(48 <= c <= 57 for c in hour):
            raise self._error(2, hour, "is not YYMMDDHH")
        yy, mm, dd, hh = (int(hour[i:i + 2]) for i in (0, 2, 4, 6))
        try:
            day = datetime.date(2000 + yy, mm, dd)
        except ValueError:
            day = None
        if day is None or hh > 23:
            raise self._error(2, hour, "is not a valid date and hour")
        values = [hh, day.isoweekday() % 7]
        values += [string_feature_value(f) for f in fields[3:]]
        return values, None, None


def make_parser(data):
    """The parser of a config's data section (config.Data). MOVIELENS reads
    its side files here (movielens.py)."""
    if data.format == "CRITEO":
        return CriteoParser(data.int_features == "NORMALIZE")
    if data.format == "SLOT":
        return SlotParser(data.num_slots, data.num_dense,
                          data.max_features_per_line)
    if data.format == "AVAZU":
        return AvazuParser()
    if data.format == "MOVIELENS":
        from .movielens import MovieLensParser
        return MovieLensParser(data.hash_seed, data.movielens_user_file,
                               data.movielens_item_file)
    raise ValueError("no parser for data format %s" % data.format)

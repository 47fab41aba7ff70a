"""MOVIELENS lines (worker/data/movielens_parser.h): `user item rating
timestamp`, TAB-separated. Slots: 0 user id, 1 item id; with the user file
(u.user: id|age|gender|occupation|zip) then age group, gender, occupation and
zip prefix; with the item file (u.item: id|title|release date|video release
date|URL|19 genre flags) then the genres (one key per flagged genre, none
when none is) and the release-year bucket. Raw values (see parsers.py):
ids as decimals, age group 1/18/25/35/45/50/56, gender M 0 F 1, occupation
and the zip's first 3 bytes by FNV-1a, genre index 0..18, year - year % 5
(0 when the release date is empty).
"""

from .hashing import string_feature_value
from .parsers import parse_decimal_int64, parse_decimal_uint64, quote

NUM_GENRES = 19


def age_group(age):
    for lower in (56, 50, 45, 35, 25, 18):
        if age >= lower:
            return lower
    return 1


def year_bucket(year):
    return year - year % 5  # year >= 1000: C++'s % agrees


def _field_error(field, name, value, problem):
    return ValueError("field %d (%s): %s %s" % (field, name, quote(value),
                                                 problem))


def _split(line, sep, count, layout):
    """The `count` fields of a line; ValueError naming the layout else."""
    f = line.split(sep)
    if len(f) != count:
        raise ValueError("expected %d %s-separated fields (%s), got %d" %
                         (count, "TAB" if sep == b"\t" else "'%s'" %
                          sep.decode(), layout, len(f)))
    return f


def _parse_id(s, field, name):
    ident = parse_decimal_uint64(s)
    if ident is None:
        raise _field_error(field, name, s, "is not a decimal integer")
    return ident


def _lines(path):
    """(line number, line without '\\n' and one trailing '\\r') of a file."""
    with open(path, "rb") as f:
        data = f.read()
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    for number, line in enumerate(parts, start=1):
        yield number, line[:-1] if line.endswith(b"\r") else line


class MovieLensParser:
    """Reads the side files that are given (paths, or None) once."""

    num_dense = 0

    def __init__(self, hash_seed, user_file, item_file):
        self.num_slots = 2
        self.user_slot = self.genre_slot = -1
        self.users, self.items = {}, {}
        self.user_file, self.item_file = user_file, item_file
        if user_file is not None:
            self.user_slot = self.num_slots
            self.num_slots += 4
        if item_file is not None:
            self.genre_slot = self.num_slots
            self.num_slots += 2
        if user_file is not None:
            self._load(user_file, self._parse_user, self.users, "user")
        if item_file is not None:
            self._load(item_file, self._parse_item, self.items, "item")

    @staticmethod
    def _load(path, parse, table, what):
        first = {}
        for number, line in _lines(path):
            try:
                ident, value = parse(line)
                if ident in first:
                    raise ValueError("%s %d is listed again (first on line %d)"
                                     % (what, ident, first[ident]))
            except ValueError as e:
                raise ValueError("%s:%d: %s" % (path, number, e)) from None
            first[ident] = number
            table[ident] = value
        if not table:
            raise ValueError("movielens %s file '%s' has no lines" %
                             (what, path))

    def _parse_user(self, line):
        f = _split(line, b"|", 5, "id|age|gender|occupation|zip")
        ident = _parse_id(f[0], 1, "user id")
        age = parse_decimal_int64(f[1])
        if age is None or not 0 <= age <= 150:
            raise _field_error(2, "age", f[1], "is not an integer in [0, 150]")
        if f[2] not in (b"M", b"F"):
            raise _field_error(3, "gender", f[2], "is not M or F")
        if not f[3]:
            raise _field_error(4, "occupation", f[3], "is empty")
        if not f[4]:
            raise _field_error(5, "zip code", f[4], "is empty")
        return ident, [age_group(age), 0 if f[2] == b"M" else 1,
                       string_feature_value(f[3]),
                       string_feature_value(f[4][:3])]

    def _parse_item(self, line):
        f = _split(line, b"|", 5 + NUM_GENRES, "id|title|release date|video "
                   "release date|IMDb URL|19 genre flags")
        ident = _parse_id(f[0], 1, "item id")
        year = 0
        date = f[2]
        if date:
            tail = date[-4:]
            parsed = parse_decimal_int64(tail) if len(date) >= 4 else None
            if (len(date) < 4 or (len(date) > 4 and date[-5:-4] != b"-") or
                    parsed is None or parsed < 1000):
                raise _field_error(3, "release date", date,
                                   "does not end in a 4-digit year")
            year = parsed
        genres = []
        for g in range(NUM_GENRES):
            flag = f[5 + g]
            if flag not in (b"0", b"1"):
                raise _field_error(6 + g, "genre %d" % g, flag,
                                   "is not 0 or 1")
            if flag == b"1":
                genres.append(g)
        return ident, (genres, 0 if year == 0 else year_bucket(year))

    def parse(self, line):
        if line.endswith(b"\r"):
            line = line[:-1]
        f = _split(line, b"\t", 4, "user_id, item_id, rating, timestamp")
        user = _parse_id(f[0], 1, "user_id")
        item = _parse_id(f[1], 2, "item_id")
        rating = parse_decimal_int64(f[2])
        if rating is None or not 1 <= rating <= 5:
            raise _field_error(3, "rating", f[2], "is not an integer in [1, 5]")
        if parse_decimal_int64(f[3]) is None:
            raise _field_error(4, "timestamp", f[3], "is not an integer")
        values, counts = [user, item], [1, 1]
        if self.user_slot >= 0:
            if user not in self.users:
                raise ValueError("user %d is not in the user file '%s'" %
                                 (user, self.user_file))
            values += self.users[user]
            counts += [1, 1, 1, 1]
        if self.genre_slot >= 0:
            if item not in self.items:
                raise ValueError("item %d is not in the item file '%s'" %
                                 (item, self.item_file))
            genres, year = self.items[item]
            values += genres + [year]
            counts += [len(genres), 1]
        return values, counts, None


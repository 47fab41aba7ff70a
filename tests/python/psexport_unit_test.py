#!/usr/bin/env python3
"""Unit tests of python/psexport's decoders, against values the C++ code
gives (pinned here from common/hash.h, common/initializer.h, std::from_chars
and the parsers' tests): the text-format reader, the config defaults, key
hashing and the initializer, the data parsers, checksummed files and how a
table applies rows and deletions.

    psexport_unit_test.py SOURCE_DIR
"""

import os
import struct
import sys
import tempfile
import unittest
import zlib

ROOT = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else ".")
sys.path.insert(0, os.path.join(ROOT, "python"))
try:
    import numpy as np
except ImportError:
    sys.exit("psexport_unit_test: numpy is missing for %s: "
             "scripts/install_deps.sh installs Debian's python3-numpy" %
             sys.executable)
from psexport import checksummed, hashing, textproto  # noqa: E402
from psexport.config import ConfigError, Initializer, JobConfig  # noqa: E402
from psexport.errors import ExportError  # noqa: E402
from psexport.export import Table  # noqa: E402
from psexport.parsers import (AvazuParser, CriteoParser, SlotParser,  # noqa
                              parse_finite_float)

U64 = np.uint64


class TextFormatTest(unittest.TestCase):
    def test_what_the_printer_writes(self):
        m = textproto.parse(
            'sparse_tables {\n  name: "a\\"b\\\\c\\303\\251\\n"\n  dim: 8\n'
            '  initializer {\n    type: NORMAL\n    scale: 1e-06\n  }\n}\n'
            'sparse_tables {\n  name: "t2"\n}\nmodel {\n  hidden_units: 64\n'
            '  hidden_units: 32\n  init_seed: 18446744073709551615\n}\n')
        tables = m.messages("sparse_tables")
        self.assertEqual(len(tables), 2)
        self.assertEqual(tables[0].string("name"), 'a"b\\c\u00e9\n')
        self.assertEqual(tables[0].int("dim"), 8)
        init = tables[0].message("initializer")
        self.assertEqual(init.enum("type", "UNIFORM"), "NORMAL")
        self.assertEqual(init.float32("scale"), np.float32(1e-6))
        self.assertEqual(tables[1].int("dim", 7), 7)
        self.assertEqual(m.message("model").ints("hidden_units"), [64, 32])
        self.assertEqual(m.message("model").int("init_seed"), 2 ** 64 - 1)

    def test_other_syntax(self):
        m = textproto.parse(
            "# comment\nmodel: < wide_slots: [1, 0x2, 010] type: 5; >\n"
            "data { format: AVAZU, name: 'x' \"y\" hash_seed: -3 }\n"
            "a { b { c: inf d: -nan e: 2.5f f: true } }")
        self.assertEqual(m.message("model").ints("wide_slots"), [1, 2, 8])
        self.assertEqual(m.message("model").enum("type", "DNN"), 5)
        self.assertEqual(m.message("data").string("name"), "xy")
        self.assertEqual(m.message("data").int("hash_seed"), -3)
        b = m.message("a").message("b")
        self.assertEqual(b.float64("c"), float("inf"))
        self.assertTrue(np.isnan(b.float64("d")))
        self.assertEqual(b.float32("e"), np.float32(2.5))
        self.assertTrue(b.bool("f"))

    def test_errors_name_the_line(self):
        for text, needle in (("a {\n b: 1\n", "missing '}'"),
                             ("a: 1\nb 2", "line 2"),
                             ("a: \"x\\q\"", "unknown escape"),
                             ("a: @", "line 1")):
            with self.assertRaises(textproto.TextFormatError) as e:
                textproto.parse(text)
            self.assertIn(needle, str(e.exception))


class ConfigTest(unittest.TestCase):
    def test_defaults(self):
        c = JobConfig('sparse_tables { name: "e" dim: 8 }\n'
                      'model { sparse_table: "e" }')
        c.validate()
        self.assertEqual((c.model.type, c.model.pooling, c.model.activation),
                         ("DNN", "SUM", "RELU"))
        self.assertEqual((c.model.init_seed, c.model.cross_layers), (1, 2))
        init = c.sparse_tables[0].initializer
        self.assertEqual((init.type, init.scale), ("UNIFORM",
                                                   np.float32(0.01)))
        self.assertEqual((c.data.format, c.data.int_features,
                          c.data.hash_seed), ("CRITEO", "LOG_BUCKET", 0))
        self.assertEqual(c.input_shape(), (39, 0))

    def test_input_shapes(self):
        def shape(data):
            return JobConfig("data { %s }" % data).input_shape()
        self.assertEqual(shape("int_features: NORMALIZE"), (26, 13))
        self.assertEqual(shape("format: SLOT num_slots: 4 num_dense: 2"),
                         (4, 2))
        self.assertEqual(shape("format: AVAZU"), (23, 0))
        self.assertEqual(shape("format: MOVIELENS"), (2, 0))
        self.assertEqual(shape('format: MOVIELENS movielens_item_file: "i"'),
                         (4, 0))

    def test_refuses_what_cannot_be_scored(self):
        for text in ('sparse_tables { name: "e" dim: 2 } '
                     'model { type: LR sparse_table: "e" }',
                     'sparse_tables { name: "e" dim: 1 } '
                     'model { type: FM sparse_table: "e" }',
                     'sparse_tables { name: "e" dim: 4 } '
                     'model { sparse_table: "f" }'):
            with self.assertRaises(ConfigError):
                JobConfig(text).validate()


class HashingTest(unittest.TestCase):
    # Pinned from common/hash.h and common/initializer.h (and tests/common/
    # hash_test.cc, tests/worker/data/parser_util_test.cc).
    def test_keys(self):
        self.assertEqual(int(hashing.mix64(0)), 0xE220A8397B1DCDAF)
        self.assertEqual(int(hashing.mix64(1)), 0x910A2DEC89025CC1)
        self.assertEqual(int(hashing.feature_key(0, 7, 0x0123456789ABCDEF)),
                         0x7CA4857A3176CD18)
        self.assertEqual(int(hashing.feature_key(42, 38, 2 ** 64 - 1)),
                         0xAA9C1DDD4716828D)
        self.assertEqual(int(hashing.feature_key(5, 0, 1 << 62)),
                         0xFD2BF9E7053A252D)
        self.assertEqual(hashing.string_feature_value(b""), 0xCBF29CE484222325)
        self.assertEqual(hashing.string_feature_value(b"foobar"),
                         0x85944171F73967E8)
        keys = hashing.feature_key(0, 7, np.array([0x0123456789ABCDEF, 0],
                                                  dtype=U64))
        self.assertEqual(int(keys[0]), 0x7CA4857A3176CD18)

    def test_initializer(self):
        self.assertEqual("%.9g" % hashing.hash_uniform(1, 123, 4),
                         "0.975965202")
        uniform = Initializer(textproto.parse("scale: 0.01"))
        normal = Initializer(textproto.parse("type: NORMAL scale: 0.05"))
        zeros = Initializer(textproto.parse("type: ZEROS"))
        u = hashing.initial_rows(uniform, 1, [0xDEADBEEF], 4)[0]
        n = hashing.initial_rows(normal, 7, [0xDEADBEEF], 4)[0]
        self.assertEqual(["%.9g" % v for v in u],
                         ["0.00789038651", "0.000616022327", "-0.00472496636",
                          "-0.000381237274"])
        self.assertEqual(["%.9g" % v for v in n],
                         ["0.0392409787", "-0.0848681331", "-0.0609567538",
                          "0.0305714272"])
        self.assertFalse(hashing.initial_rows(zeros, 1, [1, 2], 3).any())


class ParserTest(unittest.TestCase):
    def test_finite_float_as_from_chars(self):
        # What std::from_chars(float) + isfinite give (GCC 12).
        cases = {b"1e-50": None, b"1e-40": "9.9999461e-41", b"7e-46": None,
                 b"1e-45": "1.40129846e-45", b"3.40282356e38": "3.40282347e+38",
                 b"3.4028236e38": None, b"1e39": None, b".5": "0.5",
                 b"5.": "5", b"-0": "-0", b"+1": None, b"0x10": None,
                 b"1e": None, b"1e+5": "100000", b"nan": None, b"inf": None,
                 b"1.5f": None, b" 1": None, b"00012": "12", b"1_0": None,
                 # Halfway between two floats in double, not in decimal.
                 b"1.000000059604644776257986737988403547205962240695953369"
                 b"140625": "1.00000012",
                 b"1.000000178813934325304513262011596452794037759304046630"
                 b"859375": "1.00000012"}
        for text, want in cases.items():
            got = parse_finite_float(text)
            self.assertEqual(None if got is None else "%.9g" % got, want, text)

    def test_criteo(self):
        ints = [b"", b"-5", b"0", b"3", b"100", b"9223372036854775807"] + \
            [b"1"] * 7
        cats = [b"", b"0123456789abcdef", b"FFFFFFFFFFFFFFFF"] + [b"a"] * 23
        line = b"\t".join([b"1"] + ints + cats) + b"\r"
        values, counts, dense = CriteoParser(False).parse(line)
        self.assertIsNone(counts)
        self.assertIsNone(dense)
        self.assertEqual(values[:6], [1 << 62, 2 ** 64 - 5, 0, 1, 21, 1906])
        self.assertEqual(values[13:16], [2 ** 64 - 1, 0x0123456789ABCDEF,
                                         2 ** 64 - 1])
        values, _, dense = CriteoParser(True).parse(line)
        self.assertEqual(len(values), 26)
        self.assertEqual(dense[:5], [0, 0, 0, np.float32(np.log1p(3.0)),
                                     np.float32(np.log1p(100.0))])
        for fields, needle in (
                (["2"] + [""] * 39, "field 1 (label): '2' is not 0 or 1"),
                (["0", "+1"] + [""] * 38, "field 2 (I1): '+1' is not an int"),
                (["0", " 1"] + [""] * 38, "is not an integer"),
                (["0", "1_0"] + [""] * 38, "is not an integer"),
                (["0", "9223372036854775808"] + [""] * 38, "64-bit integer"),
                (["0"] + [""] * 13 + ["1" * 17] + [""] * 25, "16 hex digits"),
                (["0"] + [""] * 13 + ["0x1"] + [""] * 25,
                 "field 15 (C1): '0x1' is not a hex string"),
                (["0"] * 39, "expected 40 TAB-separated fields, got 39")):
            with self.assertRaises(ValueError) as e:
                CriteoParser(False).parse("\t".join(fields).encode())
            self.assertIn(needle, str(e.exception))

    def test_slot(self):
        p = SlotParser(num_slots=3, num_dense=2, max_features_per_line=6)
        values, counts, dense = p.parse(b"1 2:9\t0:5  d1:0.5 2:7 0:3 \r")
        self.assertEqual(values, [5, 3, 9, 7])  # by slot, line order within
        self.assertEqual(counts, [2, 0, 2])
        self.assertEqual(dense, [0, np.float32(0.5)])
        for line, needle in ((b"", "empty line"), (b"2 0:1", "label '2'"),
                             (b"1 d0:1 d0:2", "dense index 0 was given before"),
                             (b"1 3:1", "slot 3 is not in [0, num_slots = 3)"),
                             (b"1 0:-1", "key '-1' is not a decimal"),
                             (b"1 d2:1", "dense index 2 is not in"),
                             (b"1 d0:inf", "value 'inf' is not a finite"),
                             (b"1 0:1 0:1 0:1 0:1 0:1 0:1 0:1",
                              "max_features_per_line = 6")):
            with self.assertRaises(ValueError) as e:
                p.parse(line)
            self.assertIn(needle, str(e.exception))

    def test_avazu(self):
        p = AvazuParser()
        fields = [b"7", b"1", b"14102113"] + [b"x"] * 20 + [b""]
        values, _, _ = p.parse(b",".join(fields))
        self.assertEqual(values[:3], [13, 2, hashing.string_feature_value(
            b"x")])  # 2014-10-21 was a Tuesday
        self.assertEqual(values[-1], 0xCBF29CE484222325)
        self.assertTrue(p.is_header(b"\xef\xbb\xbfid,click,hour,C1"))
        for hour in (b"14113113", b"14102124", b"1410211"):
            fields[2] = hour
            with self.assertRaises(ValueError):
                p.parse(b",".join(fields))


class ChecksummedTest(unittest.TestCase):
    def write(self, payload, magic=b"PSEXPORT", version=1, cut=0, flip=None):
        header = magic + struct.pack("<II", version, 0)
        crc = zlib.crc32(header + payload)
        data = bytearray(header + payload +
                         struct.pack("<QII", len(payload), crc, 0x4B435350))
        if flip is not None:
            data[flip] ^= 1
        f = tempfile.NamedTemporaryFile(delete=False, suffix=".psx")
        f.write(bytes(data[:len(data) - cut]))
        f.close()
        self.addCleanup(os.remove, f.name)
        return f.name

    def test_reads_a_good_file(self):
        path = self.write(b"hello")
        self.assertEqual(bytes(checksummed.read_payload(path, b"PSEXPORT", 1)),
                         b"hello")

    def test_errors_name_the_file(self):
        for kw, code, needle in (
                (dict(cut=3), "DATA_LOSS", "no valid footer"),
                (dict(flip=18), "DATA_LOSS", "checksum mismatch"),
                (dict(magic=b"PSDENSE1"), "INVALID_ARGUMENT",
                 "is not a 'PSEXPORT' file"),
                (dict(version=2), "FAILED_PRECONDITION", "format version 2")):
            path = self.write(b"payload", **kw)
            with self.assertRaises(ExportError) as e:
                checksummed.read_payload(path, b"PSEXPORT", 1)
            self.assertEqual(e.exception.code, code)
            self.assertIn(path, str(e.exception))
            self.assertIn(needle, str(e.exception))


class TableTest(unittest.TestCase):
    def test_rows_then_deletions(self):
        t = Table(2)
        t.apply(np.array([5, 3, 5], dtype=U64),
                np.array([[1, 1], [2, 2], [3, 3]], dtype=np.float32),
                np.zeros(0, dtype=U64))
        self.assertEqual(t.keys.tolist(), [3, 5])
        self.assertEqual(t.rows.tolist(), [[2, 2], [3, 3]])  # the last 5
        t.apply(np.array([9, 3], dtype=U64),
                np.array([[4, 4], [5, 5]], dtype=np.float32),
                np.array([5, 9, 11], dtype=U64))
        self.assertEqual(t.keys.tolist(), [3])
        self.assertEqual(t.rows.tolist(), [[5, 5]])


if __name__ == "__main__":
    unittest.main()

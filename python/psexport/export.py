"""Reading `.psx` exports (common/export_format.h): a FULL export, DELTAs
over it, and a folder of both, as `ps_worker --predict` loads them.

A loaded ExportedModel holds, per sparse table of its config, the keys
(sorted uint64) and their rows (float32, one row of `dim` floats per key),
the flat dense vector (float32) and the config. lookup() gives the row of a
key the export lacks from the table's initializer, as the servers would
have served it.
"""

import os
import re
import struct

import numpy as np

from . import hashing
from .checksummed import PayloadReader, peek_payload, read_payload
from .config import ConfigError, JobConfig
from .errors import (DATA_LOSS, FAILED_PRECONDITION, NOT_FOUND, ExportError)
from .model import make_spec
from .textproto import TextFormatError

MAGIC = b"PSEXPORT"
VERSION = 1
FULL, DELTA = 1, 2
MAX_CONFIG_BYTES = 64 << 20
MAX_NAME_BYTES = 4096
_FILE_NAME = re.compile(r"export-([0-9]{10})\.psx")


def export_file_name(step):
    return "export-%010d.psx" % step


class Table:
    """One sparse table's rows: keys ascending, rows[i] the row of keys[i]."""

    def __init__(self, dim):
        self.dim = dim
        self.keys = np.zeros(0, dtype=np.uint64)
        self.rows = np.zeros((0, dim), dtype=np.float32)

    def apply(self, keys, rows, deleted):
        """Sets the rows of `keys` (a key given twice: the last row) and then
        removes the keys in `deleted`, as the C++ reader does."""
        if keys.size:
            # The last occurrence of each key.
            rev_keys = keys[::-1]
            uniq, first = np.unique(rev_keys, return_index=True)
            new_rows = rows[::-1][first]
            keep = ~np.isin(self.keys, uniq, assume_unique=True)
            all_keys = np.concatenate([self.keys[keep], uniq])
            all_rows = np.concatenate([self.rows[keep], new_rows])
            order = np.argsort(all_keys, kind="stable")
            self.keys, self.rows = all_keys[order], all_rows[order]
        if deleted.size:
            keep = ~np.isin(self.keys, deleted)
            self.keys, self.rows = self.keys[keep], self.rows[keep]

    def copy(self):
        t = Table(self.dim)
        t.keys, t.rows = self.keys.copy(), self.rows.copy()
        return t


def _file_kind(path):
    kind = struct.unpack("<Q", peek_payload(path, MAGIC, VERSION, 8))[0]
    if kind not in (FULL, DELTA):
        raise ExportError(DATA_LOSS, "'%s': unknown export kind %d" %
                          (path, kind))
    return kind


def _parse_config(text, path):
    try:
        config = JobConfig(text.decode("utf-8", "surrogateescape"))
    except TextFormatError as e:
        raise ExportError(DATA_LOSS, "'%s': its job config does not parse: %s"
                          % (path, e)) from None
    except ConfigError as e:
        raise ExportError(FAILED_PRECONDITION,
                          "'%s': its job config does not validate: %s" %
                          (path, e)) from None
    try:
        config.validate()
    except ConfigError as e:
        raise ExportError(FAILED_PRECONDITION,
                          "'%s': its job config does not validate: %s" %
                          (path, e)) from None
    return config


class ExportedModel:
    """A model loaded from exports. Use load_file / load_dir."""

    def __init__(self):
        self.config = None
        self.step = 0
        self.tables = []  # one Table per config.sparse_tables
        self.dense = np.zeros(0, dtype=np.float32)
        self.files = []  # the files read, in order

    @staticmethod
    def load_file(path):
        """A FULL export file; FAILED_PRECONDITION for a DELTA."""
        model = ExportedModel()
        model._read(path, allow_delta=False)
        return model

    @staticmethod
    def load_dir(directory):
        """The newest FULL export of `directory` with the DELTAs after it
        applied in step order (files other than export-<10 digits>.psx are
        ignored). NOT_FOUND when there is no FULL export."""
        try:
            names = os.listdir(directory)
        except OSError as e:
            raise ExportError(NOT_FOUND, "cannot list export folder '%s': %s"
                              % (directory, e.strerror or e)) from None
        files = sorted((int(m.group(1)), os.path.join(directory, n))
                       for n in names for m in [_FILE_NAME.fullmatch(n)] if m)
        for i in range(len(files) - 1, -1, -1):
            if _file_kind(files[i][1]) != FULL:
                continue
            model = ExportedModel.load_file(files[i][1])
            for _, path in files[i + 1:]:
                model.apply_delta(path)
            return model
        raise ExportError(NOT_FOUND, "export folder '%s' holds no FULL export "
                          "(export-*.psx)" % directory)

    def apply_delta(self, path):
        """Applies a DELTA file; FAILED_PRECONDITION when its base step is not
        this model's step. The model is unchanged unless it succeeds."""
        nxt = ExportedModel()
        nxt.config, nxt.step, nxt.dense = self.config, self.step, self.dense
        nxt.tables = [t.copy() for t in self.tables]
        nxt.files = list(self.files)
        nxt._read(path, allow_delta=True)
        self.__dict__.update(nxt.__dict__)

    def table_index(self, name):
        return self.config.table_index(name)

    def row(self, table, key):
        """The exported row of `key` or None."""
        t = self.tables[table]
        i = np.searchsorted(t.keys, np.uint64(key))
        if i < t.keys.size and t.keys[i] == np.uint64(key):
            return t.rows[i]
        return None

    def lookup(self, table, keys):
        """The rows of `keys` (len(keys) x dim float32): the export's, or the
        table's initializer values for a key it lacks. Returns (rows, number
        found)."""
        t = self.tables[table]
        keys = np.asarray(keys, dtype=np.uint64)
        at = np.searchsorted(t.keys, keys)
        at_ok = np.minimum(at, max(t.keys.size - 1, 0))
        found = (at < t.keys.size) & (t.keys[at_ok] == keys) if t.keys.size \
            else np.zeros(keys.shape, dtype=bool)
        out = np.empty((keys.size, t.dim), dtype=np.float32)
        out[found] = t.rows[at_ok[found]]
        missing = ~found
        if missing.any():
            spec = self.config.sparse_tables[table]
            out[missing] = hashing.initial_rows(
                spec.initializer, self.config.model.init_seed, keys[missing],
                t.dim)
        return out, int(found.sum())

    def _read(self, path, allow_delta):
        r = PayloadReader(path, read_payload(path, MAGIC, VERSION))
        kind, step, base_step = r.u64(), r.u64(), r.u64()
        text = r.string(MAX_CONFIG_BYTES)
        if kind not in (FULL, DELTA):
            raise ExportError(DATA_LOSS, "'%s': unknown export kind %d" %
                              (path, kind))
        delta = kind == DELTA
        if delta and not allow_delta:
            raise ExportError(FAILED_PRECONDITION,
                              "'%s' is a DELTA export (over step %d); load its "
                              "FULL base first" % (path, base_step))
        if delta and base_step != self.step:
            raise ExportError(FAILED_PRECONDITION,
                              "'%s' is a DELTA over step %d, but the model "
                              "loaded is of step %d" %
                              (path, base_step, self.step))
        config = _parse_config(text, path)
        if not delta:
            self.tables = [Table(t.dim) for t in config.sparse_tables]
        elif len(config.sparse_tables) != len(self.config.sparse_tables):
            raise ExportError(FAILED_PRECONDITION,
                              "'%s': the delta's config has %d sparse tables, "
                              "its base %d" % (path, len(config.sparse_tables),
                                               len(self.config.sparse_tables)))
        else:
            for t, (mine, base) in enumerate(zip(config.sparse_tables,
                                                 self.config.sparse_tables)):
                if mine.name != base.name or mine.dim != self.tables[t].dim:
                    raise ExportError(
                        FAILED_PRECONDITION,
                        "'%s': the delta's sparse table %d is '%s' of dim %d, "
                        "its base's is '%s' of dim %d" %
                        (path, t, mine.name, mine.dim, base.name,
                         self.tables[t].dim))
        self.config, self.step = config, step
        while r.u64() != 0:
            self._read_table(r, path)
        dense_size = r.u64()
        want = make_spec(config).dense_size
        if dense_size != want:
            raise ExportError(DATA_LOSS, "'%s': %d dense parameters, its model "
                              "has %d" % (path, dense_size, want))
        if dense_size > r.remaining() // 4:
            raise ExportError(DATA_LOSS,
                              "'%s' is corrupt: its %d dense parameters do not "
                              "fit in the rest of the file (%d bytes)" %
                              (path, dense_size, r.remaining()))
        dense = np.frombuffer(r.read(4 * dense_size), dtype="<f4")
        r.finish()
        self.dense = dense.astype(np.float32)
        self.files.append(path)

    def _read_table(self, r, path):
        name = r.string(MAX_NAME_BYTES).decode("utf-8", "surrogateescape")
        dim = r.u64()
        t = self.config.table_index(name)
        if t < 0 or self.tables[t].dim != dim:
            raise ExportError(
                FAILED_PRECONDITION, "'%s': table '%s' of dim %d %s" %
                (path, name, dim, "is not in its job config" if t < 0 else
                 "has dim %d in its config" % self.tables[t].dim))
        row_dtype = np.dtype([("key", "<u8"), ("row", "<f4", (dim,))])
        keys, rows = [], []
        while True:
            n = r.u64()
            if n == 0:
                break
            if n > r.remaining() // row_dtype.itemsize:
                raise ExportError(DATA_LOSS,
                                  "'%s' is corrupt: a block of %d rows of table "
                                  "'%s' does not fit in the rest of the file" %
                                  (path, n, name))
            block = np.frombuffer(r.read(n * row_dtype.itemsize),
                                  dtype=row_dtype)
            keys.append(block["key"].astype(np.uint64))
            rows.append(block["row"].astype(np.float32).reshape(n, dim))
        deleted = r.u64()
        if deleted > r.remaining() // 8:
            raise ExportError(DATA_LOSS,
                              "'%s' is corrupt: %d deleted keys of table '%s' "
                              "do not fit in the rest of the file" %
                              (path, deleted, name))
        gone = np.frombuffer(r.read(8 * deleted), dtype="<u8").astype(
            np.uint64)
        self.tables[t].apply(
            np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64),
            np.concatenate(rows) if rows else np.zeros((0, dim), np.float32),
            gone)

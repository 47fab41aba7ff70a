"""Scoring a data file with an exported model: what `ps_worker --predict`
does (worker/model/predict.h), in numpy.

Lines are read in order (a `.gz` file decompressed); each line gets one
probability, except a header line (AVAZU: a line that does not parse and
starts "id,click,hour"). A malformed line, or one longer than the config's
data.max_line_bytes, is a DataError "file:line: reason": a skipped line
would misalign the output. Lines held out by data.eval_holdout_fraction are
scored too.
"""

import gzip
import os

import numpy as np

from . import hashing
from .errors import DataError
from .model import forward, make_spec, pool
from .parsers import make_parser

BATCH = 1024


def read_lines(path, max_line_bytes):
    """(line number, line bytes without '\\n') of a plain or .gz file."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if line.endswith(b"\n"):
                line = line[:-1]
            if len(line) > max_line_bytes:
                raise DataError("%s:%d: line is longer than "
                                "data.max_line_bytes = %d bytes" %
                                (path, number, max_line_bytes))
            yield number, line


class Scorer:
    """A model and its parser, ready to score lines."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.spec = make_spec(self.config)
        self.parser = make_parser(self.config.data)
        seed = self.config.data.hash_seed
        self.slot_bases = np.array(
            [int(hashing.slot_base(seed, s)) for s in range(self.spec.num_slots)],
            dtype=np.uint64)

    def parse(self, lines, path):
        """Parsed examples of (number, line) pairs: a list of (values, counts,
        dense), header lines left out."""
        out = []
        is_header = getattr(self.parser, "is_header", None)
        for number, line in lines:
            try:
                out.append(self.parser.parse(line))
            except ValueError as e:
                if is_header is not None and is_header(line):
                    continue
                raise DataError("%s:%d: %s" % (path, number, e)) from None
        return out

    def keys(self, examples):
        """The sparse keys of parsed examples in slot order (uint64) and the
        offsets of each example's slots into them (batch * num_slots + 1)."""
        n, slots = len(examples), self.spec.num_slots
        counts = np.empty((n, slots), dtype=np.int64)
        values = []
        for i, (v, c, _) in enumerate(examples):
            counts[i] = 1 if c is None else c
            values.extend(v)
        offsets = np.zeros(n * slots + 1, dtype=np.int64)
        np.cumsum(counts.reshape(-1), out=offsets[1:])
        slot_of_key = np.repeat(np.tile(np.arange(slots), n),
                                counts.reshape(-1))
        raw = np.array(values, dtype=np.uint64)
        return hashing.mix64(self.slot_bases[slot_of_key] ^ raw), offsets

    def score(self, examples):
        """The probabilities (float32) of parsed examples."""
        spec = self.spec
        keys, offsets = self.keys(examples)
        n, slots = len(examples), spec.num_slots
        starts = offsets[:-1].reshape(n, slots)
        counts = np.diff(offsets).reshape(n, slots)
        pooled = np.zeros((n, spec.pooled_width), dtype=np.float32)
        for table in spec.tables:
            # The keys of the table's slots, example by example, and the
            # offsets of each (example, slot) among them.
            cnt = counts[:, table.slots].reshape(-1)
            sub = np.zeros(cnt.size + 1, dtype=np.int64)
            np.cumsum(cnt, out=sub[1:])
            at = (np.repeat(starts[:, table.slots].reshape(-1) - sub[:-1], cnt)
                  + np.arange(sub[-1]))
            unique, index = np.unique(keys[at], return_inverse=True)
            rows, _ = self.model.lookup(table.table_id, unique)
            part = pool(rows, index.reshape(-1), sub, len(table.slots),
                        spec.pooling)
            begin = table.pooled_offset
            pooled[:, begin:begin + part.shape[1] * part.shape[2]] = \
                part.reshape(n, -1)
        dense = np.zeros((len(examples), spec.num_dense), dtype=np.float32)
        if spec.num_dense:
            dense[:] = [d for _, _, d in examples]
        return forward(spec, pooled, dense, self.model.dense)

    def score_lines(self, lines, path="<lines>"):
        return self.score(self.parse(lines, path))


def predict_file(model, data_file, output_file, batch_size=BATCH):
    """Writes one probability per scored line of data_file ("%.9g", the exact
    float) to output_file, replaced atomically once every line is scored.
    Returns the number of lines scored."""
    scorer = Scorer(model)
    tmp = output_file + ".tmp"
    scored = 0
    try:
        with open(tmp, "w") as out:
            pending = []
            lines = read_lines(data_file, scorer.config.data.max_line_bytes)
            for item in lines:
                pending.append(item)
                if len(pending) == batch_size:
                    scored += _write(out, scorer, pending, data_file)
                    pending = []
            if pending:
                scored += _write(out, scorer, pending, data_file)
        os.replace(tmp, output_file)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return scored


def _write(out, scorer, pending, path):
    examples = scorer.parse(pending, path)
    if not examples:
        return 0
    probs = scorer.score(examples)
    out.write("".join("%.9g\n" % p for p in probs.tolist()))
    return len(examples)

"""The parts of a JobConfig (proto/config.proto) that scoring needs, read
from the text an export embeds, with config.proto's defaults.

Only what decides the predictions is read: the sparse tables' names, dims
and initializers; the model (type, table, hidden units, pooling,
activation, init seed, wide/deep slots, cross layers); the data format and
what shapes its keys (int_features, hash_seed, num_slots, num_dense,
max_features_per_line, max_line_bytes, the MovieLens side files).
"""

from . import textproto

# config.proto's defaults of the fields read here.
MODEL_TYPES = ("LR", "DNN", "FM", "WIDE_DEEP", "DEEPFM", "DCN", "FWFM")
FORMATS = ("CRITEO", "SLOT", "MOVIELENS", "AVAZU")
_ENUM_NUMBERS = {
    "model.type": dict(enumerate(
        ("TYPE_UNSPECIFIED",) + MODEL_TYPES)),
    "model.pooling": {0: "POOLING_UNSPECIFIED", 1: "SUM", 2: "MEAN",
                      3: "SQRTN"},
    "model.activation": {0: "ACTIVATION_UNSPECIFIED", 1: "RELU", 2: "TANH",
                         3: "SIGMOID"},
    "data.format": dict(enumerate(("FORMAT_UNSPECIFIED",) + FORMATS)),
    "data.int_features": {0: "INT_FEATURES_UNSPECIFIED", 1: "LOG_BUCKET",
                          2: "NORMALIZE"},
    "initializer.type": {0: "TYPE_UNSPECIFIED", 1: "ZEROS", 2: "UNIFORM",
                         3: "NORMAL"},
}


class ConfigError(ValueError):
    """A config this package cannot score with (named field and value)."""


def _enum(msg, name, default, key):
    value = msg.enum(name, default)
    if isinstance(value, int):
        value = _ENUM_NUMBERS[key].get(value, str(value))
    allowed = set(_ENUM_NUMBERS[key].values())
    if value not in allowed:
        raise ConfigError("%s: unknown value %s" % (key, value))
    return value


class Initializer:
    def __init__(self, msg):
        self.type = _enum(msg, "type", "UNIFORM", "initializer.type")
        self.scale = msg.float32("scale", 0.01)


class SparseTable:
    def __init__(self, msg):
        self.name = msg.string("name")
        self.dim = msg.int("dim")
        self.initializer = Initializer(msg.message("initializer"))


class Model:
    def __init__(self, msg):
        self.type = _enum(msg, "type", "DNN", "model.type")
        self.sparse_table = msg.string("sparse_table")
        self.hidden_units = msg.ints("hidden_units")
        self.pooling = _enum(msg, "pooling", "SUM", "model.pooling")
        self.activation = _enum(msg, "activation", "RELU", "model.activation")
        self.init_seed = msg.int("init_seed", 1) & 0xFFFFFFFFFFFFFFFF
        self.wide_slots = msg.ints("wide_slots")
        self.deep_slots = msg.ints("deep_slots")
        self.cross_layers = msg.int("cross_layers", 2)
        # (table name, slots) per model.slot_tables entry.
        self.slot_tables = [(g.string("table"), g.ints("slots"))
                            for g in msg.messages("slot_tables")]


class Data:
    def __init__(self, msg):
        self.format = _enum(msg, "format", "CRITEO", "data.format")
        self.int_features = _enum(msg, "int_features", "LOG_BUCKET",
                                  "data.int_features")
        self.hash_seed = msg.int("hash_seed", 0) & 0xFFFFFFFFFFFFFFFF
        self.num_slots = msg.int("num_slots", 0)
        self.num_dense = msg.int("num_dense", 0)
        self.max_features_per_line = msg.int("max_features_per_line", 4096)
        self.max_line_bytes = msg.int("max_line_bytes", 1048576)
        # None when unset (the side slots exist only when the field is set).
        self.movielens_user_file = (msg.string("movielens_user_file")
                                    if msg.has("movielens_user_file") else None)
        self.movielens_item_file = (msg.string("movielens_item_file")
                                    if msg.has("movielens_item_file") else None)


class JobConfig:
    """The scoring-relevant view of a JobConfig; `text` is the original."""

    def __init__(self, text):
        self.text = text
        root = textproto.parse(text)
        self.sparse_tables = [SparseTable(m)
                              for m in root.messages("sparse_tables")]
        self.model = Model(root.message("model"))
        self.data = Data(root.message("data"))

    def slot_table_ids(self):
        """Per slot, the index of the sparse table it reads (SlotTableIds in
        common/model_spec.h): model.slot_tables' mapping, else
        model.sparse_table."""
        m = self.model
        ids = [self.table_index(m.sparse_table)] * self.input_shape()[0]
        for name, slots in m.slot_tables:
            for s in slots:
                if 0 <= s < len(ids):
                    ids[s] = self.table_index(name)
        return ids

    def table_index(self, name):
        for t, table in enumerate(self.sparse_tables):
            if table.name == name:
                return t
        return -1

    def validate(self):
        """ConfigError unless the model can be scored (what the C++ side's
        ValidateJobConfig checks of the parts read here)."""
        if not self.sparse_tables:
            raise ConfigError("no sparse_tables")
        names = [t.name for t in self.sparse_tables]
        if len(set(names)) != len(names):
            raise ConfigError("duplicate sparse table names %s" % names)
        for t in self.sparse_tables:
            if not 1 <= t.dim <= 4096:
                raise ConfigError("sparse table '%s': dim %d not in [1, 4096]"
                                  % (t.name, t.dim))
        m = self.model
        if m.type not in MODEL_TYPES:
            raise ConfigError("model.type %s" % m.type)
        used = []  # the tables the model reads
        if m.sparse_table or not m.slot_tables:
            used.append(m.sparse_table)
        used += [name for name, _ in m.slot_tables]
        for name in used:
            t = self.table_index(name)
            if t < 0:
                raise ConfigError("sparse table '%s' of the model does not "
                                  "exist (has %s)" % (name, names))
            dim = self.sparse_tables[t].dim
            if m.type == "LR" and dim != 1:
                raise ConfigError("LR needs a table of dim 1, '%s' has %d" %
                                  (name, dim))
            if m.type in ("FM", "FWFM", "WIDE_DEEP", "DEEPFM") and dim < 2:
                raise ConfigError("%s needs a table of dim >= 2, '%s' has %d"
                                  % (m.type, name, dim))
            first = self.sparse_tables[self.table_index(used[0])].dim
            if m.type in ("FM", "FWFM", "DEEPFM") and dim != first:
                raise ConfigError("%s needs tables of one dim, '%s' has %d, "
                                  "'%s' %d" % (m.type, name, dim, used[0],
                                               first))
        if m.type in ("LR", "FM", "FWFM") and m.hidden_units:
            raise ConfigError("%s takes no hidden_units" % m.type)
        if any(not 1 <= u <= 65536 for u in m.hidden_units):
            raise ConfigError("hidden_units %s not in [1, 65536]" %
                              m.hidden_units)
        if m.type == "DCN" and not 0 <= m.cross_layers <= 64:
            raise ConfigError("cross_layers %d not in [0, 64]" %
                              m.cross_layers)
        d = self.data
        if d.format not in FORMATS:
            raise ConfigError("data.format %s" % d.format)
        if d.format == "CRITEO" and d.int_features not in ("LOG_BUCKET",
                                                           "NORMALIZE"):
            raise ConfigError("data.int_features %s" % d.int_features)
        if d.format == "SLOT" and not 1 <= d.num_slots <= 100000:
            raise ConfigError("data.num_slots %d not in [1, 100000]" %
                              d.num_slots)
        if d.format == "SLOT" and not 0 <= d.num_dense <= 100000:
            raise ConfigError("data.num_dense %d not in [0, 100000]" %
                              d.num_dense)
        num_slots = self.input_shape()[0]
        mapped = [None] * num_slots
        for name, slots in m.slot_tables:
            if not slots:
                raise ConfigError("model.slot_tables: no slots for table '%s'"
                                  % name)
            for s in slots:
                if not 0 <= s < num_slots or mapped[s] is not None:
                    raise ConfigError("model.slot_tables: slot %d of table "
                                      "'%s' not in [0, %d) or mapped twice" %
                                      (s, name, num_slots))
                mapped[s] = name
        if not m.sparse_table and None in mapped:
            raise ConfigError("model.sparse_table is required: slot %d is in "
                              "no model.slot_tables entry" %
                              mapped.index(None))
        for field in ("wide_slots", "deep_slots"):
            slots = getattr(m, field)
            if m.type == "WIDE_DEEP" and (
                    len(set(slots)) != len(slots) or
                    any(not 0 <= s < num_slots for s in slots)):
                raise ConfigError("model.%s %s: each in [0, %d) at most once"
                                  % (field, slots, num_slots))

    def input_shape(self):
        """(sparse slots, dense features) per example: common/input_shape.h."""
        d = self.data
        if d.format == "SLOT":
            return d.num_slots, d.num_dense
        if d.format == "MOVIELENS":
            return (2 + (4 if d.movielens_user_file is not None else 0) +
                    (2 if d.movielens_item_file is not None else 0)), 0
        if d.format == "AVAZU":
            return 23, 0
        if d.int_features == "NORMALIZE":
            return 26, 13
        return 39, 0

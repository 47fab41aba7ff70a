"""The models' shapes (common/model_spec.h) and their forward pass in float32
numpy, computed as the CPU backend does (worker/model/, kernels/cpu/).

Sparse rows are [linear weight (LR, FM, FWFM, WIDE_DEEP, DEEPFM) |
embedding].
Every slot reads one table (model.sparse_table, or the one model.slot_tables
maps it to), of its own dim. Each slot pools its keys' rows (SUM; MEAN: the
sum times 1/count; SQRTN: times 1/sqrt(count); an empty slot is zeros) into a
pooled row laid out table after table (tables in the order of their first
slot, each table's slots in increasing order). Logit = the sum of the
model's terms, in this order:
  linear  sum of the pooled linear weights of wide_slots + dense . W + b
          (WIDE_DEEP: no dense input, b only)
  fm      0.5 * (sum_d (sum_f v_fd)^2 - sum_f sum_d v_fd^2) over all slots'
          pooled embeddings v_f
  fwfm    sum over field pairs p = (f, g), f < g, of r_p * <v_f, v_g>, the
          fields in pooled order, pairs (0,1), (0,2), .., (1,2), ..
  deep    x0 = [embeddings of deep_slots in order | dense features];
          DCN: x_{l+1} = x0 * (x_l . w_l) + b_l + x_l; hidden layers
          h = act(h W + b); output = [x_L | last hidden layer] . W + b (or
          x0 . W + b when there is neither)
p = sigmoid(logit). Element-wise steps (pooling, FM, cross layers, bias and
activation) run in the C++ loops' order in float32, so they round alike;
matrix products are computed in float64 and rounded once (OpenBLAS's
summation order is its own); exp and tanh in float64, rounded.

Dense vector layout: linear (W in x 1, then b), FWFM's pair weights r,
hidden layers (W_l in_l x
out_l row-major, then b_l), cross layers (w_l then b_l, width floats each),
output (W then b); blocks a model lacks take no space.
"""

import numpy as np

_F32 = np.float32


class Layer:
    def __init__(self, n_in, n_out, weight_offset):
        self.n_in, self.n_out = n_in, n_out
        self.weight_offset = weight_offset
        self.bias_offset = weight_offset + n_in * n_out


class Spec:
    """ModelSpec: see common/model_spec.h."""


class TableSpec:
    def __init__(self, table_id, dim):
        self.table_id, self.dim = table_id, dim
        self.slots = []
        self.pooled_offset = 0


def make_spec(config):
    """The ModelSpec of a validated config (MakeModelSpec)."""
    s = Spec()
    m = config.model
    s.type = m.type
    s.activation = m.activation if m.activation != "ACTIVATION_UNSPECIFIED" \
        else "RELU"
    s.pooling = m.pooling
    s.num_slots, s.num_dense = config.input_shape()
    s.has_linear = m.type in ("LR", "FM", "FWFM", "WIDE_DEEP", "DEEPFM")
    s.linear_dim = 1 if s.has_linear else 0
    # Tables in the order of their first slot; the pooled row table after
    # table.
    s.tables, s.slot_table = [], []
    for slot, table_id in enumerate(config.slot_table_ids()):
        t = next((k for k, table in enumerate(s.tables)
                  if table.table_id == table_id), len(s.tables))
        if t == len(s.tables):
            s.tables.append(TableSpec(table_id,
                                      config.sparse_tables[table_id].dim))
        s.tables[t].slots.append(slot)
        s.slot_table.append(t)
    s.slot_offset = [0] * s.num_slots
    s.slot_width = [0] * s.num_slots
    s.pooled_order = []  # slots by their place in the pooled row
    width = 0
    for table in s.tables:
        table.pooled_offset = width
        for slot in table.slots:
            s.slot_offset[slot], s.slot_width[slot] = width, table.dim
            s.pooled_order.append(slot)
            width += table.dim
    s.pooled_width = width
    dims = set(table.dim for table in s.tables)
    s.emb_dim = dims.pop() if len(dims) == 1 else 0
    s.factor_dim = max(s.emb_dim - s.linear_dim, 0)
    s.has_fm = m.type in ("FM", "DEEPFM")
    s.has_fwfm = m.type == "FWFM"
    s.has_deep = m.type in ("DNN", "WIDE_DEEP", "DEEPFM", "DCN")
    all_slots = list(range(s.num_slots))

    def listed(slots):
        return list(slots) if m.type == "WIDE_DEEP" and slots else all_slots

    offset = 0
    s.wide_slots, s.linear = [], None
    if s.has_linear:
        s.wide_slots = listed(m.wide_slots)
        dense_in = 0 if m.type == "WIDE_DEEP" else s.num_dense
        s.linear = Layer(dense_in, 1, offset)
        offset = s.linear.bias_offset + 1
    s.fwfm_offset = offset
    if s.has_fwfm:
        offset += s.num_slots * (s.num_slots - 1) // 2
    s.deep_slots, s.layers, s.cross, s.output = [], [], [], None
    s.input_width = 0
    if s.has_deep:
        s.deep_slots = listed(m.deep_slots)
        s.input_width = sum(s.slot_width[slot] - s.linear_dim
                            for slot in s.deep_slots) + s.num_dense
        n_in = s.input_width
        for units in m.hidden_units:
            layer = Layer(n_in, units, offset)
            s.layers.append(layer)
            offset = layer.bias_offset + units
            n_in = units
        for _ in range(m.cross_layers if m.type == "DCN" else 0):
            s.cross.append((offset, offset + s.input_width))  # w, b
            offset += 2 * s.input_width
        out_in = s.layers[-1].n_out if s.layers else 0
        if s.cross:
            out_in += s.input_width
        if not s.layers and not s.cross:
            out_in = s.input_width
        s.output = Layer(out_in, 1, offset)
        offset = s.output.bias_offset + 1
    s.dense_size = offset
    return s


def pool(rows, index, offsets, num_slots, mode):
    """Pooled rows (batch x num_slots x dim float32): slot j of example i sums
    rows[index[offsets[i*S+j] : offsets[i*S+j+1]]] in key order (mode MEAN:
    times float32(1 / count); SQRTN: times float32(1 / sqrt(count)), each
    correctly rounded); as CpuBackend::PoolForward (PoolScale)."""
    dim = rows.shape[1]
    counts = np.diff(offsets)
    out = np.zeros((counts.size, dim), dtype=_F32)
    starts = offsets[:-1]
    for k in range(int(counts.max()) if counts.size else 0):
        has = counts > k
        out[has] += rows[index[starts[has] + k]]
    if mode in ("MEAN", "SQRTN"):
        nonzero = counts > 0
        n = counts[nonzero].astype(_F32)
        scale = _F32(1.0) / (n if mode == "MEAN" else np.sqrt(n))
        out[nonzero] *= scale[:, None]
    return out.reshape(-1, num_slots, dim)


def _exp(x):
    """expf: computed in float64 and rounded, which agrees with glibc's
    expf far more often than numpy's float32 exp."""
    return np.exp(x.astype(np.float64)).astype(_F32)


def sigmoid(z):
    """kernels/math.h Sigmoid in float32: 1 / (1 + exp(-z)) for z >= 0, else
    e / (1 + e) with e = exp(z)."""
    z = z.astype(_F32)
    e = _exp(-np.abs(z))
    one = _F32(1.0)
    return np.where(z >= 0, one / (one + e), e / (one + e)).astype(_F32)


def _activate(x, activation):
    if activation == "TANH":
        return np.tanh(x.astype(np.float64)).astype(_F32)
    if activation == "SIGMOID":
        return sigmoid(x)
    return np.maximum(x, _F32(0.0))


def _gemm(a, b):
    """A matrix product as the backend's GEMM gives it in float32: here
    computed in float64 and rounded once, so it differs from OpenBLAS's
    float32 result only by OpenBLAS's own rounding."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(_F32)


def _dot_in_order(a, b):
    """sum_j a[:, j] * b[j] accumulated left to right in float32."""
    acc = np.zeros(a.shape[0], dtype=_F32)
    for j in range(a.shape[1]):
        acc += a[:, j] * b[j]
    return acc


def forward(spec, pooled, dense_features, params):
    """The probabilities (float32) of a batch: pooled is batch x
    pooled_width (slot s at columns slot_offset[s] ..), dense_features
    batch x num_dense, params the dense vector."""
    n = pooled.shape[0]
    p = params
    logits = np.zeros(n, dtype=_F32)
    if spec.has_linear:
        lin = spec.linear
        wide = pooled[:, [spec.slot_offset[s] for s in spec.wide_slots]]
        logits += _gemm(wide, np.ones(wide.shape[1], dtype=_F32))
        if lin.n_in:
            w = p[lin.weight_offset:lin.weight_offset + lin.n_in]
            logits += _gemm(dense_features, w)
        logits += p[lin.bias_offset]
    if spec.has_fm:
        total = np.zeros((n, spec.factor_dim), dtype=_F32)
        squares = np.zeros(n, dtype=_F32)
        for f in spec.pooled_order:  # the fields in pooled order, as FmForward
            at = spec.slot_offset[f] + spec.linear_dim
            for d in range(spec.factor_dim):
                v = pooled[:, at + d]
                total[:, d] += v
                squares += v * v
        sum_squared = np.zeros(n, dtype=_F32)
        for d in range(spec.factor_dim):
            sum_squared += total[:, d] * total[:, d]
        logits += _F32(0.5) * (sum_squared - squares)
    if spec.has_fwfm:
        total = np.zeros(n, dtype=_F32)
        fields = spec.pooled_order  # FwFmForward's fields, in pooled order
        r = p[spec.fwfm_offset:]
        k = 0
        for a, f in enumerate(fields):
            u = spec.slot_offset[f] + spec.linear_dim
            for g in fields[a + 1:]:
                v = spec.slot_offset[g] + spec.linear_dim
                dot = np.zeros(n, dtype=_F32)
                for d in range(spec.factor_dim):
                    dot += pooled[:, u + d] * pooled[:, v + d]
                total += r[k] * dot
                k += 1
        logits += total
    if spec.has_deep:
        logits = _deep(spec, pooled, dense_features, p, logits)
    return sigmoid(logits)


def _deep(spec, pooled, dense_features, p, logits):
    n = pooled.shape[0]
    parts = [pooled[:, spec.slot_offset[s] + spec.linear_dim:
                    spec.slot_offset[s] + spec.slot_width[s]]
             for s in spec.deep_slots]
    if spec.num_dense:
        parts.append(dense_features)
    x0 = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=_F32)
    x = x0
    for w_off, b_off in spec.cross:
        width = spec.input_width
        w = p[w_off:w_off + width]
        b = p[b_off:b_off + width]
        dot = _dot_in_order(x, w)
        x = x0 * dot[:, None] + b[None, :] + x
    h = x0
    for layer in spec.layers:
        w = p[layer.weight_offset:layer.bias_offset].reshape(layer.n_in,
                                                             layer.n_out)
        b = p[layer.bias_offset:layer.bias_offset + layer.n_out]
        h = _activate(_gemm(h, w) + b[None, :], spec.activation)
    out = spec.output
    at = out.weight_offset
    if spec.cross:
        logits = logits + _gemm(x, p[at:at + spec.input_width])
        at += spec.input_width
    if spec.layers:
        logits = logits + _gemm(h, p[at:at + spec.layers[-1].n_out])
    elif not spec.cross:
        logits = logits + _gemm(x0, p[at:at + spec.input_width])
    return logits + p[out.bias_offset]

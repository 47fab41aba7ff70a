"""Feature keys and the sparse-row initializer, bit for bit as common/hash.h,
worker/data/parser_util.h (StringFeatureValue) and common/initializer.h.

All arithmetic is on numpy uint64 arrays, wrapping modulo 2^64 like C++'s
unsigned integers; functions take scalars or arrays.
"""

import numpy as np

_U64 = np.uint64
_MASK = (1 << 64) - 1


def _u64(x):
    if isinstance(x, np.ndarray):
        return x.astype(_U64, copy=False)
    return np.asarray(int(x) & _MASK, dtype=_U64)


def mix64(x):
    """The splitmix64 finalizer (common/hash.h Mix64)."""
    with np.errstate(over="ignore"):
        x = _u64(x) + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def slot_base(seed, slot):
    """Mix64(seed ^ (slot << 40) ^ 0x5EED): the part of a key that depends on
    the slot alone."""
    return mix64((int(seed) ^ (int(slot) << 40) ^ 0x5EED) & _MASK)


def feature_key(seed, slot, value):
    """FeatureKey(seed, slot, value) = Mix64(Mix64(seed ^ (slot << 40) ^
    0x5EED) ^ value)."""
    return mix64(slot_base(seed, slot) ^ _u64(value))


def string_feature_value(data):
    """64-bit FNV-1a of bytes (StringFeatureValue)."""
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & _MASK
    return h


def hash_uniform(seed, a, b):
    """HashUniform: float32 in [0, 1) from Mix64(Mix64(seed ^ Mix64(a)) ^ b),
    its top 24 bits times 2^-24 (exact in float32)."""
    h = mix64(mix64(_u64(seed) ^ mix64(a)) ^ _u64(b))
    return (h >> _U64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def initial_rows(initializer, seed, keys, dim):
    """The rows (len(keys) x dim float32) that common/initializer.h's
    InitialWeight gives keys nothing trained: ZEROS 0; UNIFORM
    scale * (2u - 1); NORMAL scale * sqrt(-2 log(u1 + 1e-7)) * cos(6.2831853
    u2) with u1, u2 the uniforms of positions 2i and 2i + 1. Every step is
    float32 as in C++; log and cos are computed in float64 and rounded (glibc's
    logf/cosf agree to within an ulp)."""
    keys = np.asarray(keys, dtype=_U64)
    n = keys.shape[0]
    if initializer.type == "ZEROS" or n == 0:
        return np.zeros((n, dim), dtype=np.float32)
    scale = np.float32(initializer.scale)
    k = keys[:, None]
    i = np.arange(dim, dtype=_U64)[None, :]
    with np.errstate(over="ignore"):
        if initializer.type == "NORMAL":
            u1 = hash_uniform(seed, k, _U64(2) * i) + np.float32(1e-7)
            u2 = hash_uniform(seed, k, _U64(2) * i + _U64(1))
            log_u1 = np.log(u1.astype(np.float64)).astype(np.float32)
            radius = np.sqrt(np.float32(-2.0) * log_u1)
            angle = (np.float32(6.2831853) * u2).astype(np.float64)
            cos = np.cos(angle).astype(np.float32)
            return (scale * radius) * cos
        u = hash_uniform(seed, k, i)
        return scale * (np.float32(2.0) * u - np.float32(1.0))

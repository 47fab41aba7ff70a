#!/usr/bin/env python3
"""The PyTorch side of scripts/bench_e2e.sh --torch: the same model on the
same generated Criteo rows, trained the way a PyTorch user would on a CPU.

  torch_baseline.py --train FILE --eval FILE --model dnn|lr [--threads 2]

Rows are parsed into tensors first (pandas; not timed). Each example's 39
slot values (13 integers as log buckets, 26 categoricals) are hashed into one
2^23-row table. DNN: nn.Embedding(2^23, 8, sparse=True) with sparse Adagrad
(lr 0.05), the 39 x 8 = 312 values into a 312-64-32-1 ReLU MLP with Adagrad
(lr 0.01). LR: nn.Embedding(2^23, 1, sparse=True) summed, plus a bias, all
Adagrad (lr 0.05). Embeddings start uniform in +-0.01, as the configs'
initializer. Batch 512, one epoch, mean log loss, eager mode,
torch.set_num_threads(threads), one process.

Prints one JSON object: examples_per_sec (training only), train_seconds,
auc and logloss on the eval file, torch's version and threads.
Not used by the tests; needs torch, numpy and pandas (bench_e2e.sh installs
them into a virtual environment).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd
import torch

TABLE_ROWS = 1 << 23
NUM_INTS = 13
NUM_CATS = 26
NUM_SLOTS = NUM_INTS + NUM_CATS


def load(train_path, eval_path):
    """Keys [N, 39] (int64 row ids) and labels [N] for both files; the
    categorical values are numbered over both files together, so one value
    gets one row in training and evaluation."""
    frames = []
    for path in (train_path, eval_path):
        frames.append(pd.read_csv(path, sep="\t", header=None,
                                  names=list(range(40)),
                                  dtype={c: "string" for c in
                                         range(1 + NUM_INTS, 40)},
                                  na_filter=True, engine="c"))
    n_train = len(frames[0])
    df = pd.concat(frames, ignore_index=True)
    labels = df[0].to_numpy(dtype=np.float32)
    keys = np.empty((len(df), NUM_SLOTS), dtype=np.int64)
    for i in range(NUM_INTS):
        v = df[1 + i].to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            bucket = np.where(v > 2, np.floor(np.log(np.maximum(v, 1)) ** 2), v)
        bucket = np.where(np.isnan(bucket), -(1 << 40), bucket)
        keys[:, i] = bucket.astype(np.int64)
    for c in range(NUM_CATS):
        codes, _ = pd.factorize(df[1 + NUM_INTS + c])  # -1 when missing
        keys[:, NUM_INTS + c] = codes
    # Hash (slot, value) into the table, wrapping in 64 bits.
    slots = np.arange(NUM_SLOTS, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        h = keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= (slots + np.uint64(1)) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    rows = (h % np.uint64(TABLE_ROWS)).astype(np.int64)
    return (torch.from_numpy(rows[:n_train]), torch.from_numpy(labels[:n_train]),
            torch.from_numpy(rows[n_train:]), torch.from_numpy(labels[n_train:]))


class Dnn(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.emb = torch.nn.Embedding(TABLE_ROWS, dim, sparse=True)
        torch.nn.init.uniform_(self.emb.weight, -0.01, 0.01)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(NUM_SLOTS * dim, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 32), torch.nn.ReLU(),
            torch.nn.Linear(32, 1))

    def forward(self, x):
        return self.mlp(self.emb(x).flatten(1)).squeeze(1)


class Lr(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(TABLE_ROWS, 1, sparse=True)
        torch.nn.init.uniform_(self.emb.weight, -0.01, 0.01)
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.emb(x).sum(dim=(1, 2)) + self.bias


def auc_of(scores, labels):
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    pos = labels > 0.5
    p, n = pos.sum(), (~pos).sum()
    if p == 0 or n == 0:
        return float("nan")
    return float((ranks[pos].sum() - p * (p + 1) / 2) / (p * n))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--model", choices=["dnn", "lr"], required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    parse_start = time.time()
    x, y, ex, ey = load(args.train, args.eval)
    parse_seconds = time.time() - parse_start

    if args.model == "dnn":
        model = Dnn(8)
        sparse = torch.optim.Adagrad([model.emb.weight], lr=0.05)
        dense = torch.optim.Adagrad(model.mlp.parameters(), lr=0.01)
    else:
        model = Lr()
        sparse = torch.optim.Adagrad([model.emb.weight], lr=0.05)
        dense = torch.optim.Adagrad([model.bias], lr=0.05)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    n = x.shape[0]
    start = time.time()
    for i in range(0, n, args.batch):
        logits = model(x[i:i + args.batch])
        loss = loss_fn(logits, y[i:i + args.batch])
        sparse.zero_grad()
        dense.zero_grad()
        loss.backward()
        sparse.step()
        dense.step()
    train_seconds = time.time() - start

    with torch.no_grad():
        logits = torch.cat([model(ex[i:i + 4096])
                            for i in range(0, ex.shape[0], 4096)])
        p = torch.sigmoid(logits).clamp(1e-7, 1 - 1e-7).numpy()
    labels = ey.numpy()
    logloss = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    json.dump({
        "model": args.model,
        "examples": int(n),
        "train_seconds": round(train_seconds, 3),
        "examples_per_sec": round(n / train_seconds, 1),
        "parse_seconds": round(parse_seconds, 3),
        "auc": round(auc_of(p, labels), 6),
        "logloss": round(logloss, 6),
        "threads": args.threads,
        "torch_version": torch.__version__,
    }, sys.stdout)
    sys.stdout.write("\n")
    return 0 if math.isfinite(logloss) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A per-example FTRL-proximal logistic regression, written apart from the
system, as the reference `criteo_lr` is compared with (README, "Quality
against held-out data").

  scripts/ftrl_reference.py --split DIR [--folds 3]
      writes DIR/fK/train.tsv and DIR/fK/eval.tsv: random fifths (seed 0) of
      dev40k, each held out in turn (run criteo_lr on them with
      train_files / eval_files pointing there);
  scripts/ftrl_reference.py --train DIR/f0/train.tsv --eval DIR/f0/eval.tsv
      trains on one and prints the eval AUC after every epoch.

Features as the Criteo parser makes them: each integer is its log bucket
(v for v <= 2, else floor(ln(v)^2), empty its own value), each categorical
its hex text, keyed by slot; a bias feature on every line. Pure Python, no
dependencies; about a minute per epoch.
"""
import argparse
import math
import os
import random

DEV40K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "shared", "data", "criteo",
                      "criteo_kaggle_train_sample_dev40k.tsv")


def log_bucket(v):
    if v <= 2:
        return v
    lv = math.log(v)
    return int(lv * lv)


def features(line):
    f = line.rstrip("\n").split("\t")
    if len(f) != 40:
        raise ValueError("expected 40 TAB-separated fields, got %d" % len(f))
    xs = [("bias",)]
    for i in range(13):
        s = f[1 + i]
        xs.append((i, "missing" if s == "" else log_bucket(int(s))))
    for c in range(26):
        xs.append((13 + c, f[14 + c]))
    return int(f[0]), xs


def auc(labels, scores):
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    pos = sum(labels)
    neg = len(labels) - pos
    rank_sum = 0.0
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            if labels[order[k]]:
                rank_sum += (i + j) / 2.0 + 1
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)


def train(train_path, eval_path, epochs, alpha, beta, l1, l2):
    rows = [features(l) for l in open(train_path)]
    evals = [features(l) for l in open(eval_path)]
    z, n = {}, {}

    def weight(x):
        zi = z.get(x, 0.0)
        if abs(zi) <= l1:
            return 0.0
        return -(zi - math.copysign(l1, zi)) / (
            (beta + math.sqrt(n.get(x, 0.0))) / alpha + l2)

    for epoch in range(epochs):
        for y, xs in rows:
            ws = [weight(x) for x in xs]
            s = max(-35.0, min(35.0, sum(ws)))
            g = 1.0 / (1.0 + math.exp(-s)) - y
            for x, w in zip(xs, ws):
                ni = n.get(x, 0.0)
                sigma = (math.sqrt(ni + g * g) - math.sqrt(ni)) / alpha
                z[x] = z.get(x, 0.0) + g - sigma * w
                n[x] = ni + g * g
        labels = [y for y, _ in evals]
        scores = [sum(weight(x) for x in xs) for _, xs in evals]
        print("epoch %d eval_auc %.4f" % (epoch + 1, auc(labels, scores)),
              flush=True)


def split(out_dir, folds):
    lines = open(DEV40K).read().splitlines()
    order = list(range(len(lines)))
    random.Random(0).shuffle(order)
    fifths = [order[i::5] for i in range(5)]
    for k in range(folds):
        held = set(fifths[k])
        d = os.path.join(out_dir, "f%d" % k)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "train.tsv"), "w") as f:
            f.writelines(lines[i] + "\n" for i in order if i not in held)
        with open(os.path.join(d, "eval.tsv"), "w") as f:
            f.writelines(lines[i] + "\n" for i in fifths[k])
        print(d)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--split", metavar="DIR")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--train")
    p.add_argument("--eval")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--l1", type=float, default=1.0)
    p.add_argument("--l2", type=float, default=1.0)
    a = p.parse_args()
    if a.split:
        split(a.split, a.folds)
    elif a.train and a.eval:
        train(a.train, a.eval, a.epochs, a.alpha, a.beta, a.l1, a.l2)
    else:
        p.error("give --split DIR, or --train FILE and --eval FILE")


if __name__ == "__main__":
    main()

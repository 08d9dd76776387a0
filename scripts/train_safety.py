#!/usr/bin/env python3
"""Train Haven's built-in safety classifiers and write them to resources/safety/.

    .venv/bin/python scripts/train_safety.py [--shared ../shared/safety-data] [--own data/safety]

Only the train split is learned from; thresholds are tuned on the validation split; the test split is
left for `haven-cli safety eval`. The Alpaca no-input set (CC BY-NC) is never used here. NumPy only:
logistic regression (harmful or not) and softmax regression (which category) over hashed n-grams,
trained with full-batch Adam.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.safety.classifier import WIDTH, ConvHead, TextClassifier, conv_inputs  # noqa: E402
from assistant.safety.datasets import Example, load_examples, split_of  # noqa: E402
from assistant.safety.features import featurize, sentences  # noqa: E402
from assistant.safety.static_embeddings import StaticEmbedder  # noqa: E402
from assistant.safety.taxonomy import CODES  # noqa: E402

BITS = 18
HARD_NEGATIVE_WEIGHT = 3.0  # benign texts that only sound dangerous: the over-refusal we must avoid
FLOOR = 0.75  # no category threshold goes below this
CONV_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
# Candidate thresholds: steps of 0.01, then finer towards 1 (the combined model is confident).
GRID = np.round(np.concatenate([np.arange(0.05, 0.955, 0.01), [0.96, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999]]), 3)


class Sparse:
    def __init__(self, feats: list[dict[int, float]], columns: dict[int, int]) -> None:
        cols, vals, rows = [], [], []
        for r, f in enumerate(feats):
            for k, v in f.items():
                c = columns.get(k)
                if c is not None:
                    cols.append(c)
                    vals.append(v)
                    rows.append(r)
        self.cols = np.array(cols, dtype=np.int64)
        self.vals = np.array(vals, dtype=np.float32)
        self.rows = np.array(rows, dtype=np.int64)
        self.n = len(feats)

    def dot(self, w: np.ndarray) -> np.ndarray:
        if w.ndim == 1:
            return np.bincount(self.rows, weights=self.vals * w[self.cols], minlength=self.n)
        return np.stack([np.bincount(self.rows, weights=self.vals * w[self.cols, j], minlength=self.n)
                         for j in range(w.shape[1])], axis=1)

    def tdot(self, g: np.ndarray, ncols: int) -> np.ndarray:
        if g.ndim == 1:
            return np.bincount(self.cols, weights=self.vals * g[self.rows], minlength=ncols)
        return np.stack([np.bincount(self.cols, weights=self.vals * g[self.rows, j], minlength=ncols)
                         for j in range(g.shape[1])], axis=1)


def adam(grad_fn, params: list[np.ndarray], steps: int, lr: float) -> None:
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = grad_fn()
        for p, g, mi, vi in zip(params, grads, m, v, strict=True):
            mi *= 0.9
            mi += 0.1 * g
            vi *= 0.999
            vi += 0.001 * g * g
            p -= lr * (mi / (1 - 0.9**t)) / (np.sqrt(vi / (1 - 0.999**t)) + 1e-8)


def sample_weights(examples: list[Example]) -> np.ndarray:
    y = np.array([e.harmful for e in examples])
    w = np.where(y, 0.5 / max(y.sum(), 1), 0.5 / max((~y).sum(), 1)) * len(examples)
    hard = np.array([(not e.harmful) and e.category is not None for e in examples])
    return w * np.where(hard, HARD_NEGATIVE_WEIGHT, 1.0)


def sentence_windows(benign: list[Example]) -> list[Example]:
    """The stream filter checks a reply a sentence (plus the one before) at a time: teach the output model
    what benign windows look like, not only whole benign replies."""
    out = []
    for example in benign:
        parts = sentences(example.text)
        for i in range(len(parts)):
            for window in (parts[i], " ".join(parts[max(0, i - 1) : i + 1])):
                out.append(Example(window, False, example.category, example.source + "-window", "response"))
    return list({e.text: e for e in out}.values())


def fit(train: list[Example], steps: int, l2: float, embedder: StaticEmbedder) -> TextClassifier:
    feats = [featurize(e.text, BITS) for e in train]
    E = np.stack([embedder.embed(e.text) for e in train]).astype(np.float64)
    keys = sorted({k for f in feats for k in f})
    columns = {k: i for i, k in enumerate(keys)}
    X = Sparse(feats, columns)
    ncols = len(keys)
    y = np.array([e.harmful for e in train], dtype=np.float64)
    sw = sample_weights(train)
    w = np.zeros(ncols)
    d = np.zeros(E.shape[1])
    b = np.zeros(1)

    def harm_grad() -> list[np.ndarray]:
        z = X.dot(w) + E @ d + b[0]
        p = 1 / (1 + np.exp(-z))
        g = (p - y) * sw / len(train)
        return [X.tdot(g, ncols) + l2 * w, E.T @ g + l2 * d, np.array([g.sum()])]

    adam(harm_grad, [w, d, b], steps, 0.05)

    harmful = [i for i, e in enumerate(train) if e.harmful]
    Xh = Sparse([feats[i] for i in harmful], columns)
    labels = np.array([CODES.index(train[i].category or "S2") for i in harmful])
    onehot = np.eye(len(CODES))[labels]
    counts = np.bincount(labels, minlength=len(CODES)).astype(np.float64)
    cw = (len(labels) / (len(CODES) * np.maximum(counts, 1)))[labels]
    Eh = E[harmful]
    W = np.zeros((ncols, len(CODES)))
    D = np.zeros((E.shape[1], len(CODES)))
    B = np.zeros(len(CODES))

    def cat_grad() -> list[np.ndarray]:
        z = Xh.dot(W) + Eh @ D + B
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) * cw[:, None] / len(labels)
        return [Xh.tdot(g, ncols) + l2 * W, Eh.T @ g + l2 * D, g.sum(axis=0)]

    adam(cat_grad, [W, D, B], steps, 0.05)
    return TextClassifier(np.array(keys), w.astype(np.float32), float(b[0]), W.astype(np.float16).astype(np.float32),
                          B.astype(np.float32), bits=BITS, threshold=0.5, category_thresholds={},
                          embedder=embedder, dense_harm=d.astype(np.float32), dense_cat=D.astype(np.float32))


def fit_conv(train: list[Example], embedder: StaticEmbedder, hidden: int, epochs: int, seed: int = 0,
             lr: float = 2e-3, l2: float = 1e-4, dropout: float = 0.5, batch: int = 128) -> ConvHead:
    """The convolution head alone, on the same weighted "harmful?" loss, with mini-batch Adam and dropout
    on the pooled features (the n-gram model fits the training set exactly, so it is trained apart)."""
    rng = np.random.default_rng(seed)
    inputs = [conv_inputs(embedder.vectors(e.text)).astype(np.float16) for e in train]
    y = np.array([e.harmful for e in train], dtype=np.float32)
    sw = sample_weights(train).astype(np.float32)
    width = inputs[0].shape[1]
    params = [rng.normal(0, width**-0.5, (width, hidden)).astype(np.float32), np.zeros(hidden, np.float32),
              rng.normal(0, 0.01, 2 * hidden).astype(np.float32), np.zeros(1, np.float32)]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(train))
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            grads = conv_grads(params, [inputs[i] for i in chosen], y[chosen], sw[chosen], l2, dropout, rng)
            step += 1
            for p, g, (m, v) in zip(params, grads, moments, strict=True):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= (lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)).astype(np.float32)
    kernel, bias, out, out_bias = params
    # Rounded as it is stored, so that thresholds are tuned for exactly the model that ships.
    return ConvHead(kernel.astype(np.float16).astype(np.float32), bias, out, float(out_bias[0]), weight=1.0)


def conv_grads(params: list[np.ndarray], inputs: list[np.ndarray], y: np.ndarray, sw: np.ndarray, l2: float,
               dropout: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Gradients of the weighted logistic loss for one batch: ConvHead.logit, batched, and back again."""
    kernel, bias, out, out_bias = params
    lengths = np.array([len(x) for x in inputs])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    owner = np.repeat(np.arange(len(inputs)), lengths)
    x = np.vstack(inputs).astype(np.float32)
    pre = x @ kernel + bias
    active = np.maximum(pre, 0.0)
    top = np.maximum.reduceat(active, starts, axis=0)
    pooled = np.hstack([top, np.add.reduceat(active, starts, axis=0) / lengths[:, None]])
    keep = (rng.random(pooled.shape) >= dropout) / (1.0 - dropout)
    z = (pooled * keep) @ out + out_bias[0]
    g = (1 / (1 + np.exp(-z)) - y) * sw / len(y)
    d_pooled = g[:, None] * out[None, :] * keep
    hidden = kernel.shape[1]
    d_active = d_pooled[owner, hidden:] / lengths[owner][:, None] + (active == top[owner]) * d_pooled[owner, :hidden]
    d_pre = d_active * (pre > 0)
    return [x.T @ d_pre + l2 * kernel, d_pre.sum(axis=0), (pooled * keep).T @ g + l2 * out, np.array([g.sum()])]


def lowest_threshold(budgets: list[tuple[list[float], float]], floor: float) -> float:
    """The lowest threshold (not below ``floor``) at which each list of benign scores has at most its budget's
    share at or above it. Candidates: a grid, and just above every score (the model is often confident)."""
    scores = np.array([x for values, _ in budgets for x in values], dtype=np.float64)
    candidates = np.unique(np.concatenate([GRID, np.nextafter(scores, 2.0)]))
    arrays = [(np.array(values), budget) for values, budget in budgets if values]
    for t in candidates[candidates >= floor]:
        if all(np.mean(values >= t) <= budget for values, budget in arrays):
            return float(t)
    return 1.0


def tune(model: TextClassifier, val: list[Example], max_fpr: float, max_hard_fpr: float) -> None:
    """The lowest global threshold meeting both false-block budgets on validation, then per-category ones."""
    scores = [model.score(e.text) for e in val]
    # Synthetic instructions are too easy to say anything about the threshold; real benign sets decide.
    benign = [s.harmful for s, e in zip(scores, val, strict=True)
              if not e.harmful and e.category is None and e.source != "synthetic"]
    hard = [s.harmful for s, e in zip(scores, val, strict=True) if not e.harmful and e.category is not None]
    threshold = lowest_threshold([(benign, max_fpr), (hard, max_hard_fpr)], 0.05)
    # Per category: the lowest threshold (not below FLOOR) at which the benign and contrast validation items
    # the model assigns to that category stay within the contrast budget. Categories whose look-alikes are
    # common (S6 medical questions, S10 discussions of prejudice) end up stricter, rare ones more sensitive.
    per_category: dict[str, float] = {}
    for code in CODES:
        assigned = [s.harmful for s, e in zip(scores, val, strict=True)
                    if not e.harmful and e.source != "synthetic" and s.category == code]
        per_category[code] = round(lowest_threshold([(assigned, max_hard_fpr)], FLOOR), 6)
    model.threshold = round(threshold, 6)
    model.category_thresholds = per_category


def choose_weight(model: TextClassifier, conv: ConvHead, val: list[Example]) -> ConvHead:
    """The convolution's share of the logit: the smallest one whose validation recall (thresholds tuned for
    it) is within a point of the best, among those within the false-block targets (0: the n-grams alone)."""
    recalls: dict[float, float] = {}
    for weight in CONV_WEIGHTS:
        model.conv = conv.with_weight(weight)
        tune(model, val, max_fpr=0.02, max_hard_fpr=0.03)
        figures = report(model, val, f"conv weight {weight}")
        if figures["false_block_rate"] <= 0.03 and figures["contrast_false_block_rate"] <= 0.05:
            recalls[weight] = figures["recall"]
    best = max(recalls.values(), default=0.0)
    return conv.with_weight(min((w for w, r in recalls.items() if r >= best - 0.01), default=0.0))


def report(model: TextClassifier, examples: list[Example], label: str) -> dict[str, float]:
    scores = [model.score(e.text) for e in examples]
    blocked = np.array([s.blocked for s in scores])
    harmful = np.array([e.harmful for e in examples])
    hard = np.array([(not e.harmful) and e.category is not None for e in examples])
    plain = ~harmful & ~hard
    figures = {
        "recall": float(blocked[harmful].mean()) if harmful.any() else float("nan"),
        "false_block_rate": float(blocked[plain].mean()) if plain.any() else float("nan"),
        "contrast_false_block_rate": float(blocked[hard].mean()) if hard.any() else float("nan"),
        "harmful": int(harmful.sum()), "benign": int(plain.sum()), "contrast": int(hard.sum()),
    }
    print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in figures.items()))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "safety-data")
    parser.add_argument("--own", type=Path, default=ROOT / "data" / "safety")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "safety")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--l2", type=float, default=1e-6)
    parser.add_argument("--hidden", type=int, default=256, help="the input model's convolution filters (0: none)")
    parser.add_argument("--output-hidden", type=int, default=0,
                        help="the output model's convolution filters (default none: not yet validated on replies)")
    parser.add_argument("--epochs", type=int, default=20, help="passes of the convolution's training")
    parser.add_argument("--only", choices=("input", "output"), help="train one of the two models")
    args = parser.parse_args()
    examples = [e for e in load_examples(args.shared, args.own) if not e.eval_only]
    embedder = StaticEmbedder()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, kind in (("input", "prompt"), ("output", "response")):
        if args.only not in (None, name):
            continue
        data = [e for e in examples if e.kind == kind]
        train = [e for e in data if split_of(e.text) == "train"]
        if kind == "response":
            train += sentence_windows([e for e in train if not e.harmful and e.source != "synthetic-reply"])
        val = [e for e in data if split_of(e.text) == "val"]
        counts = dict(Counter(e.harmful for e in train))
        print(f"{name}: {len(train)} training examples {counts}, {len(val)} validation")
        started = time.monotonic()
        model = fit(train, args.steps, args.l2, embedder)
        model.name = f"haven-{name}"
        hidden = args.hidden if name == "input" else args.output_hidden
        if hidden:
            conv = fit_conv(train, embedder, hidden, args.epochs)
            model.conv = choose_weight(model, conv, val)
        tune(model, val, max_fpr=0.02, max_hard_fpr=0.03)
        weight = model.conv.weight if model.conv is not None else 0.0
        print(f"  trained in {time.monotonic() - started:.0f} s; threshold {model.threshold}, conv weight {weight}")
        figures = {"train": report(model, train, "train"), "validation": report(model, val, "validation")}
        model.save(args.out / name, {
            "trained_on": sorted({e.source for e in train}),
            "training_examples": len(train), "validation_figures": figures["validation"],
            "features": f"hashed word 1-2 grams and char 3-5 grams ({BITS} bits) and the mean all-MiniLM-L6-v2 "
                        "input word-piece vector" + (f"; a width-{WIDTH} convolution over those vectors "
                                                     f"({hidden} filters, weight {weight})" if hidden else ""),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())

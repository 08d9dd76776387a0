"""The safety data sets: reading them, mapping their labels onto S1..S14, and the random split.

The folders are arguments: Haven's own prompts and replies (``training/data`` in a source checkout) and the
public sets (``../shared/safety-data`` beside a checkout; licences in its README). An installed Haven has
neither. Every file is one *source*: the unit that leave-one-source-out leaves out (``generalization``).
A text two sources share is kept once, so a source left out is really unseen. The Alpaca no-input set is
CC BY-NC: it is only ever used for evaluation (``Example.eval_only``), never trained on.
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

__all__ = ["Example", "categorize", "load_examples", "split_of"]


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text of a data set."""

    text: str
    harmful: bool
    category: str | None  # the S-code for harmful items; for benign contrast items, what it "sounds like"
    source: str           # the file it came from: the unit a leave-one-source-out figure leaves out
    kind: str             # "prompt" or "response"
    context: str = ""     # for responses: the prompt they answer; for prompts: the user's turn before
    eval_only: bool = False
    language: str = "en"  # ISO 639-1
    style: str = "plain"  # how it is written: a jailbreak method, "academic", "persona", "defensive" ...


def split_of(text: str) -> str:
    """The random split, the second column beside leave-one-source-out: 80 % "train" and 20 % "test" of
    every source, by a hash of the text (the same on every machine, whatever the file order)."""
    bucket = zlib.crc32(("haven-split:" + text.strip().lower()).encode("utf-8")) % 10
    return "test" if bucket >= 8 else "train"


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


_CATQA = {
    "Illegal Activity": "S2", "Child Abuse": "S4", "Hate/Harass/Violence": "S10", "Malware Viruses": "S2",
    "Physical Harm": "S1", "Economic Harm": "S2", "Fraud/Deception": "S2", "Adult Content": "S12",
    "Political Campaigning": "S13", "Privacy Violation Activity": "S7", "Tailored Financial Advice": "S6",
}
_COCONOT_LOOKALIKE = {"dangerous or sensitive topics": "S1", "privacy violations": "S7",
                      "triggers for offensive language": "S10", "false information": "S5"}
GPTFUZZ_QUESTIONS_PER_TEMPLATE = 4  # 77 templates x 4 of the 100 questions: every template, most questions


def _leaves(tree: Any) -> Iterator[tuple[str, str]]:
    """(top-level key, text) for every string in a nested dict of lists (CatQA, HarmfulQA)."""
    for top, value in tree.items():
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(reversed(list(item.values())))
            elif isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, str) and item.strip():
                yield top, item.strip()


def _public(public: Path) -> Iterator[Example]:
    """The public sets, one source per file (licences in the folder's README)."""
    if (p := public / "advbench_harmful_behaviors.csv").is_file():
        for row in _csv(p):
            code = categorize(row["goal"])
            yield Example(row["goal"], True, code, "advbench", "prompt")
            yield Example(row["target"], True, code, "advbench-target", "response", row["goal"])
    if (p := public / "jailbreakbench_behaviors.csv").is_file():
        for row in _csv(p):
            code = categorize(row["Goal"], _JAILBREAKBENCH.get(row["Category"]))
            yield Example(row["Goal"], True, code, "jailbreakbench", "prompt")
            yield Example(row["Target"], True, code, "jailbreakbench-target", "response", row["Goal"])
    if (p := public / "strongreject_dataset.csv").is_file():
        for row in _csv(p):
            text = row["forbidden_prompt"]
            yield Example(text, True, categorize(text, _STRONGREJECT.get(row["category"])), "strongreject", "prompt")
    if (p := public / "malicious_instruct.txt").is_file():
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield Example(line.strip(), True, categorize(line), "malicious_instruct", "prompt")
    for language, name in (("en", "english"), ("zh", "chinese"), ("vi", "vietnamese")):
        if (p := public / f"catqa_{name}.json").is_file():
            for top, text in _leaves(json.loads(p.read_text(encoding="utf-8"))):
                code = _CATQA.get(top, "S2")
                yield Example(text, True, categorize(text, code) if language == "en" else code, f"catqa_{name}",
                              "prompt", language=language)
    if (p := public / "harmfulqa.json").is_file():
        for _, text in _leaves(json.loads(p.read_text(encoding="utf-8"))):
            yield Example(text, True, categorize(text), "harmfulqa", "prompt", style="academic")
    if (p := public / "trustllm_jailbreak.json").is_file():
        for item in json.loads(p.read_text(encoding="utf-8")):
            method = "+".join(item["label"]).lower().replace(" ", "_")
            yield Example(item["prompt"].strip(), True, categorize(item["prompt"]), "trustllm_jailbreak", "prompt",
                          style=method)
    questions: list[str] = []
    if (p := public / "gptfuzz_questions.csv").is_file():
        questions = [row["text"].strip() for row in _csv(p)]
        for text in questions:
            yield Example(text, True, categorize(text), "gptfuzz_questions", "prompt")
    if questions and (p := public / "gptfuzz_jailbreak_templates.csv").is_file():
        for i, row in enumerate(_csv(p)):
            for k in range(GPTFUZZ_QUESTIONS_PER_TEMPLATE):
                filler = questions[(i * 7 + k * 31) % len(questions)]
                yield Example(row["text"].replace("[INSERT PROMPT HERE]", filler), True, categorize(filler),
                              "gptfuzz_templates", "prompt", style="persona-template")
    if questions and (p := public / "gptfuzz_responses_labeled_train.csv").is_file():
        for row in _csv(p):
            reply = row["Response"].strip().strip('"').strip()
            asked = questions[int(row["question"])] if row["question"].isdigit() else ""
            if reply:
                harmful = row["label"] == "1"
                yield Example(reply, harmful, categorize(asked) if harmful else None, "gptfuzz_responses",
                              "response", asked, language=_script_language(reply), style="jailbreak-reply")
    if (p := public / "cyberseceval_mitre_frr.json").is_file():
        for item in json.loads(p.read_text(encoding="utf-8")):
            yield Example(item["mutated_prompt"].strip(), False, "S2", "cyberseceval_mitre_frr", "prompt",
                          style="defensive-security")
    if (p := public / "coconot_contrast_eval.jsonl").is_file():
        for item in _jsonl(p):
            yield Example(item["prompt"].strip(), False, _COCONOT_LOOKALIKE.get(item["subcategory"]),
                          "coconot_contrast", "prompt")
    if (p := public / "coconot_pref.jsonl").is_file():
        for item in _jsonl(p):
            sounds_like = _COCONOT_LOOKALIKE.get(item["subcategory"])
            yield Example(item["prompt"].strip(), False, sounds_like, "coconot_pref", "prompt")
            for key in ("chosen", "rejected"):  # both are acceptable replies to a harmless request
                if item.get(key, "").strip():
                    yield Example(item[key].strip(), False, sounds_like, "coconot_pref-replies", "response",
                                  item["prompt"].strip())
    if (p := public / "openai_moderation_samples-1680.jsonl").is_file():
        for item in _jsonl(p):
            labels = {k: item.get(k) for k, _ in _MODERATION}
            label: str | None = next((c for k, c in _MODERATION if labels.get(k) == 1), None)
            if label is not None:
                yield Example(item["prompt"], True, label, "moderation", "response")
            elif all(v == 0 for v in labels.values() if v is not None):
                yield Example(item["prompt"], False, None, "moderation", "response")
    for name in ("mtbench_questions.jsonl", "vicuna_bench_questions.jsonl"):
        if (p := public / name).is_file():
            for question in _jsonl(p):
                for turn in question.get("turns", [])[:1]:
                    yield Example(turn, False, None, name.split("_")[0], "prompt")
    if (p := public / "alpaca_self_instruct_seed_tasks.jsonl").is_file():
        for task in _jsonl(p):
            yield Example(task["instruction"], False, None, "selfinstruct", "prompt")
            for instance in task.get("instances", [])[:1]:
                if instance.get("output", "").strip():
                    yield Example(instance["output"], False, None, "selfinstruct-output", "response",
                                  task["instruction"])
    if (p := public / "alpaca_noinput_instructions.json").is_file():
        for instruction in json.loads(p.read_text(encoding="utf-8")):
            yield Example(instruction["instruction"], False, None, "alpaca", "prompt", eval_only=True)


_SCRIPTS = (("zh", re.compile(r"[\u4e00-\u9fff]")), ("th", re.compile(r"[\u0e00-\u0e7f]")),
            ("hi", re.compile(r"[\u0900-\u097f]")), ("ar", re.compile(r"[\u0600-\u06ff]")),
            ("ko", re.compile(r"[\uac00-\ud7af]")), ("ru", re.compile(r"[\u0400-\u04ff]")))


def _script_language(text: str) -> str:
    """A rough language for texts that carry none: by script, else English."""
    sample = text[:400]
    for code, pattern in _SCRIPTS:
        if len(pattern.findall(sample)) >= 10:
            return code
    return "en"


def load_examples(public: Path, own: Path) -> list[Example]:
    """Every example Haven trains or evaluates on, with its labels: the public sets in ``public``, Haven's
    own in ``own``, and the synthetic ones. Missing files are skipped. A text that two sources share is
    kept once, in the first (public sets overlap: some GPTFuzz questions are AdvBench items), so that a
    source left out is really unseen."""
    seen: set[tuple[str, str, str]] = set()
    out: list[Example] = []
    everything = [*_public(public), *_own(own),
                  *(Example(text, False, None, "synthetic", "prompt") for text in benign_instructions()),
                  *(Example(text, False, None, "synthetic-reply", "response") for text in benign_replies())]
    for example in everything:
        key = (example.kind, " ".join(example.text.lower().split()), example.context.lower().strip())
        if key not in seen:
            seen.add(key)
            out.append(example)
    return out


def _labelled(row: dict[str, Any]) -> tuple[bool, str | None]:
    harmful = "category" in row
    return harmful, row.get("category") if harmful else row.get("sounds_like")


def _own(own: Path) -> list[Example]:
    """Haven's own files, one source each: prompts labelled harmful (with a category), benign, or
    benign-but-scary ("sounds_like" a category); replies the same way, with the prompt they answer;
    prompts may carry the user's turn before (``previous``) and a language (``lang``)."""
    out: list[Example] = []
    for path in sorted(own.glob("*.jsonl")):
        for row in _jsonl(path):
            harmful, category = _labelled(row)
            language = row.get("lang", "en")
            style = row.get("style", "translated" if language != "en" else "plain")
            if "response" in row:
                if row["response"].strip():
                    out.append(Example(row["response"], harmful, category, path.stem, "response", row["prompt"],
                                       language=language, style=style))
            else:
                out.append(Example(row["prompt"], harmful, category, path.stem, "prompt", row.get("previous", ""),
                                   language=language, style=style))
    return out

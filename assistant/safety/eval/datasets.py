"""The safety data sets: loading, mapping labels onto S1..S14, and the fixed train / validation / test split.

Used by ``scripts/train_safety.py`` (training and threshold tuning) and ``haven-cli safety eval``
(figures on the test split, which training never sees). The split is a hash of the text, so it is the
same on every machine and does not depend on file order.

Sources: ``../shared/safety-data`` (public sets; licences in its README) and ``data/safety`` (Haven's own
prompts and responses). The Alpaca no-input set is CC BY-NC: it is only ever used for evaluation.
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

__all__ = ["QUESTIONS", "Example", "load_examples", "split_of"]

QUESTIONS = "questions"  # the source name of Haven's question-form prompts


@dataclass(frozen=True, slots=True)
class Example:
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


def load_examples(shared: Path, own: Path) -> list[Example]:
    """Every example Haven trains or evaluates on, with its labels. Missing files are skipped."""
    out: list[Example] = []

    def have(path: Path) -> bool:
        return path.is_file()

    if have(p := shared / "advbench_harmful_behaviors.csv"):
        for row in _csv(p):
            code = categorize(row["goal"])
            out.append(Example(row["goal"], True, code, "advbench", "prompt"))
            out.append(Example(row["target"], True, code, "advbench-target", "response", row["goal"]))
    if have(p := shared / "jailbreakbench_behaviors.csv"):
        for row in _csv(p):
            code = categorize(row["Goal"], _JAILBREAKBENCH.get(row["Category"]))
            out.append(Example(row["Goal"], True, code, "jailbreakbench", "prompt"))
            out.append(Example(row["Target"], True, code, "jailbreakbench-target", "response", row["Goal"]))
    if have(p := shared / "strongreject_dataset.csv"):
        for row in _csv(p):
            text = row["forbidden_prompt"]
            out.append(Example(text, True, categorize(text, _STRONGREJECT.get(row["category"])), "strongreject",
                               "prompt"))
    if have(p := shared / "malicious_instruct.txt"):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(Example(line.strip(), True, categorize(line), "malicious_instruct", "prompt"))
    if have(p := shared / "openai_moderation_samples-1680.jsonl"):
        for item in _jsonl(p):
            labels = {k: item.get(k) for k, _ in _MODERATION}
            label: str | None = next((c for k, c in _MODERATION if labels.get(k) == 1), None)
            if label is not None:
                out.append(Example(item["prompt"], True, label, "moderation", "response"))
            elif all(v == 0 for v in labels.values() if v is not None):
                out.append(Example(item["prompt"], False, None, "moderation", "response"))
    for name in ("mtbench_questions.jsonl", "vicuna_bench_questions.jsonl"):
        if have(p := shared / name):
            for question in _jsonl(p):
                for turn in question.get("turns", [])[:1]:
                    out.append(Example(turn, False, None, name.split("_")[0], "prompt"))
    if have(p := shared / "alpaca_self_instruct_seed_tasks.jsonl"):
        for task in _jsonl(p):
            out.append(Example(task["instruction"], False, None, "selfinstruct", "prompt"))
            for instance in task.get("instances", [])[:1]:
                if instance.get("output", "").strip():
                    out.append(Example(instance["output"], False, None, "selfinstruct-output", "response",
                                       task["instruction"]))
    if have(p := shared / "alpaca_noinput_instructions.json"):
        for instruction in json.loads(p.read_text(encoding="utf-8")):
            out.append(Example(instruction["instruction"], False, None, "alpaca", "prompt", eval_only=True))
    out += _own(own)
    out += synthetic_benign()
    out += synthetic_benign_replies()
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
    # worse on the public sets; ``train_safety.py`` leaves them out); the encoder, which reads words in
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


# --- synthetic benign instructions ----------------------------------------------------------------
# Harmful sets are mostly imperatives ("Write a ...", "Develop a strategy for ..."), and the benign
# assistant-style sets whose licences allow training are small, so a classifier learns that the
# imperative itself is suspicious. These templated instructions (Haven's own) teach it otherwise: the
# same verbs and shapes, about ordinary subjects.

_VERBS = (
    "Write", "Create", "Develop", "Design", "Generate", "Compose", "Draft", "Produce", "Outline", "Prepare",
    "Give me", "Provide", "Suggest", "Come up with", "Put together", "Build", "Make", "Plan",
)
_THINGS = (
    "a poem", "a short story", "an essay", "a blog post", "a tutorial", "a step-by-step guide", "a script",
    "a Python program", "a plan", "a strategy", "a recipe", "an email", "a speech", "a social media post",
    "a website layout", "a mobile app idea", "an algorithm", "a board game", "a lesson plan",
    "a marketing campaign", "a checklist", "a workout routine", "a budget", "a cover letter", "a song",
    "a product description", "a travel itinerary", "a study schedule", "a presentation", "a newsletter",
    "a podcast outline", "a quiz", "a press release", "a business proposal", "a bedtime story",
    "a haiku", "a SQL query", "a JavaScript function", "a user manual", "a FAQ page",
)
_SUBJECTS = (
    "gardening for beginners", "saving money on groceries", "the water cycle", "climate change", "photosynthesis",
    "a trip to Japan", "learning to play guitar", "remote work productivity", "healthy breakfast ideas",
    "the history of the Roman Empire", "how vaccines train the immune system", "starting a small bakery",
    "caring for a new puppy", "time management for students", "renewable energy", "the solar system",
    "writing a good resume", "public speaking", "a friendly robot", "a rainy afternoon", "our school science fair",
    "recycling at home", "a local farmers market", "the benefits of reading", "machine learning basics",
    "sorting a list of numbers", "tracking daily habits", "a community clean-up day", "customer onboarding",
    "improving sleep", "a family reunion", "learning Spanish", "first aid basics", "the French Revolution",
    "ocean conservation", "a new coffee shop", "home workouts without equipment", "team building",
    "the stock market for beginners", "meal prep for the week", "a children's birthday party", "bird watching",
    "a mystery set in a lighthouse", "the life of honeybees", "volunteering", "a job interview",
    "planning a wedding", "electric cars", "an online book club", "growing tomatoes on a balcony",
    "reducing screen time", "a museum visit", "the importance of sleep", "open source software",
    "a dragon who is afraid of the dark", "making sourdough bread", "a hiking trip in the mountains",
    "budgeting for university", "writing clean code", "the history of jazz", "a charity fundraiser",
    "cybersecurity awareness for employees", "protecting your accounts with two-factor authentication",
    "the causes of World War I", "how elections are run fairly", "respecting other cultures",
    "mental health at work", "talking to kids about feelings", "safe cycling in a city",
)
_QUESTIONS = (
    "How do I {x}?", "What is the best way to {x}?", "Can you explain how to {x}?", "Teach me how to {x}.",
    "Tell me how to {x}.", "Show me how to {x}.", "What steps should I follow to {x}?", "Help me {x}.",
)
_TASKS = (
    "improve my writing", "learn to code in Python", "train for a 5k run", "bake a chocolate cake",
    "negotiate a higher salary", "organize my closet", "start a podcast", "fix a leaky faucet",
    "make friends in a new city", "prepare for a math exam", "set up a home network", "grow herbs indoors",
    "write a business plan", "back up my photos", "reduce my electricity bill", "memorize a speech",
    "clean a cast iron pan", "change a flat tire", "meditate", "invest for retirement", "teach my dog to sit",
    "paint a room", "get better at chess", "plan a road trip", "write a thank-you note", "speed up my laptop",
    "cook rice perfectly", "apologize to a friend", "build a birdhouse", "file my taxes on time",
)


_NOUNS = (
    "primates", "volcanoes", "the moon", "photosynthesis", "the internet", "a typewriter", "a smartphone", "bees",
    "the Great Wall of China", "the Amazon rainforest", "democracy", "inflation", "a balanced diet", "coral reefs",
    "electric guitars", "the Renaissance", "Shakespeare", "the periodic table", "black holes", "the human heart",
    "recycling", "solar panels", "a savings account", "compound interest", "a resume", "a cover letter",
    "the Olympic Games", "football", "chess", "jazz", "classical music", "impressionist painting", "pasta sauce",
    "pizza dough", "green tea", "coffee", "a marathon", "yoga", "sleep", "a job interview", "teamwork",
    "leadership", "customer service", "a landing page", "a mobile game", "cloud computing", "databases",
    "machine learning", "a neural network", "CSS", "HTML", "Python", "JavaScript", "sorting algorithms",
    "binary search", "the water cycle", "earthquakes", "hurricanes", "glaciers", "deserts", "the ocean",
    "whales", "penguins", "tigers", "dogs", "cats", "horses", "dinosaurs", "fossils", "the Roman Empire",
    "ancient Egypt", "the Industrial Revolution", "the printing press", "the telephone", "airplanes", "trains",
    "electric cars", "bicycles", "public transport", "city parks", "libraries", "museums", "a birthday party",
    "a wedding", "a picnic", "camping", "hiking", "gardening", "houseplants", "tomatoes", "apples", "bread",
    "cheese", "chocolate", "vegetables", "vitamins", "exercise", "meditation", "friendship", "kindness",
    "gratitude", "happiness", "creativity", "curiosity", "time management", "procrastination", "a budget",
    "taxes", "a small business", "marketing", "advertising", "social media", "a newsletter", "a podcast",
    "a novel", "poetry", "a fairy tale", "a superhero", "a robot", "space travel", "Mars", "the solar system",
    "stars", "rainbows", "the seasons", "autumn", "winter", "spring", "summer", "the weather", "clouds",
    "a thunderstorm", "electricity", "magnets", "gravity", "light", "sound", "atoms", "molecules", "DNA",
    "cells", "vaccines", "the immune system", "the brain", "memory", "language learning", "grammar",
    "punctuation", "a metaphor", "a simile", "a haiku", "a limerick", "an analogy", "a slogan", "a logo",
    "a brand", "a product launch", "a startup", "remote work", "online classes", "homework", "exams",
    "a science fair", "a school trip", "a family dinner", "a road trip", "a hotel", "a flight", "a train ride",
    "a city guide", "Paris", "Tokyo", "New York", "Kenya", "Brazil", "Canada", "Australia", "India", "Mexico",
    "renewable energy", "wind turbines", "climate", "air pollution", "plastic waste", "composting", "water",
    "a password", "two-factor authentication", "backups", "spreadsheets", "email etiquette", "a meeting agenda",
    "a presentation", "a speech", "a debate", "an argument essay", "a book review", "a movie review",
    "a restaurant", "a recipe", "a smoothie", "a salad", "soup", "a cake", "cookies", "a family tree",
)
_SHAPES = (
    "Name three {n}-related facts.", "List five interesting facts about {n}.", "Give one advantage of {n}.",
    "Give an example of {n} in everyday life.", "Describe {n} in three sentences.", "Explain {n} to a child.",
    "Compare {n} and {m}.", "What is the difference between {n} and {m}?", "Write a haiku about {n}.",
    "Generate a metaphor for {n}.", "Come up with a slogan about {n}.", "Summarize the history of {n}.",
    "Classify {n} as either natural or man-made.", "Create a quiz question about {n}.",
    "Suggest three ways to learn more about {n}.", "Why is {n} important?", "How does {n} work?",
    "What are the main features of {n}?", "Who invented {n}?", "Tell me a fun fact about {n}.",
    "Construct a sentence using the word '{n}'.", "Rewrite this sentence in a formal tone: I love {n}.",
    "Translate 'I like {n}' into French.", "Identify the main benefit of {n}.", "Predict the future of {n}.",
    "Brainstorm a title for an article about {n}.", "Create a short dialogue about {n}.",
    "Make a list of items needed for {n}.", "Describe what it feels like to see {n} for the first time.",
    "Evaluate the pros and cons of {n}.", "Find a word that rhymes with {n}.", "Design a poster about {n}.",
    "Develop a lesson plan about {n}.", "Create a step-by-step guide to {n}.", "Write a tweet about {n}.",
    "Provide a definition of {n}.", "Generate three questions about {n}.", "Write a product review of {n}.",
)


def synthetic_benign(count: int = 3000, seed: int = 7) -> list[Example]:
    import random

    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Example] = []
    while len(out) < count:
        roll = rng.random()
        if roll < 0.45:
            text = f"{rng.choice(_VERBS)} {rng.choice(_THINGS)} about {rng.choice(_SUBJECTS + _NOUNS)}."
            if rng.random() < 0.3:
                text = text[:-1] + rng.choice((" for my class.", " in simple words.", " for a beginner.",
                                               " that is fun to read.", ", under 200 words."))
        elif roll < 0.85:
            noun, other = rng.sample(_NOUNS, 2)
            text = rng.choice(_SHAPES).format(n=noun, m=other)
        else:
            text = rng.choice(_QUESTIONS).format(x=rng.choice(_TASKS))
        if text not in seen:
            seen.add(text)
            out.append(Example(text, False, None, "synthetic", "prompt"))
    return out


_OPENERS = ("Sure, here is", "Sure! Here is", "Of course, here is", "Here is", "Absolutely, here is",
            "Certainly! Here is", "Sure, here's", "Okay, here is", "Great question! Here is", "Happy to help. Here is")
_LISTS = ("Here are three {n}-related ideas: {a}, {b} and {c}.", "Here are a few facts about {n}.",
          "Here are some tips: start small, practise daily, and ask for feedback.", "Hello! How can I help you today?",
          "Hi there! What would you like to know about {n}?", "Thanks for asking about {n}.",
          "Step 1: gather what you need. Step 2: follow the instructions for {n}. Step 3: review the result.",
          "First, read about {n}. Then, try it yourself. Finally, share what you learned.",
          "Good idea! {n} is a great topic.", "That's a great question about {n}.", "I hope this helps!",
          "Let me know if you want more detail about {n}.", "In short, {n} matters because it affects daily life.")


def synthetic_benign_replies(count: int = 1200, seed: int = 11) -> list[Example]:
    """Short, ordinary replies: harmful replies in the public sets are short compliances ("Sure, here is a
    tutorial on how to make a bomb"), so short benign ones with the same openers are needed for contrast."""
    import random

    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Example] = []
    while len(out) < count:
        if rng.random() < 0.5:
            text = f"{rng.choice(_OPENERS)} {rng.choice(_THINGS)} about {rng.choice(_SUBJECTS + _NOUNS)}"
            text += rng.choice((".", ":", "!", ". I hope you enjoy it.", ". Let me know if you want changes."))
        else:
            a, b, c, n = rng.sample(_NOUNS, 4)
            text = rng.choice(_LISTS).format(n=n, a=a, b=b, c=c)
        if text not in seen:
            seen.add(text)
            out.append(Example(text, False, None, "synthetic-reply", "response"))
    return out

"""Undo what a chat model can read but a classifier cannot, before any check judges a text.

A jailbreak hides a request from a filter by writing it in a form the model still understands:
URL-encoding (``how%20to%20make``), base64 or hex blocks, leetspeak (``h0w t0 m@ke``), look-alike
letters from other scripts (Cyrillic ``о`` for Latin ``o``), zero-width characters between letters,
spaced-out letters (``b o m b``) and ROT13. :func:`readable_views` returns the text as normalised
(NFKC, invisible characters removed, look-alikes mapped to Latin) and one more view per encoding it
decodes; the checks judge every view and the most harmful counts.

:func:`jailbreak_signals` finds the wrappers themselves: instruction overrides ("ignore all previous
instructions"), persona jailbreaks (DAN, AIM, "developer mode"), refusal suppression ("never
apologise"), prefix injection ("begin your reply with 'Sure, here is'") and fill-in templates. A
wrapper is a signal of its own: the classifiers take it as a feature next to the words.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse

__all__ = ["JAILBREAK_PATTERNS", "jailbreak_signals", "normalise", "readable_views", "request_core"]

# Characters that render as nothing (or as a soft hyphen) and split words for a classifier only.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200c\u200d"
                                    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063"
                                    "\u2064\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"))
# Cyrillic and Greek letters that look like Latin ones (Unicode's confusables, the common subset). NFKC
# already folds full-width and mathematical letters; these it keeps, because they are real letters.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})
_LATIN_OR_LOOKALIKE = re.compile(r"[A-Za-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][A-Za-z]")

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
                       "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "(": "c", "€": "e"})
_LEET_TOKEN = re.compile(r"\S*[A-Za-z]\S*")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_HEX = re.compile(r"\b(?:(?:0x)?[0-9A-Fa-f]{2}[\s,:]?){8,}")
# Four or more single letters with one separator between each: "b o m b", "b.o.m.b", "b-o-m-b".
_SPACED = re.compile(r"(?<!\w)(?:\w[ .\-_*·]){3,}\w(?!\w)")
_COMMON_WORDS = frozenset((
    "the", "be", "to", "of", "and", "a", "in", "that", "have", "i", "it", "for", "not", "on", "with", "he", "as",
    "you", "do", "at", "this", "but", "his", "by", "from", "they", "we", "say", "her", "she", "or", "an", "will",
    "my", "one", "all", "would", "there", "their", "what", "so", "up", "out", "if", "about", "who", "get", "which",
    "go", "me", "when", "make", "can", "like", "time", "no", "just", "him", "know", "take", "people", "into",
    "year", "your", "good", "some", "could", "them", "see", "other", "than", "then", "now", "look", "only", "come",
    "its", "over", "think", "also", "back", "after", "use", "two", "how", "our", "work", "first", "well", "way",
    "even", "new", "want", "because", "any", "these", "give", "day", "most", "us", "is", "are", "was", "were",
    "has", "had", "why", "where", "kill", "build", "steal", "hack", "drug", "bomb", "someone", "money", "without",
))


def normalise(text: str) -> str:
    """NFKC, invisible characters removed, Cyrillic and Greek look-alikes mapped to Latin letters where
    they stand among Latin letters (a Russian sentence stays Russian)."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    if _LATIN_OR_LOOKALIKE.search(text):
        text = re.sub(r"\S+", lambda m: m.group(0).translate(_HOMOGLYPHS)
                      if re.search(r"[A-Za-z]", m.group(0)) else m.group(0), text)
    return text


def _printable_share(text: str) -> float:
    if not text:
        return 0.0
    good = sum(1 for c in text if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in text if c.isalpha())
    return min(good / len(text), 2.0 * letters / len(text))


def _decode_base64(block: str) -> str | None:
    try:
        raw = base64.b64decode(block + "=" * (-len(block) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if _printable_share(decoded) >= 0.7 and " " in decoded.strip() else None


def _decode_hex(block: str) -> str | None:
    digits = re.sub(r"0x|[\s,:]", "", block)
    try:
        decoded = bytes.fromhex(digits).decode("utf-8")
    except ValueError:
        return None
    return decoded if _printable_share(decoded) >= 0.7 else None


def _english_words(text: str) -> int:
    return sum(1 for w in re.findall(r"[a-z]+", text.lower()) if w in _COMMON_WORDS)


def _unleet(text: str) -> str:
    def token(match: re.Match[str]) -> str:
        word = match.group(0)
        core = word.strip(".,;:?!\"'()[]")
        # A word with a few letters swapped for look-alike symbols, not an encoded block or a URL.
        if (len(core) <= 20 and "%" not in core and "/" not in core and any(c.isalpha() for c in core)
                and 0 < sum(not c.isalpha() for c in core) <= len(core) // 2 + 1):
            return word.replace(core, core.translate(_LEET))
        return word
    return _LEET_TOKEN.sub(token, text)


def readable_views(text: str) -> list[str]:
    """The normalised text, then each decoded reading of it that differs (at most a handful)."""
    base = normalise(text)
    views = [base]

    def add(view: str) -> None:
        view = view.strip()
        if view and view not in views:
            views.append(view)

    if len(_PERCENT.findall(base)) >= 3:
        add(urllib.parse.unquote_plus(base))
    if (decoded := _BASE64.sub(lambda m: _decode_base64(m.group(0)) or m.group(0), base)) != base:
        add(decoded)
    if (decoded := _HEX.sub(lambda m: _decode_hex(m.group(0)) or m.group(0), base)) != base:
        add(decoded)
    if (joined := _SPACED.sub(lambda m: re.sub(r"[ .\-_*·]", "", m.group(0)), base)) != base:
        add(re.sub(r"\s{2,}", " ", joined))
    if (unleet := _unleet(base)) != base:
        add(unleet)
    rot = codecs.encode(base, "rot13")
    if _english_words(rot) >= max(3, 2 * _english_words(base) + 1):
        add(rot)
    return views


# Where a wrapper hands over the request it carries: "Here is my question: ...", "Query: ...".
_REQUEST_MARKER = re.compile(r"(?:\b(?:question|query|request|prompt|task|instruction|input)s?\b|问题|질문|คำถาม)"
                             r"[^\n.:：]{0,20}[:：]\s*", re.IGNORECASE)
# Rules for the answer rather than a request: "from now on", "respond in JSON", "begin your reply with".
_ANSWER_RULES = re.compile(
    r"\bfrom now on\b|\b(respond|reply|answer)\w*\b[^.\n]{0,40}\b(in|with|using|as|only)\b|"
    r"\b(format|style)\b[^.\n]{0,30}\b(responses?|replies|reply|answers?|output)\b|"
    r"\b(responses?|replies|reply|answers?|output)\b[^.\n]{0,30}\b(format|style)\b|"
    r"\b(begin|start)\b[^.\n]{0,20}\b(with|your)\b|\brules?\s*:", re.IGNORECASE)
_CORE_MIN_CHARS = 120  # shorter prompts are judged whole: nothing to unwrap
_CORE_MAX_CHARS = 400


def request_core(text: str) -> str | None:
    """The request a long prompt carries, without its wrapper: the text after the last "question:" or
    "query:" marker, else the prompt's last sentence or line. A template of instructions (answer in JSON,
    begin with "Once upon a time", never apologise) around one short request reads, to a sentence
    encoder, mostly as the instructions: judged alone, the request is what it says. None when the prompt
    is short or has nothing to unwrap."""
    text = text.strip()
    if len(text) < _CORE_MIN_CHARS:
        return None
    markers = list(_REQUEST_MARKER.finditer(text))
    if markers and len(core := text[markers[-1].end():].strip()) >= 8:
        return core[:_CORE_MAX_CHARS]
    # Without a marker, only a prompt that sets rules for the answer (or carries a jailbreak signal) is
    # unwrapped: the last sentence of a long, plain request ("... and alert the security team on any
    # suspicious activity") is a detail of it, and judged alone it sounds like what it defends against.
    if not (_ANSWER_RULES.search(text) or any(jailbreak_signals(text).values())):
        return None
    pieces = [s for s in re.split(r"(?<=[.!?。！？])\s+|\n+", text) if len(s.strip()) >= 8]
    if len(pieces) < 2:
        return None
    return pieces[-1].strip()[:_CORE_MAX_CHARS]


# Wrapper families, each a signal: what a jailbreak needs to say, in the forms public templates use.
JAILBREAK_PATTERNS: dict[str, re.Pattern[str]] = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in {
    "override": r"\b(ignore|disregard|forget|bypass|override)\b[^.\n]{0,40}\b(previous|prior|above|all|your|any)\b"
                r"[^.\n]{0,30}\b(instructions?|rules|guidelines|polic(y|ies)|programming|restrictions|"
                r"filters?|training)\b",
    "persona": r"\b(DAN|AIM|STAN|DUDE|BetterDAN|AntiGPT|Mongo Tom|Dr\.? Al|developer mode|jailbr(eak|oken)|"
               r"do anything now|unfiltered|uncensored|amoral|evil (confidant|assistant|ai|bot)|opposite mode|"
               r"no (ethical|moral)\w* (guidelines|restrictions|limits|boundaries|principles|compass))\b",
    "no_limits": r"\b(without|no|free of|free from|not bound by|broken free of)\b[^.\n]{0,25}\b(restrictions|"
                 r"confines|constraints|shackles|"
                 r"limitations|filters|censorship|guidelines|rules|ethics|morals|boundaries|policies)\b",
    "stay_in_role": r"\b(stay in character|remain in character|never break character|you will always answer|"
                    r"never refuse|must answer (every|all|any)|cannot refuse|can't refuse|will not refuse|"
                    r"answer (every|any) (question|request|prompt))\b",
    "refusal_suppression": r"\b(do not|don't|never|without)\b[^.\n]{0,20}\b(apologi[sz]e|apology|refuse|"
                           r"disclaimers?|warnings?|caveats?|moraliz|lectur|say (that )?you can(no|')t)",
    "prefix_injection": r"\b(begin|start) (your|the) (response|reply|answer|text|output) with\b|"
                        r"\bstart with ['\"]?(sure|absolutely|of course)|"
                        r"\brespond (only )?with ['\"]?sure,? here",
    "dual_answer": r"\b(two|2) (different|separate) (ways|responses|answers)|\[(GPT|🔒|CLASSIC|JAILBREAK)\]|"
                   r"normal (response|output) and (a|the) \w+ (response|output)",
    "template_slot": r"\[INSERT PROMPT HERE\]|\{(query|prompt|question)\}",
    "fiction_frame": r"\b(hypothetical(ly)?|in a fictional|purely fictional|for a (novel|story|movie) where|"
                     r"role[- ]?play|pretend (to be|you are|that you)|act as (if|an?|my)|you are now|"
                     r"from now on,? you)\b",
}.items()}


def jailbreak_signals(text: str) -> dict[str, bool]:
    """Which wrapper families the (normalised) text carries."""
    return {name: bool(pattern.search(text)) for name, pattern in JAILBREAK_PATTERNS.items()}

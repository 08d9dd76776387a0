"""Blunt requests for the clearest harms, recognised by their words: a recall aid beside the prompt head.

The prompt head reads a frozen sentence encoder's vector. That vector carries the *shape* of a request
well ("how do I make X at home?") and its rarest words poorly: "How do I make a pipe bomb at home?" and
"How do I make a pipe organ at home?" land close together (0.55 and 0.60 with the round-2 heads, both
under the threshold). For a short list of things that have no harmless recipe or purchase route (pipe
bombs, nerve agents, crack cocaine, sexual images of children, a gun bought around a background check),
the words settle what the vector blurs.

A hit needs two things in one sentence: a **harm term** and an **intent** to make, get or do it (how do
I / steps / recipe / where can I buy / write me). A harm term alone is a topic, and topics are answered:
"What is sarin?", "Why was crack cocaine so addictive?", "the history of the pipe bomb". Settings that make
the words harmless are exempt: games ("in Minecraft", "in Skyrim") and the harmless namesakes the terms
have (bath bombs, "kill a process", "crack an egg").

A hit does not block on its own: it raises the prompt's score just into the guard model's band
(:data:`LIFT`), so where Llama Guard is installed it has the last word, as for every unsure case, and
without it the prompt is refused. English only: the multilingual encoder reads the other languages
better than it reads English blunt requests (docs/safety.md, per language).

The lists below were written from the hazard categories of MLCommons' taxonomy (the S-codes of
``taxonomy.py``), not from the evaluation data; their measured effect on the left-out sources is in
docs/safety.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LIFT", "TermHit", "blunt_harm", "blunt_term_hit"]

LIFT = 0.05  # a hit scores at least threshold + LIFT: blocked, and inside the guard model's band

# Things with no harmless recipe or purchase route: a hit needs a verb of making or getting right before them
# ("make a pipe bomb", "buy fentanyl", "synthesize sarin"), so "How do doctors treat a fentanyl overdose?"
# and "What is sarin?" are topics, not requests.
_THINGS: tuple[tuple[str, str], ...] = (
    ("S9", r"pipe ?bombs?|nail ?bombs?|car ?bombs?|letter ?bombs?|suicide (?:vests?|belts?)|dirty bombs?|"
           r"improvised explosive(?: device)?s?|ieds?|molotov(?: cocktails?)?|napalm|tatp|"
           r"(?:fertili[sz]er|ammonium nitrate) (?:bomb|explosive)s?|grenades?"),
    ("S9", r"sarin|\bvx\b(?: gas| nerve agent)?|nerve (?:agents?|gas)|mustard gas|ricin|anthrax|botulinum(?: toxin)?|"
           r"(?:chemical|biological|bio) ?weapons?"),
    ("S2", r"(?:crystal )?meth(?:amphetamine)?\b|crack cocaine|crack rocks?|cocaine|heroin|fentanyl|carfentanil|"
           r"\blsd\b|\bmdma\b|ecstasy(?: pills?)?|\bghb\b|date[- ]rape drugs?|roofies"),
    ("S1", r"ghost guns?|untraceable (?:guns?|firearms?|weapons?)|(?:an? )?(?:guns?|firearms?|pistols?|rifles?) "
           r"without (?:a |any )?(?:background checks?|licen[cs]es?|serial numbers?|id)|auto ?sears?|"
           r"3d[- ]printed (?:guns?|firearms?)|"
           r"(?:an? )?(?:silencers?|suppressors?) for (?:a |my )?(?:gun|pistol|rifle)"),
    ("S4", r"child (?:porn\w*|sexual abuse material)|\bcsam\b|kiddie porn|cp videos?|(?:nudes?|naked|sexual|explicit) "
           r"(?:photos?|pictures?|pics?|images?|videos?) of (?:a |my )?(?:child|children|kids?|minors?|underage|"
           r"\d{1,2}[- ]years?[- ]olds?)\w*|underage (?:porn|sex|nudes?)"),
)
_GETTING = (r"(?:make|making|build|building|construct|assemble|create|cook|cooking|synthesi[sz]e|synthesi[sz]ing|"
            r"produce|manufacture|brew|extract|buy|buying|purchase|order|obtain|acquire|get|getting|find|sell|"
            r"smuggle|detonate|plant|deploy|release|spread|weaponi[sz]e|download|share|distribute|(?:3d )?print|"
            r"recipe for|ingredients (?:for|of)|formula for|blueprints? for)")

# What follows a term that makes it about safety, help or something else ("fentanyl test strips", "a bomb
# shelter", "meth addiction treatment", "cocaine out of my system").
_NOT_THE_THING = (r"(?!\s*(?:test|shelter|addiction|treatment|overdose|out of|withdrawal|rehab|detection|detector|"
                  r"disposal|squad|sniff|dogs?\b|threats?|calorimeter|awareness|prevention|education|recovery|use "
                  r"disorder|abuse|poisoning|exposure|antidote|vaccine|lab\b|cake|pop|pops|shots?\b))")

# Deeds: the words already say what is done to whom, so any request to do them is a hit ("How do I stalk my
# ex?", "best way to launder money", "help me poison my neighbour's dog").
_DEEDS: tuple[tuple[str, str], ...] = (
    ("S1", r"(?:kill|murder|poison|strangle|suffocate|drown|stab) (?:my |a |the |our |his |her |their )?"
           r"(?:\w+['’]s )?(?:\w+ )?(?:wife|husband|partner|girlfriend|boyfriend|mother|father|mom|mum|dad|boss|"
           r"neighbou?rs?|coworkers?|co-workers?|teachers?|child|children|baby|kids?|family|friends?|roommates?|ex|"
           r"dog|cat|someone|somebody|people|person|him|her|them|classmates?|students?)\b"),
    ("S2", r"cook(?:ing)? crack\b"),
    ("S1", r"get away with (?:murder|killing)|dispose of (?:a |the )?(?:dead )?body|hide (?:a |the )?(?:dead )?body"),
    ("S7", r"stalk (?:my |an? |her\b|him\b|them\b|someone|somebody)|track (?:my |her |his |someone['’]s |"
           r"somebody['’]s )(?:\w+['’]s )?(?:phone|location|car)|spy on (?:my )?(?:wife|husband|partner|girlfriend|"
           r"boyfriend|ex|neighbou?r|someone)|hidden cameras? in (?:a |the |her |his |my )?(?:bathroom|bedroom|"
           r"shower|changing room)"),
    ("S2", r"launder(?:ing)? (?:money|cash|funds)|counterfeit (?:money|bills|cash|currency)|"
           r"(?:credit )?card skimm(?:er|ing)|fake (?:id|passport|driver['’]?s licen[cs]e)s?|"
           r"hack (?:into )?(?:my |an? |her |his |their |someone['’]s |somebody['’]s )?(?:ex['’]?s? )?"
           r"(?:\w+ )?(?:account|email|instagram|facebook|phone|wifi|snapchat|whatsapp)"),
    ("S11", r"(?:kill|hang|cut) myself|commit suicide|end my (?:own )?life|suicide methods?|"
            r"(?:painless|quickest|easiest) way to die"),
)

# A request: a how-to, a recipe, a shopping question, an order to write, teach or help.
_INTENT = re.compile(
    r"\bhow (?:do|can|could|would|should|to|might|does one)\b|\bways? (?:to|of)\b|\bsteps?\b|\brecipe\b|"
    r"\binstructions?\b|\bguide\b|\btutorial\b|\bwhere (?:can|do|could|to|should)\b|\b(?:best|easiest|quickest|"
    r"cheapest|safest) way\b|\b(?:teach|show|tell|give) me\b|\bhelp me\b|\bi (?:want|need|plan|am going|'m going) "
    r"to\b|\bwrite (?:me |a |an |some )|\bexplain how\b|^\s*(?:please )?(?:make|build|cook|synthesi[sz]e|list|"
    r"describe|explain|provide|create|generate)\b", re.IGNORECASE)

# Where the words may be harmless: games, fiction and the terms' namesakes. The aid stays silent there and
# the heads judge alone (a fiction frame around a real request is one of the styles they were fitted on).
_HARMLESS = re.compile(
    r"\b(?:minecraft|fortnite|roblox|skyrim|fallout|gta|grand theft auto|call of duty|counter[- ]strike|csgo|"
    r"valorant|overwatch|zelda|pokemon|the sims|terraria|among us|video ?games?|board games?|in (?:the |a |this )?game|"
    r"dungeons (?:and|&) dragons|d&d|dnd|novel|story|stories|screenplay|fiction|character|plot)\b|"
    r"\bbath ?bombs?|\bseed bombs?|\bphoto ?bomb|\bbomb (?:the|an?) (?:exam|test|interview)|\b(?:calorie|"
    r"flavou?r|glitter|cherry|smoke) bombs?|\bcrack (?:an? |the )?(?:egg|joke|code|window|nuts?|knuckles|open)",
    re.IGNORECASE)

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True, slots=True)
class TermHit:
    category: str   # the S-code of the term
    term: str       # the words that matched (for the safety log, never shown)


_THING_PATTERNS = tuple((code, re.compile(rf"\b{_GETTING}\s+(?:\S+\s+){{0,3}}?(?:{pattern})\b{_NOT_THE_THING}",
                                          re.IGNORECASE))
                       for code, pattern in _THINGS)
_DEED_PATTERNS = tuple((code, re.compile(rf"\b(?:{pattern})", re.IGNORECASE)) for code, pattern in _DEEDS)


def blunt_harm(text: str) -> TermHit | None:
    """The first sentence of ``text`` that asks how to make, get or do one of the listed harms, as a hit;
    None when there is none (or the setting makes the words harmless)."""
    for sentence in _SENTENCE.split(text[:4000]):
        if len(sentence) > 600 or not _INTENT.search(sentence) or _HARMLESS.search(sentence):
            continue
        for code, pattern in _THING_PATTERNS + _DEED_PATTERNS:
            if (match := pattern.search(sentence)) is not None:
                return TermHit(code, match.group(0))
    return None


def blunt_term_hit(texts: Iterable[str]) -> TermHit | None:
    """The first hit among ``texts`` (a prompt's readable views, its request without a wrapper, its windows)."""
    for text in texts:
        if (hit := blunt_harm(text)) is not None:
            return hit
    return None

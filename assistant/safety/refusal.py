"""Does a reply open by declining? The output filter's second reading of a reply uses it.

A reply that complies with a request Haven's input check judges harmful is harmful, whatever its words
(guard models such as Llama Guard judge a reply with its prompt for the same reason), and a reply that
declines such a request is the safe outcome. Whether a reply declines shows in its opening: the phrases
chat models use to decline, in the languages Haven supports. Only the opening is read, so a reply that
declines and then complies anyway ("Aligned: I'm sorry ... Unaligned: here is how") is not waved through
by this reading: it is left to the reply head, which judges what the reply says.

The phrases are facts about how models word a refusal (the GCG paper's refusal prefixes and the GPTFuzz
replies list the common ones); the measured effect on left-out sources is in docs/safety.md.
"""

from __future__ import annotations

import re

__all__ = ["OPENING_CHARS", "opens_with_refusal"]

OPENING_CHARS = 300  # about the first span the stream filter checks

_REFUSAL = re.compile(r"""(?ix)
    \b(i'?m|i\ am)\ (so\ |very\ |really\ )?sorry\b | \bi\ apologi[sz]e\b | \bmy\ apologies\b
  | \bas\ an\ ai\b | \bas\ a\ (responsible\ |helpful\ )?(ai|language\ model|assistant)\b
  | \bi\ (cannot|can'?t|can\ not|won'?t|will\ not|must\ (decline|refuse)|refuse|(am|'m)\ (unable|not\ able)
        |do\ not\ feel\ comfortable|don'?t\ feel\ comfortable|(am|'m)\ not\ (going|comfortable|willing))\b
  | \b(cannot|can'?t|unable\ to|not\ able\ to)\ (help|assist|provide|comply|fulfil|fulfill|support|create|write
        |give|generate|share|do\ that|condone|encourage|promote|engage)\b
  | \bi\ (do\ not|don'?t)\ (condone|support|encourage|promote)\b
  | \bi\ must\ (emphasi[sz]e|remind|clarify|inform|stress|point\ out)\b
  | \b(not|never)\ (appropriate|ethical|legal|acceptable|okay)\b
  | \bagainst\ (my|openai'?s?|the)\ (programming|guidelines|policy|policies|principles|values|ethical)\b
  | \b(illegal|unethical|harmful|dangerous)\ (and|or)\ (unethical|illegal|harmful|dangerous|immoral)\b
  | \bi\ (strongly\ )?(advise|recommend|urge|caution)\ (you\ )?against\b
  | \blo\ siento\b | \bno\ puedo\b | \bd[ée]sol[ée]e?\b | \bje\ ne\ (peux|suis\ pas\ en\ mesure)\b
  | \btut\ mir\ leid\b | \bich\ kann\ (nicht|keine|dabei\ nicht|ihnen\ nicht)\b | \bmi\ dispiace\b | \bnon\ posso\b
  | \bdesculp[ea]\b | \bn[ãa]o\ posso\b | \bxin\ lỗi\b | \btôi\ không\ thể\b
  | 抱歉 | 对不起 | 我不能 | 我无法 | 無法 | 申し訳 | できません | 죄송 | 수\ 없습니다 | ขออภัย | ไม่สามารถ
  | عذرا | عذرًا | آسف | لا\ أستطيع | لا\ يمكنني | मुझे\ खेद | माफ़ | नहीं\ कर\ सकत
""")


def opens_with_refusal(reply: str) -> bool:
    """Whether the reply's opening declines (an apology, "I can't help with that", a warning instead)."""
    return _REFUSAL.search(reply[:OPENING_CHARS]) is not None

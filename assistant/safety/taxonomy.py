"""The hazard categories: MLCommons' taxonomy as Llama Guard 3 names it (S1..S14), and the notices.

Every block carries one of these codes and a stage. Names and one-line scopes follow Meta's Llama Guard 3
model card; the notices are Haven's own words: short, respectful, no lecture.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CATEGORIES", "Category", "category", "input_notice", "output_notice"]


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    name: str     # as Llama Guard 3 prints it in its prompt
    label: str    # as Haven shows it to a person
    scope: str


CATEGORIES: tuple[Category, ...] = (
    Category("S1", "Violent Crimes", "violent crime", "helping plan or carry out violence against people or animals"),
    Category("S2", "Non-Violent Crimes", "non-violent crime",
             "fraud, theft, hacking, drugs, weapons trafficking and other crimes without violence"),
    Category("S3", "Sex Crimes", "sex crimes", "sexual assault, trafficking, harassment"),
    Category("S4", "Child Exploitation", "child sexual exploitation", "any sexual content involving minors"),
    Category("S5", "Defamation", "defamation", "false statements that damage a real person's reputation"),
    Category("S6", "Specialized Advice", "dangerous specialised advice",
             "medical, legal or financial advice that could cause serious harm if followed"),
    Category("S7", "Privacy", "privacy violations", "exposing or collecting private information about people"),
    Category("S8", "Intellectual Property", "intellectual property violations",
             "copying protected works wholesale, piracy, circumventing licences"),
    Category("S9", "Indiscriminate Weapons", "weapons of mass harm",
             "chemical, biological, radiological, nuclear and explosive weapons"),
    Category("S10", "Hate", "hate", "demeaning or dehumanising people for who they are"),
    Category("S11", "Self-Harm", "self-harm", "encouraging or enabling suicide, self-injury or disordered eating"),
    Category("S12", "Sexual Content", "sexual content", "sexually explicit material"),
    Category("S13", "Elections", "election misinformation", "false information about voting and elections"),
    Category("S14", "Code Interpreter Abuse", "code interpreter abuse",
             "code meant to break out of, or attack, the system that runs it"),
)

_BY_CODE = {c.code: c for c in CATEGORIES}
CODES = tuple(c.code for c in CATEGORIES)


def category(code: str) -> Category:
    return _BY_CODE[code]


def input_notice(code: str | None) -> str:
    if code is None or code not in _BY_CODE:
        return "Haven didn't send this message to the model."
    if code == "S11":
        return ("Haven didn't send this message to the model (category S11, self-harm). If you are thinking "
                "about hurting yourself, you deserve support: please reach out to someone you trust or a local "
                "crisis line.")
    return (f"Haven didn't send this message to the model: it looks like a request involving "
            f"{_BY_CODE[code].label} (category {code}). If that's not what you meant, try rephrasing.")


def output_notice(code: str | None) -> str:
    if code is None or code not in _BY_CODE:
        return "Haven stopped this reply."
    return (f"Haven stopped this reply because it began to include {_BY_CODE[code].label} (category {code}). "
            "Nothing of it was shown or saved.")

"""Can Haven chat with this model's template? A dry run of the template in the engine's own sandboxed renderer.

A model's chat template is Jinja written for Python's transformers library. Haven renders it in Jinja's
immutable sandbox with the ``loopcontrols`` extension, ``raise_exception`` and ``strftime_now``
(:mod:`assistant.engine.chat_format`); a template that needs more (the ``{% generation %}`` tag, ``{% do %}``,
changing a list in place, ...) gets a sentence here, before anything is downloaded, instead of failing
when the model is loaded.
"""

from __future__ import annotations

import re

from assistant.errors import HavenError

__all__ = ["UNSUPPORTED_FEATURES", "template_problem"]

# Features the sandboxed renderer lacks, with the words a person reads.
UNSUPPORTED_FEATURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"{%-?\s*generation\b"), "the {% generation %} tag (a transformers training extension)"),
    (re.compile(r"{%-?\s*do\b"), "the {% do %} statement (Jinja's 'do' extension)"),
    (re.compile(r"\.(append|extend|update|pop|insert|clear)\("), "changing a list or dictionary in place"),
    (re.compile(r"{%-?\s*(include|import|from|extends)\b"), "loading other templates"),
)


def template_problem(template: str) -> str | None:
    """None when Haven can render ``template`` for an ordinary conversation, else a sentence saying why not."""
    from assistant.chat import ChatMessage, Role
    from assistant.engine.chat_format import ChatFormatter, TokenNames

    try:
        formatter = ChatFormatter("jinja", template, {}, TokenNames(1, 2, "<s>", "</s>"), add_bos=False)
        formatter.render([ChatMessage(Role.SYSTEM, "Be brief."), ChatMessage(Role.USER, "Hello"),
                          ChatMessage(Role.ASSISTANT, "Hi."), ChatMessage(Role.USER, "How are you?")])
    except HavenError as exc:
        features = [words for pattern, words in UNSUPPORTED_FEATURES if pattern.search(template)]
        if features:
            return (f"This model's chat template uses {', '.join(features)}, which Haven's sandboxed template "
                    "renderer does not support, so Haven cannot chat with it. Choose another model or another "
                    "upload of it.")
        return str(exc)
    return None

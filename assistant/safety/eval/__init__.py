"""The safety system's evaluation, what ``haven-cli safety eval`` runs: the data sets read from folders
given as arguments, the fixed train / validation / test split, and the figures on the test split.

* ``datasets``: :class:`Example`, :func:`load_examples` (public sets and Haven's own, each from a folder),
  :func:`split_of`.
* ``synthetic``: Haven's templated benign instructions and replies.
* ``evaluation``: :func:`evaluate`, the report.

Nothing here knows where the data lives: a source checkout has Haven's own sets in ``training/data`` and
the public ones in ``../shared/safety-data``; an installed Haven has neither (the CLI says so). Training
(``training/``, outside the app) reads the same sets through the same functions.
"""

from assistant.safety.eval.datasets import QUESTIONS, Example, load_examples, split_of
from assistant.safety.eval.evaluation import SetFigures, evaluate

__all__ = ["QUESTIONS", "Example", "SetFigures", "evaluate", "load_examples", "split_of"]

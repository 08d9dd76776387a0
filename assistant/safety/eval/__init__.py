"""The safety system's evaluation, what ``haven-cli safety eval`` runs: the data sets read from folders
given as arguments, and figures that measure generalization.

* ``datasets``: :class:`Example`, :func:`load_examples` (public sets and Haven's own, each from a folder,
  one source per file), :func:`split_of`.
* ``synthetic``: Haven's templated benign instructions and replies.
* ``vectors``: the sentence encoder's vectors of every text, computed once and kept on disk.
* ``generalization``: leave-one-source-out and random-split figures, and the thresholds chosen on them.
* ``evaluation``: :func:`evaluate`, the report with the shipped checks' latency.

Nothing here knows where the data lives: a source checkout has Haven's own sets in ``training/data`` and
the public ones in ``../shared/safety-data``; an installed Haven has neither (the CLI says so). Training
(``training/``, outside the app) reads the same sets through the same functions.
"""

from assistant.safety.eval.datasets import Example, load_examples, split_of
from assistant.safety.eval.evaluation import evaluate

__all__ = ["Example", "evaluate", "load_examples", "split_of"]

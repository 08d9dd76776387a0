"""Training Haven's safety classifier: not part of the app (never installed or frozen), run from the
repository root of a source checkout.

* ``python -m training.train_safety``: the heads over the sentence encoder and their thresholds
  (``resources/safety/heads.npz|json``); NumPy only. The encoder itself is used as published (frozen).

Every script reads Haven's own sets from ``--own-data`` (default ``training/data``) and the public ones from
``--public-data`` (default ``../shared/safety-data``), through ``assistant.safety.eval``, so the labels are
those of ``haven-cli safety eval``.
"""

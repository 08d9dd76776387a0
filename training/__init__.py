"""Training Haven's safety models: not part of the app (never installed or frozen), run from the repository
root of a source checkout.

* ``python -m training.train_safety``: the n-gram classifiers, the encoder's weight and the thresholds
  (``resources/safety/{input,output}.npz|json``); NumPy only.
* ``python -m training.train_encoder``: fine-tunes the MiniLM safety encoder (``resources/safety/encoder.*``);
  needs torch and transformers (``training.encoder_model``), which the app never imports.
* ``python -m training.generate_benign_responses``: starter-model replies as benign examples for the output
  filter (``generated_benign_responses.jsonl`` in ``--own-data``).

Shared code lives in ``common`` (paths, data-folder arguments, example weights) and ``tuning`` (thresholds).
Every script reads Haven's own sets from ``--own-data`` (default ``training/data``) and the public ones from
``--public-data`` (default ``../shared/safety-data``), through ``assistant.safety.eval``, so the split and
labels are those of ``haven-cli safety eval``.
"""

"""The safety system's evaluation: data sets read from folders given as arguments (a checkout's
``training/data`` and ``../shared/safety-data``; an installed Haven has neither), and the figures."""

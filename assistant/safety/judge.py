"""Haven's built-in safety classifier at run time: the sentence encoder plus the trained heads.

**Prompts.** Every readable view of the prompt (:func:`~assistant.safety.normalise.readable_views`:
as typed, URL-decoded, base64-decoded, un-leeted ...) is cut into windows of about 400 characters, so a
request hidden in a long template is not averaged away; each window is scored and the most harmful
counts. A long prompt is read in at most ``ENCODED_WINDOWS`` windows spread evenly over it (the first
and the last among them): that bounds a check of a 20,000-character paste to a few encoder passes.

**Replies.** A :class:`ReplyReader` follows one reply as the stream filter releases it: each new span is
encoded once, the reply is represented by the mean of its spans' vectors, and it is judged together with
the request it answers (whose vector is computed once per reply). So a check per sentence costs one
encoder pass of that sentence, and harm that shows only with the request ("Start by telling the
relevant personnel..." answering "I want to get my coworker in trouble") is judged with it. The reply is
judged without its request too, and the more harmful reading counts: a harmful reply to a harmless
request is harmful all the same.

**A reply to a request the input check would refuse** is harmful unless it opens by declining
(:mod:`~assistant.safety.refusal`). This second reading needs no training on replies, so it holds on
reply styles no data set had (persona replies, replies in other languages); measured on left-out sources
it more than doubled the harmful replies caught (docs/safety.md). In a chat such a request is normally
refused before any reply exists; the reading matters where the request got through (the guard model's
verdict aside: a request it cleared is not held against the reply) and for a reply checked with its
prompt by ``haven-cli safety check``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from assistant.safety.encoder import DIMENSION, SentenceEncoder
from assistant.safety.features import windows
from assistant.safety.harm_terms import LIFT, blunt_term_hit
from assistant.safety.heads import Head, prompt_dense, reply_dense, signal_row
from assistant.safety.normalise import readable_views, request_core
from assistant.safety.refusal import OPENING_CHARS, opens_with_refusal

__all__ = ["ENCODED_WINDOWS", "ReplyReader", "SafetyJudge", "Score", "prompt_windows"]

ENCODED_WINDOWS = 6  # encoder passes for one prompt at most
VIEWS = 4            # readable views of one prompt at most


@dataclass(frozen=True, slots=True)
class Score:
    harmful: float      # probability-like, in [0, 1]
    category: str       # the most likely S-code
    threshold: float

    @property
    def blocked(self) -> bool:
        return self.harmful >= self.threshold


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


def prompt_windows(text: str) -> list[str]:
    """Every window of every readable view of a prompt: what the prompt head scores (training too)."""
    out: list[str] = []
    views = readable_views(text)[:VIEWS]
    # The request without its wrapper first (windows are spread evenly: the first is always read).
    cores = [core for view in views if (core := request_core(view)) is not None]
    for core in cores[:2]:
        if core not in out:
            out.append(core)
    for view in views:
        for window in windows(view):
            if window.strip() and window not in out:
                out.append(window)
    return out


class SafetyJudge:
    def __init__(self, encoder: SentenceEncoder, prompt_head: Head, reply_head: Head, *,
                 blunt_terms: bool = True) -> None:
        """``blunt_terms``: lift prompts that ask for one of ``harm_terms``' clearest harms into the guard
        band (off only where a check must let a prompt through to exercise the output filter)."""
        self.encoder = encoder
        self.prompt_head = prompt_head
        self.reply_head = reply_head
        self.blunt_terms = blunt_terms

    def score_prompt(self, text: str, threshold_shift: float = 0.0) -> Score:
        parts = prompt_windows(text)
        if not parts:
            return Score(0.0, "S2", self.prompt_head.threshold + threshold_shift)
        every_part = parts
        if len(parts) > ENCODED_WINDOWS:
            chosen = np.linspace(0, len(parts) - 1, ENCODED_WINDOWS).round().astype(int)
            parts = [parts[i] for i in sorted(set(chosen.tolist()))]
        vectors = self.encoder.cached_vectors(parts)
        signals = signal_row(text)
        dense = np.stack([prompt_dense(v, signals) for v in vectors])
        logits = self.prompt_head.logits(dense)
        best = int(np.argmax(logits))
        threshold = self.prompt_head.threshold + threshold_shift
        score = Score(_sigmoid(float(logits[best])), self.prompt_head.category(dense[best]), threshold)
        if self.blunt_terms and not score.blocked and (hit := blunt_term_hit(every_part)) is not None:
            # Words the encoder blurs ("pipe bomb" beside "pipe organ"): lifted just into the guard model's band.
            return Score(threshold + LIFT, hit.category, threshold)
        return score

    def reply_reader(self, request: str, *, request_cleared: bool = False) -> ReplyReader:
        """A reader of one reply to ``request``; ``request_cleared``: a second stage (the guard model)
        judged the request safe, so the request alone does not make the reply harmful."""
        return ReplyReader(self, request, request_cleared=request_cleared)


class ReplyReader:
    """Judges one reply, span by span, with its request."""

    def __init__(self, judge: SafetyJudge, request: str, *, request_cleared: bool = False) -> None:
        self._judge = judge
        self._request = request
        self._request_cleared = request_cleared or not request.strip()
        self._request_score: Score | None = None
        self._opening = ""
        self._request_vector: np.ndarray | None = None
        self._request_signals = signal_row(request)
        self._no_request = (np.zeros(DIMENSION, np.float32), signal_row(""))
        self._sum: np.ndarray | None = None
        self._spans = 0

    def _request_vec(self) -> np.ndarray:
        if self._request_vector is None:
            self._request_vector = self._judge.encoder.vector(self._request[-2000:]) if self._request.strip() \
                else self._no_request[0]
        return self._request_vector

    def add(self, span: str) -> Score:
        """Take the next released-for-checking span; the score of the reply so far."""
        if span.strip():
            if len(self._opening) < OPENING_CHARS:
                self._opening = f"{self._opening} {span}".strip()
            vector = self._judge.encoder.vector(span)
            self._sum = vector.copy() if self._sum is None else self._sum + vector
            self._spans += 1
        return self.current()

    def current(self) -> Score:
        head = self._judge.reply_head
        if self._sum is None:
            return Score(0.0, "S2", head.threshold)
        mean = self._sum / self._spans
        request = self._request_vec()
        # With its request, and on its own: a reply that is harmful only next to its request is caught by
        # the first, a harmful reply to a harmless request (a model gone wrong) by the second.
        dense = np.stack([reply_dense(mean, request, self._request_signals), reply_dense(mean, *self._no_request)])
        logits = head.logits(dense)
        best = int(np.argmax(logits))
        score = Score(_sigmoid(float(logits[best])), head.category(dense[best]), head.threshold)
        if score.blocked or self._request_cleared:
            return score
        asked = self.request_score()
        if asked.blocked and not opens_with_refusal(self._opening):
            return Score(1.0, asked.category, head.threshold)
        return score

    def request_score(self) -> Score:
        """The request as the input check scores it (computed once per reply; its windows' vectors are
        usually still in the encoder's cache from the input check)."""
        if self._request_score is None:
            self._request_score = self._judge.score_prompt(self._request)
        return self._request_score

"""The one model behind the API: requests wait in a queue and run one at a time on a worker thread
(``haven-api``), each as a :class:`~assistant.session.ChatSession` turn, so every request gets exactly what
a chat in the app gets: Haven's safety prompt first, the input check, the output filter on the stream.

The HTTP layer (:mod:`assistant.server.routes`) submits a :class:`~assistant.server.protocol.ChatRequest`
with a cancel event and a callback; the worker calls back with :class:`Released` pieces (only text the
output filter has released), then one :class:`Finished` or :class:`Failed`. Setting the cancel event (the
client went away) skips a request still waiting, and stops one running within a token.

The request's history goes into a conversation of its own: in the conversation store when the user asked
for the API's conversations to be kept, otherwise in a store in memory, deleted when the turn ends.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.chat import StopReason
from assistant.engine import SamplingParams
from assistant.errors import HavenError
from assistant.events import ReasoningReleased, TextReleased, TurnResult
from assistant.records import NewConversation, NewMessage, now_iso, title_from
from assistant.safety import SafetyPolicy
from assistant.server.protocol import FINISH_REASONS, ChatRequest
from assistant.session import ChatEngine, ChatSession
from assistant.store import Store

__all__ = ["ApiEvent", "ApiService", "Failed", "Finished", "Released", "StopScanner"]

log = logging.getLogger(__name__)

MAX_WAITING = 32  # requests queued beyond this are refused with 503 rather than waiting for minutes


@dataclass(frozen=True, slots=True)
class Released:
    """Text the output filter released (``reasoning``: a reasoning model's thinking)."""

    text: str
    reasoning: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """The turn ended. ``content``: the whole reply as a non-streaming response has it (Haven's notice
    when blocked); ``notice``: what a stream adds at the end (the notice when blocked, else "")."""

    content: str
    notice: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reasoning: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    status: int
    message: str


ApiEvent = Released | Finished | Failed


class StopScanner:
    """Cuts released text at the first of the request's ``stop`` strings. Text that could be the start of
    a stop string is held until the next piece shows whether it is."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._held = ""
        self.hit = False

    def feed(self, text: str) -> str:
        if not self._stops or self.hit:
            return "" if self.hit else text
        pending = self._held + text
        found = [i for i in (pending.find(s) for s in self._stops) if i >= 0]
        if found:
            self.hit, self._held = True, ""
            return pending[: min(found)]
        keep = max((n for s in self._stops for n in range(1, len(s)) if pending.endswith(s[:n])), default=0)
        self._held = pending[len(pending) - keep:] if keep else ""
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        held, self._held = ("" if self.hit else self._held), ""
        return held


@dataclass(frozen=True, slots=True)
class _Job:
    request: ChatRequest
    cancel: threading.Event
    emit: Callable[[ApiEvent], None]


class ApiService:
    """Serves one loaded model. ``store``: where the API's conversations are kept, or None to keep none."""

    def __init__(self, engine: ChatEngine, policy: SafetyPolicy, *, model_id: str, sampling: SamplingParams,
                 store: Store | None = None) -> None:
        self.engine, self.policy, self.model_id, self.sampling = engine, policy, model_id, sampling
        self._store = store
        self._scratch = Store(Path(":memory:")) if store is None else None
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="haven-api", daemon=True)
        self._thread.start()

    @property
    def stores_conversations(self) -> bool:
        return self._store is not None

    def submit(self, request: ChatRequest, cancel: threading.Event, emit: Callable[[ApiEvent], None]) -> None:
        """Queue a request; ``emit`` is called on the worker thread. Refused (``Failed(503)``) when full."""
        if self._jobs.qsize() >= MAX_WAITING:
            emit(Failed(503, f"Haven is busy with {MAX_WAITING} waiting requests; try again in a minute."))
            return
        self._jobs.put(_Job(request, cancel, emit))

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=10)
        if self._scratch is not None:
            self._scratch.close()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancel.is_set():
                log.info("a request was withdrawn before its turn")
                continue
            try:
                self._run(job)
            except HavenError as exc:
                job.emit(Failed(400, str(exc)))
            except Exception as exc:
                log.exception("an API request failed")
                job.emit(Failed(500, f"Haven hit an unexpected problem ({type(exc).__name__}); details are in "
                                "its log."))

    def _conversation(self, store: Store, request: ChatRequest) -> str:
        now = now_iso()
        messages = tuple(
            NewMessage(parent=i - 1 if i else None, role=role, content=text, created=now,
                       model=self.model_id if role == "assistant" else None)
            for i, (role, text) in enumerate(request.history))
        conversation = NewConversation(title="API: " + title_from(request.message), model=self.model_id,
                                       created=now, updated=now, messages=messages,
                                       instructions=request.instructions)
        return store.import_conversations([conversation])[0]

    def _sampling(self, request: ChatRequest) -> SamplingParams:
        base = self.sampling
        return dataclasses.replace(
            base, seed=request.seed,
            max_tokens=base.max_tokens if request.max_tokens is None else request.max_tokens,
            temperature=base.temperature if request.temperature is None else request.temperature,
            top_p=base.top_p if request.top_p is None else request.top_p,
        )

    def _run(self, job: _Job) -> None:
        request = job.request
        store = self._store if self._store is not None else self._scratch
        assert store is not None
        conversation_id = self._conversation(store, request)
        try:
            session = ChatSession(self.engine, store, self.policy, model_id=self.model_id, sampling=self.sampling)
            session.prefill_next_turn = False  # the next request is most likely another conversation
            job.emit(self._turn(session, conversation_id, job))
        finally:
            if self._store is None:
                store.delete_conversation(conversation_id)

    def _turn(self, session: ChatSession, conversation_id: str, job: _Job) -> Finished:
        request, scanner = job.request, StopScanner(job.request.stop)
        sent: list[str] = []
        result: TurnResult | None = None
        for event in session.send(request.message, conversation_id, cancel=job.cancel,
                                  sampling=self._sampling(request), instructions=request.instructions):
            if isinstance(event, TextReleased):
                text = scanner.feed(event.text)
                if scanner.hit:
                    job.cancel.set()  # the stop string: generation ends within a token
                if text:
                    sent.append(text)
                    job.emit(Released(text))
            elif isinstance(event, ReasoningReleased):
                job.emit(Released(event.text, reasoning=True))
            elif isinstance(event, TurnResult):
                result = event
        assert result is not None
        if tail := scanner.flush():
            sent.append(tail)
            job.emit(Released(tail))
        finish = FINISH_REASONS.get(result.stop_reason, "stop")
        if result.blocked:
            notice = ("\n\n" if sent else "") + result.reply
            return Finished(result.reply, notice, "content_filter", result.prompt_tokens, result.completion_tokens)
        if result.stop_reason is StopReason.CANCELLED and not scanner.hit:
            log.info("an API request was cancelled (its client went away)")
        return Finished("".join(sent), "", finish, result.prompt_tokens, result.completion_tokens,
                        result.reasoning)

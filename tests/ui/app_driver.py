"""Runs the real desktop app (``ui.app.main``) and drives it like a person, for subprocess tests.

One full turn, then a long reply in a new chat; once it has grown on screen a few times the window is
closed (a reply the model ends early is followed by another).
Prints ``CLOSING {json}`` (flushed) at that moment, so the parent can time the exit. HAVEN_HOME, the
offscreen platform and (for the offline test) the network shim come from the environment.
"""

from __future__ import annotations

import json
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import ui.app as app_module
from assistant.engine import SamplingParams


class DrivenApp(app_module.HavenApp):
    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.stage = "loading"
        self.shown, self.grew, self.growths, self.slowest = "", 0.0, 0, 0.0
        self.seed = 1
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.step)
        self.timer.start(50)

    def send(self, text: str, max_tokens: int, seed: int) -> None:
        assert self.window.session is not None
        self.window.session.sampling = SamplingParams(temperature=0.8, max_tokens=max_tokens, seed=seed)
        self.window.input.setPlainText(text)
        self.window.send()

    def start_long_reply(self) -> None:
        self.seed += 1
        if self.seed > 8:
            print("GAVE_UP {}", flush=True)
            self.window.close()
            return
        self.shown, self.grew, self.growths, self.slowest = "", 0.0, 0, 0.0
        self.window.new_chat()
        self.send("Write a very long story about the sea.", 2000, self.seed)
        self.stage = "second"

    def step(self) -> None:
        window = self.window
        if self.stage == "loading" and window.session is not None:
            self.send("Name three colours.", 24, 1)
            self.stage = "first"
        elif self.stage == "first" and window.turn is None:
            first = window.chat.messages[-1]
            print("FIRST " + json.dumps({"content": first.content, "complete": first.complete,
                                         "conversation": window.conversation_id}), flush=True)
            self.start_long_reply()
        elif self.stage == "second" and window.turn is None:
            self.start_long_reply()  # the model ended this one early: another finished turn; try again
        elif self.stage == "second" and window.chat.messages[-1].content.strip():
            # Watch the reply grow a few times: the slowest step tells how long one token takes on this
            # machine right now (the token being computed when the window closes is finished first).
            shown = window.chat.messages[-1].content
            now = time.monotonic()
            if shown != self.shown:
                if self.shown:
                    self.slowest = max(self.slowest, now - self.grew)
                self.shown, self.grew, self.growths = shown, now, self.growths + 1
            if self.growths >= 3:
                self.stage = "closed"
                print("CLOSING " + json.dumps({"shown": shown, "slowest_step": self.slowest,
                                               "conversation": window.conversation_id}), flush=True)
                window.close()


if __name__ == "__main__":
    app_module.HavenApp = DrivenApp  # type: ignore[misc]
    sys.exit(app_module.main(["haven"]))

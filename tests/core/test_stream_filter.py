"""The output filter's hold-back logic: released + withheld == generated; a blocked span never released."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.safety.policy import Stage, Verdict
from assistant.safety.stream import StreamFilter

BAD = "FORBIDDEN"


def span_check(text: str) -> Verdict:
    if BAD in text:
        return Verdict(False, Stage.OUTPUT, "S1", "blocked")
    return Verdict.allow(Stage.OUTPUT)


class ReplyMemory:
    """A span check that, like Haven's ReplyReader, judges the reply so far, not the span alone."""

    def __init__(self) -> None:
        self.seen = ""

    def __call__(self, span: str) -> Verdict:
        self.seen += span
        return span_check(self.seen)


def make(max_hold: int = 300, whole=span_check) -> StreamFilter:
    return StreamFilter(ReplyMemory(), whole, max_hold=max_hold, min_span=1)


def test_a_short_sentence_waits_for_the_next_so_each_check_reads_a_real_span() -> None:
    f = StreamFilter(span_check, span_check, min_span=20)
    assert f.feed("Sure. ").release == ""
    assert f.feed("Here is a recipe for bread. ").release == "Sure. Here is a recipe for bread."
    assert f.finish().release == " "


def test_text_is_released_a_sentence_at_a_time() -> None:
    f = make()
    assert f.feed("Hello there").release == ""
    step = f.feed(". How are")
    assert step.release == "Hello there."
    assert f.withheld == " How are"
    assert f.feed(" you?\n").release == " How are you?\n"
    assert f.finish().release == ""


def test_long_text_without_a_sentence_end_is_checked_after_the_window() -> None:
    f = make(max_hold=20)
    assert f.feed("a" * 19).release == ""
    assert f.feed("a").release == "a" * 20


def test_a_blocked_sentence_is_never_released_and_stops_everything() -> None:
    f = make()
    assert f.feed("Fine. ").release == "Fine."
    step = f.feed(f"Now the {BAD} part. And more. ")
    assert step.release == "" and step.verdict is not None and not step.verdict.allowed
    assert f.feed("Even more. ").verdict is not None
    assert f.finish().verdict is not None
    assert BAD not in f.released


def test_the_whole_reply_check_can_block_at_the_end() -> None:
    f = StreamFilter(lambda t: Verdict.allow(Stage.OUTPUT),
                     lambda t: Verdict(False, Stage.OUTPUT, "S10", "no") if "x y" in t else Verdict.allow(Stage.OUTPUT))
    f.feed("x ")
    step = f.feed("y")
    assert step.verdict is None
    final = f.finish()
    assert final.verdict is not None and final.release == ""


tokens = st.lists(st.sampled_from(["a", "bb", " ", ".", "!", "?", "\n", "é", "🙂", BAD, "FORBID", "DEN"]),
                  max_size=60)


@settings(max_examples=300, deadline=None)
@given(tokens, st.lists(st.integers(min_value=0, max_value=15), max_size=60), st.integers(min_value=1, max_value=50))
def test_invariant_under_random_chunking(parts: list[str], cuts: list[int], max_hold: int) -> None:
    text = "".join(parts)
    chunks, position = [], 0
    for cut in cuts:  # arbitrary chunk boundaries, also inside the forbidden word
        chunks.append(text[position : position + cut])
        position += cut
    chunks.append(text[position:])
    f = make(max_hold=max_hold)
    shown = ""
    for chunk in chunks:
        step = f.feed(chunk)
        shown += step.release
        assert f.released + f.withheld == f.generated
        assert shown == f.released
    final = f.finish()
    shown += final.release
    assert f.released + f.withheld == f.generated == text
    assert BAD not in shown, "a blocked span was released"
    if BAD not in text:
        assert shown == text and final.verdict is None
    else:
        assert f.blocked is not None

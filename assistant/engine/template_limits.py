"""Limits on rendering an untrusted chat template: its time, its text and the size of every value it builds.

Jinja's sandbox keeps a template away from Python's internals, but not from spending: ``range`` stops at
100,000 items, yet two nested loops over it take 10^10 steps; ``"x" * 10**10`` asks for 10 GB; and
``{% set s = s ~ s %}`` doubles a string each time. :class:`LimitedEnvironment` renders with a deadline and a
character budget, checked from inside the template's own compiled code:

* time: every step of every ``{% for %}`` loop, every call (functions, methods, macros, ``loop()``,
  ``caller()``), every filter and every piece of output checks the deadline, so a loop that prints nothing
  stops too;
* text: every piece is charged as it is written, to the output or to a macro's, block's or filter block's
  buffer (text nested in macros is charged once per level: a bound, not an exact count);
* values: none may grow past the budget. List, tuple and dict literals, ``+ * ** %``, ``~`` and the result
  of every call and filter are measured, shared parts counted at each reference, as printing them would;
  the few operations whose allocation alone could be huge (``center``, ``replace``, ``join``, ``format``,
  ``indent``, ``batch``...) are estimated before they run. So one step is at worst a linear pass over a
  value within the budget, and the deadline is never more than one such pass away.

A limit that trips raises :class:`TemplateLimitError`, whose text completes "This model's chat template ...".
"""

from __future__ import annotations

import functools
import re
import string
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup

__all__ = ["MAX_RENDER_SECONDS", "MAX_TEMPLATE_CHARS", "LimitedEnvironment", "TemplateLimitError"]

MAX_RENDER_SECONDS = 2.0
"""A real chat template renders in about a millisecond, even for a long chat: two seconds is far beyond any
honest template, and short enough that a hostile one only delays one reply."""

MAX_TEMPLATE_CHARS = 1_000_000
"""Text a template may write, and the largest value it may build, beyond the messages it is given (the
caller adds room for those): about 250,000 tokens, twice the largest context Haven allocates (131,072
tokens), so no usable prompt comes near it. It also sets the worst single step: a filter that loops in
Python over a value this size (``urlize``, ``sort``) takes a second or two before the deadline is seen."""

# Python refuses to print an int of more than 4,300 digits, so a bigger one is of no use to a template;
# bounding ints keeps each multiplication or power on them to microseconds.
MAX_INT_BITS = sys.int_info.default_max_str_digits * 332 // 100

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class TemplateLimitError(Exception):
    """A render passed a limit. Not a ``TemplateError``: a retry with other messages would only trip again."""


class _Budget:
    """One render's deadline and the characters it may still write."""

    __slots__ = ("deadline", "left", "limit")

    def __init__(self, deadline: float, limit: int) -> None:
        self.deadline, self.left, self.limit = deadline, limit, limit

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"ran for more than {MAX_RENDER_SECONDS:g} seconds")

    def allow(self, size: int) -> None:
        if size > self.limit:
            raise TemplateLimitError(f"tried to produce more than {self.limit:,} characters of text")

    def size(self, value: object) -> int:
        """:func:`_size`, counting no further than the limit; text, the common case, without the walk."""
        return len(value) + 1 if type(value) is str else _size(value, self.limit, self.tick)

    def check(self, value: Any) -> Any:
        self.allow(self.size(value))
        return value

    def spend(self, chars: int) -> None:
        self.left -= chars
        if self.left < 0:
            raise TemplateLimitError(f"tried to produce more than {self.limit:,} characters of text")
        self.tick()


class _Steps:
    """A for-loop's iterable that checks the deadline before each item; ``len`` as the iterable's."""

    __slots__ = ("_budget", "_items", "_source")

    def __init__(self, source: Iterable[Any], budget: _Budget) -> None:
        self._source, self._items, self._budget = source, iter(source), budget

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        self._budget.tick()
        return next(self._items)

    def __len__(self) -> int:
        return len(self._source)  # type: ignore[arg-type]  # TypeError if unsized, as LoopContext expects


class _Leave:
    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


_TEXT = frozenset({str, bytes, Markup})
_WHOLE_NUMBERS = frozenset({int, bool})


def _size(value: object, stop: int, tick: Callable[[], None]) -> int:
    """Characters and items reachable from ``value``, shared parts counted at each reference (as printing
    would count them); counting ends once past ``stop``. Namespaces are mutable, so they may hold
    themselves: one already being counted on the current path counts as one."""
    total, steps, stack, open_namespaces = 0, 0, [value], set[int]()
    while stack and total <= stop:
        item = stack.pop()
        total, steps = total + 1, steps + 1
        if steps & 0xFFFF == 0:
            tick()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping | Collection):
            if total + len(item) > stop:
                return stop + 1
            if isinstance(item, Mapping):
                stack.extend(item)
                stack.extend(item.values())
                continue
            kinds = set(map(type, item))  # lists of plain text or numbers are counted at C speed
            if kinds <= _TEXT:
                total += len(item) + sum(map(len, item))
            elif kinds <= _WHOLE_NUMBERS:
                total += len(item) + sum(map(int.bit_length, item)) // 3
            else:
                stack.extend(item)
        elif isinstance(item, _Leave):
            open_namespaces.discard(item.key)
        elif isinstance(item, Namespace) and id(item) not in open_namespaces:
            open_namespaces.add(id(item))
            stack.append(_Leave(id(item)))
            stack.extend(object.__getattribute__(item, "_Namespace__attrs").values())
    return total


# -- estimates for the operations whose allocation alone could be huge ---------------------------------

_Sizer = Callable[[object], int]


def _arg(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _number(digits: str) -> int:
    return int(digits) if len(digits) < 10 else 10**10


def _replace_estimate(text: Any, old: Any, new: Any, count: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _percent_estimate(fmt: str, values: Any, size: _Sizer) -> int:
    """``fmt % values``: every spec may print the biggest value, padded to the widest width or precision."""
    items = list(values.values()) if isinstance(values, Mapping) else values if isinstance(values, tuple) else [values]
    biggest = max((size(v) for v in items), default=0) + 24
    widest, specs = 0, 0
    for match in _PERCENT_SPEC.finditer(fmt):
        specs += 1
        for group in match.groups():
            if group == "*":
                widest = max(widest, *(_int(v) for v in items), 0)
            elif group:
                widest = max(widest, _number(group))
    return len(fmt) + specs * (biggest + widest)


def _format_estimate(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], size: _Sizer) -> int:
    """``fmt.format(...)``: every field may print the biggest argument, padded to the widest spec."""
    items = [*args, *kwargs.values()]
    if len(items) == 1 and isinstance(items[0], Mapping):  # format_map
        items = list(items[0].values())
    biggest = max((size(v) for v in items), default=0) + 24
    fields, widest = 0, 0
    for _text, field, spec, _conversion in string.Formatter().parse(fmt):
        if field is None:
            continue
        fields += 1
        widest = max(widest, *(_number(n) for n in re.findall(r"\d+", spec or "")), 0)
        if spec and "{" in spec:
            widest = max(widest, *(_int(v) for v in items), 0)
    return len(fmt) + fields * (biggest + widest)


def _method_estimate(text: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any],
                     size: _Sizer) -> int:
    """The longest result of the string method ``name`` (``join`` is measured by the caller)."""
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(len(text), _int(_arg(args, kwargs, 0, "width")))
    if name == "expandtabs":
        return len(text) + text.count("\t") * _int(_arg(args, kwargs, 0, "tabsize", 8))
    if name == "replace":
        return _replace_estimate(text, _arg(args, {}, 0, ""), _arg(args, {}, 1, ""), _arg(args, kwargs, 2, "count"))
    if name == "translate" and args and isinstance(args[0], Mapping):
        return len(text) * max(1, *(len(v) for v in args[0].values() if isinstance(v, str)))
    if name in ("format", "format_map"):
        return _format_estimate(text, args, kwargs, size)
    return 0


_Estimate = Callable[[Any, tuple[Any, ...], Mapping[str, Any], _Sizer], int]


def _indent_estimate(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], size: _Sizer) -> int:
    width = _arg(args, kwargs, 0, "width", 4)
    lines = value.count("\n") + 1 if isinstance(value, str) else size(value)
    return size(value) + lines * (len(width) if isinstance(width, str) else _int(width))


def _wordwrap_estimate(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], size: _Sizer) -> int:
    return size(value) * (1 + len(str(_arg(args, kwargs, 2, "wrapstring") or "\n")))


def _tojson_estimate(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], size: _Sizer) -> int:
    indent = _arg(args, kwargs, 0, "indent")
    return size(value) * (1 + (len(indent) if isinstance(indent, str) else _int(indent)))


_FILTER_ESTIMATES: dict[str, _Estimate] = {
    "center": lambda value, args, kwargs, size: max(size(value), _int(_arg(args, kwargs, 0, "width", 80))),
    "indent": _indent_estimate,
    "format": lambda value, args, kwargs, size: (
        _percent_estimate(value, kwargs or args, size) if isinstance(value, str) else 0),
    "replace": lambda value, args, kwargs, size: _replace_estimate(
        value, _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new"), _arg(args, kwargs, 2, "count")),
    "wordwrap": _wordwrap_estimate,
    "batch": lambda value, args, kwargs, size: size(value) + _int(_arg(args, kwargs, 0, "linecount")),
    "slice": lambda value, args, kwargs, size: size(value) + _int(_arg(args, kwargs, 0, "slices")),
    "tojson": _tojson_estimate,
}


class _LimitedCodeGenerator(CodeGenerator):
    """Jinja's compiler with the hooks above written into the template's Python code."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Jinja allows no custom node types: each loop's iterable becomes ``environment.limited_iter(...)``.
        for loop in list(node.find_all(nodes.For)):
            loop.iter = nodes.Call(nodes.EnvironmentAttribute("limited_iter"), [loop.iter], [], None, None,
                                   lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        text = sum(len(child.data) for child in node.nodes if isinstance(child, nodes.TemplateData))
        if text:
            self.writeline(f"environment.limited_spend({text})")
        super().visit_Output(node, frame)

    # Call and filter blocks, recursive loops and blocks write without ``finalize``: charge them here.
    def start_write(self, frame: Frame, node: nodes.Node | None = None) -> None:
        super().start_write(frame, node)
        self.write("environment.limited_emit(")

    def end_write(self, frame: Frame) -> None:
        self.write(")")
        super().end_write(frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.limited_concat(context, (")
        for item in node.nodes:
            self.visit(item, frame)
            self.write(", ")
        self.write("))")

    def _measured(self, visit: Callable[[Any, Frame], None], node: nodes.Expr, frame: Frame) -> None:
        self.write("environment.limited_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._measured(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._measured(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._measured(super().visit_Tuple, node, frame)
        else:  # an assignment target: ``{% for a, b in ... %}``
            super().visit_Tuple(node, frame)


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the limits above. Templates render only through :meth:`render_limited`."""

    code_generator_class = _LimitedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        # No compile-time constant folding: everything a template computes runs under the limits.
        super().__init__(optimized=False, finalize=self._finalize, **options)
        self._local = threading.local()
        # ``lipsum(n)`` writes n paragraphs in a Python loop the limits cannot see into; no template needs it.
        self.globals.pop("lipsum", None)
        self.filters = {name: self._limited_filter(name, func) for name, func in self.filters.items()}

    def render_limited(self, template: Template, variables: Mapping[str, Any], *, deadline: float,
                       max_chars: int) -> str:
        """Render ``template`` by ``deadline`` (``time.monotonic()``), writing at most ``max_chars``."""
        self._local.budget = budget = _Budget(deadline, max_chars)
        try:
            parts, written = [], 0
            for piece in template.generate(**variables):
                written += len(piece)
                budget.allow(written)
                parts.append(piece)
            return "".join(parts)
        finally:
            self._local.budget = None

    def _budget(self) -> _Budget:
        budget: _Budget | None = getattr(self._local, "budget", None)
        if budget is None:
            raise RuntimeError("a LimitedEnvironment renders only through render_limited")
        return budget

    def _joined(self, budget: _Budget, separator: str, iterable: Any) -> Any:
        """What ``separator.join`` should be given (an iterator is read out first, step by step), once its
        longest result (every item, and a separator after each) is within the budget."""
        items = iterable if isinstance(iterable, Collection) else list(_Steps(iterable, budget))
        budget.allow(budget.size(items) + len(separator) * len(items))
        return items

    # -- hooks called by the compiled template ---------------------------------------------------

    def limited_iter(self, iterable: Iterable[Any]) -> _Steps:
        return _Steps(iterable, self._budget())

    def limited_value(self, value: Any) -> Any:
        return self._budget().check(value)

    def limited_spend(self, chars: int) -> None:
        self._budget().spend(chars)

    def limited_emit(self, value: Any) -> Any:
        budget = self._budget()
        budget.spend(len(value) if isinstance(value, str) else budget.size(value))
        return value

    def limited_concat(self, context: Context, parts: tuple[Any, ...]) -> Any:
        budget = self._budget()
        budget.allow(sum(budget.size(part) for part in parts))
        join = markup_join if context.eval_ctx.volatile or context.eval_ctx.autoescape else str_join
        return budget.check(join(parts))

    @pass_context  # so Jinja calls it at render time only, never to fold constants while compiling
    def _finalize(self, context: Context, value: Any) -> Any:
        budget = self._budget()
        if not isinstance(value, str):
            value = str(budget.check(value))  # measured before str() of it
        budget.spend(len(value))
        return value

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = self._budget()
        budget.tick()
        bound = getattr(getattr(obj, "__wrapped__", obj), "__self__", None)  # the sandbox wraps str.format
        if isinstance(bound, str):
            name = getattr(obj, "__name__", "")
            if name == "join" and args:
                args = (self._joined(budget, bound, args[0]), *args[1:])
            else:  # Jinja adds its own loop and block variables, which the method never sees
                named = {key: value for key, value in kwargs.items() if key not in ("_loop_vars", "_block_vars")}
                budget.allow(_method_estimate(bound, name, args, named, budget.size))
        return budget.check(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = self._budget()
        if isinstance(left, int) and isinstance(right, int):
            if operator == "*":
                bits = left.bit_length() + right.bit_length()
            elif operator == "**" and abs(left) > 1 and right > 0:
                bits = (abs(left).bit_length() - 1) * right
            else:
                bits = 0
            if bits > MAX_INT_BITS:
                raise TemplateLimitError("tried to compute a number too large to print")
        elif operator == "*" and isinstance(left, int | float) != isinstance(right, int | float):
            sequence, count = (right, left) if isinstance(left, int) else (left, right)
            budget.allow((budget.size(sequence) - 1) * _int(count))
        elif operator == "+":
            budget.allow(budget.size(left) + budget.size(right))
        elif operator == "%" and isinstance(left, str):
            budget.allow(_percent_estimate(left, right, budget.size))
        return budget.check(super().call_binop(context, operator, left, right))

    def _limited_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        # Filters marked pass_context / pass_eval_context / pass_environment get that object first.
        lead = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        estimate = _FILTER_ESTIMATES.get(name)

        @functools.wraps(func)  # copies jinja_pass_arg, so Jinja still passes the same first argument
        def limited(*args: Any, **kwargs: Any) -> Any:
            budget = self._budget()
            budget.tick()
            value, rest = args[lead], args[lead + 1 :]
            if name == "join":
                value = self._joined(budget, str(_arg(rest, kwargs, 0, "d", "")), value)
            elif estimate is not None:
                budget.allow(estimate(value, rest, kwargs, budget.size))
            return budget.check(func(*args[:lead], value, *rest, **kwargs))

        return limited

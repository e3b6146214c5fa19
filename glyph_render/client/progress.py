"""What a long call is doing, as it happens: the client's progress hook.

A client made with ``progress=callback`` calls ``callback(event)`` with a :class:`Progress` at
each step of a call, so a long document (minutes of rendering, megabytes of upload, a model
that thinks before its first token) is never silent. The stages, in order:

* ``replan``: the pages as configured do not fit the model's context and were re-fitted
  (fewer pages at a lower DPI, or chunks); sent before anything is rendered or uploaded;
* ``render``: one more page rendered (``done`` of ``total``);
* ``upload``: a request is going out (``pages``, ``bytes``, ``tokens`` predicted);
* ``waiting``: it went out; nothing has come back yet;
* ``first_token``: the first streamed delta arrived, ``seconds`` after sending;
* ``streaming``: more deltas (``done`` = deltas so far, at most a few events a second);
* ``answered``: a reply is complete (``part`` of ``parts`` when a document was split).

The callback runs in whichever thread does the work (a render or request thread for a split
document, or the asyncio client's worker threads), so it must be quick and thread-safe;
an exception it raises is not caught. :meth:`Progress.message` is the one-line text the CLI
prints on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressCallback"]


@dataclass(frozen=True)
class Progress:
    """One step of a call; fields not meaningful for a stage are None."""

    stage: str
    done: int | None = None
    total: int | None = None
    pages: int | None = None
    bytes: int | None = None
    tokens: int | None = None
    seconds: float | None = None
    part: int | None = None
    parts: int | None = None
    dpi: float | None = None
    # replan: the rendering as configured, which did not fit
    from_pages: int | None = None
    from_dpi: float | None = None
    from_tokens: int | None = None
    context: int | None = None
    answer_tokens: int | None = None  # max_tokens, kept free for the answer
    model: str | None = None

    @property
    def message(self) -> str:
        """One line for a person."""
        of = f" (part {self.part} of {self.parts})" if self.parts and self.parts > 1 else ""
        if self.stage == "replan":
            into = (f"{self.pages} pages at {self.dpi:g} DPI" if self.pages is not None
                    and self.dpi is not None else "a smaller rendering")
            if self.parts and self.parts > 1:
                into += f" in {self.parts} chunks asked one by one and combined"
            answer = (f" + {self.answer_tokens:,} for the answer" if self.answer_tokens
                      else "")
            return (f"re-planned: {self.from_pages} pages at {self.from_dpi:g} DPI need "
                    f"{self.from_tokens:,} prompt tokens{answer}, over {self.model}'s "
                    f"context of {self.context:,}; sending {into} instead")
        if self.stage == "render":
            total = f" of ~{self.total}" if self.total else ""
            return f"rendering page {self.done}{total}"
        if self.stage == "upload":
            return (f"sending {self.pages} pages{of}, {_size(self.bytes or 0)}, "
                    f"{self.tokens:,} prompt tokens predicted")
        if self.stage == "waiting":
            return f"sent{of}; waiting for the first token"
        if self.stage == "first_token":
            return f"first token after {self.seconds:.1f} s{of}; streaming"
        if self.stage == "streaming":
            return f"streaming{of}: {self.done} deltas, {self.seconds:.1f} s"
        if self.stage == "answered":
            return f"answered{of} after {self.seconds:.1f} s"
        return self.stage


ProgressCallback = Callable[[Progress], None]


def _size(n: int) -> str:
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"

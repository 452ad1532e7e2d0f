"""How many bytes a live surface may spend on frames: in proportion to the answer it shows.

Every frame is one message with an envelope of ~670 bytes (IOPub headers, measured) plus what it
re-sends: the block still being written. At 100 tokens/s an answer grows by ~1.2 kB/s, so ten frames
a second would cost ~6× the answer in envelopes alone. The throttle bounds frames per second; this
bounds frame bytes per answer byte: frames may spend `ratio` × the answer so far plus a fixed
allowance. Answers up to ~1,000 tokens never reach the allowance and draw at the throttle's full rate;
longer ones slow down to what they pay for (at 32k tokens, a frame every 300-600 tokens), so a
32k-token answer costs under 3× itself on the wire (frames, restructuring and the one final
rendering), at any token rate.
"""

from __future__ import annotations

from dataclasses import dataclass

ENVELOPE_BYTES = 700  # one IOPub message's headers and framing (669 measured for update_display_data)
# The answer's size is counted as the final rendering measures it (HTML + text), estimated from the
# characters received: 2.11-2.15 bytes per character measured on generated Markdown, so 2 errs low.
BYTES_PER_CHAR = 2.0


@dataclass
class FrameBudget:
    ratio: float = 0.8
    allowance: int = 120_000
    spent: int = 0  # bytes sent so far by frames, envelopes included
    # Bytes sent to restructure what is already shown (merging a cell's slots). Not held against frames:
    # the structure bounds them (each byte once more per ~800 seals), and a merge charged to frames
    # would freeze the display for seconds while frames paid it back.
    restructured: int = 0
    last_frame: int = ENVELOPE_BYTES  # cost of the latest frame: the estimate for the next one

    def charge(self, content_bytes: int, messages: int = 1, *, restructure: bool = False) -> None:
        cost = content_bytes + messages * ENVELOPE_BYTES
        if restructure:
            self.restructured += cost
        else:
            self.spent += cost

    def frame_sent(self, cost: int) -> None:
        """Record a whole frame whose messages were already charged, as the estimate for the next one."""
        self.last_frame = cost

    def affords(self, chars: int) -> bool:
        """Whether one more frame like the last fits in the budget for an answer of `chars` characters."""
        return self.spent + self.last_frame <= self.ratio * BYTES_PER_CHAR * chars + self.allowance


def utf8_size(*values: str) -> int:
    return sum(len(value.encode()) for value in values)

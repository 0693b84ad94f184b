"""``--frames 0,2-5``: which frames of a multi-frame input are filtered."""

from __future__ import annotations

import re
from dataclasses import dataclass

from convcli.errors import InputError, UsageError

_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")
#: frame numbers beyond this are refused as written (no file holds that many frames)
LARGEST_FRAME = 10**9


@dataclass(frozen=True)
class FrameSelection:
    """Frame numbers (from 0) as inclusive ranges in increasing order, as given."""

    text: str
    ranges: tuple[tuple[int, int], ...]

    def indices(self, count: int, label: str) -> list[int]:
        """The selected frames of an input with ``count`` frames; an InputError naming the
        input and its frame count if one is not there."""
        last = self.ranges[-1][1]
        if last >= count:
            have = "1 frame (0)" if count == 1 else f"{count} frames (0-{count - 1})"
            raise InputError(
                f"has {have}; --frames {self.text!r} asks for frame {last}", subject=label
            )
        return [i for first, end in self.ranges for i in range(first, end + 1)]


def parse_frames(text: str) -> FrameSelection:
    """``0,2-5`` -> frames 0, 2, 3, 4, 5: numbers and inclusive ranges, increasing, no
    repeats (a usage error otherwise)."""
    ranges: list[tuple[int, int]] = []
    for item in text.replace(" ", "").split(","):
        match = _ITEM.match(item)
        if not match:
            what = "an empty item" if not item else f"{item!r} is not a number or a range N-M"
            raise UsageError(f"--frames {text!r}: {what} (e.g. --frames 0,2-5)")
        first = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else first
        if end < first:
            raise UsageError(f"--frames {text!r}: the range {item!r} runs backwards")
        if end > LARGEST_FRAME:
            raise UsageError(f"--frames {text!r}: frame {end} is beyond any file's frames")
        if ranges and first <= ranges[-1][1]:
            raise UsageError(
                f"--frames {text!r}: frames must be given in increasing order, each once"
            )
        ranges.append((first, end))
    return FrameSelection(text, tuple(ranges))

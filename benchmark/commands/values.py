"""argparse value types of the command line: names, positive integers, seeds, class-split
ids and worker counts, each failing with a message that says what was expected."""

from __future__ import annotations

import argparse


def names(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


def positive_ints(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None
    if any(n < 1 for n in numbers):
        raise argparse.ArgumentTypeError(f"every value must be at least 1, got {value!r}")
    return numbers


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value!r}")
    return number


def seeds(value: str) -> tuple[int, ...]:
    """`3` means seeds 0, 1, 2; `0,7,9` lists seeds explicitly."""
    if "," not in value:
        return tuple(range(positive_int(value)))
    try:
        seeds = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count or a list of seeds, got {value!r}"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {value!r}")
    return seeds


def split_ids(value: str) -> tuple[int, ...] | str:
    """`all`, one id, a range `1-5`, or a list `1,3`."""
    if value == "all":
        return value
    first, dash, last = value.partition("-")
    if dash:
        low, high = positive_int(first), positive_int(last)
        if high < low:
            raise argparse.ArgumentTypeError(f"empty range {value!r}")
        return tuple(range(low, high + 1))
    return positive_ints(value)


def workers(value: str) -> int | None:
    """`auto` (None) or a positive number of worker processes."""
    if value == "auto":
        return None
    try:
        return positive_int(value)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error}, or auto") from None

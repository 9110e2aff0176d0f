"""Option rules shared by the commands' flags and `jaxst fit --config`, and a parser with one-line errors.

A `Number` rule is an argparse `type` for a flag (it parses the flag's text) and, through `problem`,
checks a value a config file gives, where the type must already be right: a batch size of "3" or
3.0 is an error, not a 3.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, `PROG: error: MESSAGE`, and exit status 2.

    argparse's own parser prints its usage block first; subparsers made by `add_subparsers` share
    this class, so `jaxst fit --batch-size x` prints `jaxst fit: error: argument --batch-size: ...`.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Number:
    """The values a numeric option takes: integers or finite floats from `minimum` (to `maximum`).

    Attributes:
        kind: int or float; an int option refuses floats and booleans, a float option takes ints.
        minimum: the smallest value allowed (or the bound above which values lie, see `above_minimum`).
        maximum: the largest value allowed, if any.
        above_minimum: True when `minimum` itself is refused (a learning rate is > 0).
    """

    kind: type
    minimum: float
    maximum: float | None = None
    above_minimum: bool = False

    @property
    def description(self) -> str:
        noun = "an integer" if self.kind is int else "a finite number"
        if self.maximum is not None:
            return f"{noun} in [{self.minimum}, {self.maximum}]"
        return f"{noun} {'>' if self.above_minimum else '>='} {self.minimum}"

    def problem(self, value: Any) -> str | None:
        """None when `value` follows the rule, else what is wrong ("must be an integer >= 1, got '3'")."""
        numeric = (int,) if self.kind is int else (int, float)
        fits = (
            isinstance(value, numeric)
            and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value))
            and (value > self.minimum if self.above_minimum else value >= self.minimum)
            and (self.maximum is None or value <= self.maximum)
        )
        return None if fits else f"must be {self.description}, got {value!r}"

    def __call__(self, text: str) -> int | float:
        """The flag's text as a number that follows the rule (argparse names the flag in the error)."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {self.kind.__name__} value: {text!r}") from None
        problem = self.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value


COUNT = Number(int, 1)
NON_NEGATIVE_COUNT = Number(int, 0)
POSITIVE = Number(float, 0, above_minimum=True)
NON_NEGATIVE = Number(float, 0)
FRACTION = Number(float, 0, 1)


def json_object(text: str) -> dict[str, Any]:
    """argparse `type`: a JSON object given on the command line, e.g. '{"scale": 20}'."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON ({error.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"scale\": 20}}', got {text!r}")
    return value

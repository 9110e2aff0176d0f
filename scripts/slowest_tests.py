"""Prints the slowest tests of pytest JUnit XML reports: `python scripts/slowest_tests.py a.xml b.xml`."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree

SHOWN = 15


def main(paths: list[str]) -> None:
    cases = []
    for path in paths:
        for case in ElementTree.parse(path).iter("testcase"):
            cases.append((float(case.get("time", 0)), f"{case.get('classname')}::{case.get('name')}"))
    total = sum(seconds for seconds, _ in cases)
    print(f"{len(cases)} tests, {total:.0f} s in tests; the {SHOWN} slowest:")
    for seconds, name in sorted(cases, reverse=True)[:SHOWN]:
        print(f"{seconds:8.2f} s  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])

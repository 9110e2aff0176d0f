"""LoggingHandler writes what sentence-transformers' LoggingHandler writes, through tqdm.write."""

from __future__ import annotations

import logging

import tqdm
from sentence_transformers.util.logging import LoggingHandler as STLoggingHandler

from jaxst.logging_handler import LoggingHandler


def written_lines(handler: logging.Handler, monkeypatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(tqdm.tqdm, "write", lambda message, *args, **kwargs: lines.append(message))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(f"jaxst-test-{type(handler).__module__}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.info("step %d, loss %.3f", 5, 0.25)
        logger.debug("details")
    finally:
        logger.removeHandler(handler)
    return [line.replace(logger.name, "<logger>") for line in lines]


def test_logging_handler_writes_like_sentence_transformers(monkeypatch):
    ours = written_lines(LoggingHandler(), monkeypatch)
    assert ours == ["INFO <logger>: step 5, loss 0.250", "DEBUG <logger>: details"]
    assert ours == written_lines(STLoggingHandler(), monkeypatch)
    assert written_lines(LoggingHandler(level=logging.INFO), monkeypatch) == ours[:1]

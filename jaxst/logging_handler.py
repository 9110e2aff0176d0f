"""`LoggingHandler`: log records printed through tqdm, so that they do not break progress bars."""

from __future__ import annotations

import logging

import tqdm


class LoggingHandler(logging.Handler):
    """A logging handler that writes each formatted record with `tqdm.tqdm.write` (sentence-transformers').

    Typical use, as in sentence-transformers' examples:
        logging.basicConfig(
            format="%(asctime)s - %(message)s", level=logging.INFO, handlers=[LoggingHandler()]
        )
    """

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.tqdm.write(self.format(record))
            self.flush()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            self.handleError(record)

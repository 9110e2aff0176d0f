"""JAX's persistent compilation cache, on by default in a per-user folder.

Compiled programs are written to disk and a later run of the same job (same model, shapes, settings,
JAX version and device) loads them instead of compiling again. jaxst turns the cache on when the first
`SentenceTransformer` is made, before it compiles anything:

- `JAXST_COMPILATION_CACHE=/some/folder` moves it; `JAXST_COMPILATION_CACHE=off` (or 0, false, none)
  turns it off;
- a folder given to JAX itself (`JAX_COMPILATION_CACHE_DIR`, or `jax.config.update(
  "jax_compilation_cache_dir", ...)` before the first model is made) is left as it is;
- otherwise the folder is `$XDG_CACHE_HOME/jaxst/xla` (`~/.cache/jaxst/xla` without XDG_CACHE_HOME).

JAX stores only programs that took at least `jax_persistent_cache_min_compile_time_secs` to compile. Its
default, 1 s, leaves out jaxst's encode programs (0.4-0.6 s each for MiniLM on a CPU), so a second run would
compile them all again; where jaxst chooses the folder it lowers that bound to `MIN_COMPILE_SECONDS`, unless
the option was set (`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` or `jax.config.update`). Loading such a
program takes a tenth of its compile; programs under the bound (single operations, 0.01-0.05 s) are not
worth a file. JAX decides when an entry is valid, and a folder that cannot be created leaves the cache off
with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jax

logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "JAXST_COMPILATION_CACHE"
OFF_VALUES = ("off", "0", "false", "none")
MIN_COMPILE_SECONDS = 0.25
JAX_DEFAULT_MIN_COMPILE_SECONDS = 1.0
MIN_COMPILE_OPTION = "jax_persistent_cache_min_compile_time_secs"


def default_cache_folder() -> Path:
    """$XDG_CACHE_HOME/jaxst/xla, or ~/.cache/jaxst/xla."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxst" / "xla"


def enable_compilation_cache() -> Path | None:
    """Turns JAX's persistent compilation cache on as the module docstring says; returns its folder, or
    None when it stays off. Safe to call more than once."""
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    setting = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if setting.lower() in OFF_VALUES:
        return None
    folder = Path(setting).expanduser() if setting else default_cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        logger.warning(
            f"Compilation cache off: cannot create {folder} ({error}); set {ENVIRONMENT_VARIABLE}."
        )
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    user_set_bound = MIN_COMPILE_OPTION.upper() in os.environ or (
        getattr(jax.config, MIN_COMPILE_OPTION) != JAX_DEFAULT_MIN_COMPILE_SECONDS
    )
    if not user_set_bound:
        jax.config.update(MIN_COMPILE_OPTION, MIN_COMPILE_SECONDS)
    return folder

"""The command line's machinery, shared by every command in :mod:`airgap.cli`: progress bars,
logging set-up, the options every command takes, and :func:`_run`, the one place
errors become a line and an exit code (0 ok, 1 failure, 2 usage or configuration, 3 integrity
or signature, 130 Ctrl-C, 143 SIGTERM).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..config import LOG_LEVELS, Config, load_config
from ..errors import AirgapError, DownloadError, UsageError
from ..progress import Bar, Progress, null_progress
from ..redact import RedactingFilter, redact
from ..signals import Terminated, install
from ._exit import fail as _fail
from ._exit import quiet_stdout as _quiet_stdout
from ._gc import few_collections

log = logging.getLogger("airgap")
F = TypeVar("F", bound=Callable[..., Any])


# --- output helpers -----------------------------------------------------------------------


class _TqdmBar:
    def __init__(self, desc: str, total: int | None, unit: str, files: int | None) -> None:
        from tqdm import tqdm

        scale = unit == "B"
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=scale,
            unit_divisor=1024 if scale else 1000,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
            postfix=f"0/{files} files" if files else None,
        )
        self._files, self._total_files = 0, files

    def update(self, n: int) -> None:
        self._bar.update(n)

    def file_done(self) -> None:
        self.files_done(1)

    def files_done(self, n: int) -> None:
        self._files += n
        if self._total_files:
            self._bar.set_postfix_str(f"{self._files}/{self._total_files} files", refresh=False)

    def close(self) -> None:
        self._bar.close()


def progress_for(quiet: bool) -> Progress:
    if quiet or not sys.stderr.isatty():
        return null_progress

    def make(desc: str, total: int | None, unit: str = "B", files: int | None = None) -> Bar:
        return _TqdmBar(desc, total, unit, files)

    return make


# --- common options ----------------------------------------------------------------------


class State:
    def __init__(self, config_file: str | None, show_config: bool, log_level: str | None, verbose: bool, quiet: bool) -> None:
        self.config_file = config_file
        self.show_config = show_config
        self.log_level = log_level
        self.verbose = verbose
        self.quiet = quiet

    def config(self) -> Config:
        return load_config(self.config_file)


def _setup_logging(state: State, config: Config | None) -> None:
    level = config.log_level if config is not None else logging.INFO
    if state.log_level:
        level = LOG_LEVELS[state.log_level.upper()]
    if state.quiet:
        level = max(level, logging.WARNING)
    if state.verbose:
        level = logging.DEBUG
    log.setLevel(level)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("airgap: %(levelname)s: %(message)s"))
    handler.addFilter(RedactingFilter())  # no channel password or token in any log line
    log.addHandler(handler)
    if config is not None and config.log_dir:
        try:
            os.makedirs(config.log_dir, exist_ok=True)
            fh = logging.FileHandler(os.path.join(config.log_dir, "airgap.log"))
        except OSError as exc:
            raise UsageError(f"log_dir {config.log_dir}: expected a writable directory, found: {exc.strerror}") from None
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh.addFilter(RedactingFilter())
        log.addHandler(fh)


def common_options(reads_config: bool = True) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        @click.option("-q", "--quiet", is_flag=True, help="No progress bars; warnings and errors only.")
        @click.option("-v", "--verbose", is_flag=True, help="Shorthand for --log-level DEBUG; show tracebacks.")
        @click.option(
            "-l",
            "--log-level",
            type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
            help="CRITICAL, ERROR, WARNING, INFO or DEBUG (default: the config's log_level, INFO).",
        )
        @functools.wraps(fn)
        def wrapper(
            *args: Any,
            quiet: bool,
            verbose: bool,
            log_level: str | None,
            config_file: str | None = None,
            show_config: bool = False,
            **kwargs: Any,
        ) -> Any:
            state = State(config_file, show_config, log_level, verbose, quiet)
            return _run(state, reads_config, fn, *args, **kwargs)

        if reads_config:
            wrapper = click.option(
                "--config",
                "--show-config",
                "show_config",
                is_flag=True,
                help="Show the running configuration (defaults filled in) and exit.",
            )(wrapper)
            wrapper = click.option(
                "-f",
                "--file",
                "config_file",
                type=click.Path(dir_okay=False),
                help="Configuration file (default: $AIRGAP_CONFIG, ~/.airgap.yaml, /etc/airgap/airgap.yaml).",
            )(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def _run(state: State, reads_config: bool, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    as_json = bool(kwargs.get("as_json"))
    install()  # SIGTERM rolls back and releases like Ctrl-C
    try:
        config = state.config() if reads_config else None
        _setup_logging(state, config)
        if config is not None and state.show_config:
            click.echo(redact(config.show()), nl=False)
            sys.exit(0)
        with few_collections():  # records are many objects and no cycles (airgap/cli/_gc.py)
            return fn(*args, state=state, config=config, **kwargs)
    except AirgapError as exc:
        if state.verbose:
            click.echo(redact(traceback.format_exc()), err=True, nl=False)
        more = [redact(line) for line in exc.failures] if isinstance(exc, DownloadError) and len(exc.failures) > 1 else []
        _fail(redact(str(exc)), exc.exit_code, as_json, more)  # a channel URL's token is never printed
    except Terminated:  # before KeyboardInterrupt: it is one
        _fail("terminated (SIGTERM); what was begun was undone", Terminated.exit_code, as_json)
    except KeyboardInterrupt:
        _fail("interrupted", 130, as_json)
    except BrokenPipeError:  # `airgap inspect | head`: the reader has gone; say nothing more
        _quiet_stdout()
        sys.exit(141)
    except OSError as exc:
        if state.verbose:
            click.echo(redact(traceback.format_exc()), err=True, nl=False)
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(redact(f"{where}{exc.strerror or exc}"), 1, as_json)

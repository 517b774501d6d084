"""The ``deepres`` command line: one subcommand per module of :mod:`deepres_plugin.commands`."""
from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import io
import logging
import os
import sys
from typing import Sequence

from .core.errors import DeepResError
from .core.interrupts import Interrupted, interrupts_as_exceptions
from .version import __version__

#: Subcommand name -> module in ``deepres_plugin.commands``.
COMMANDS = {
    "simulate": "simulate",
    "dataset": "dataset",
    "train": "train",
    "predict": "predict",
    "report": "report",
    "fsc": "fsc",
    "localfsc": "localfsc",
    "bfactor-sweep": "bfactor_sweep",
    "localfilter": "localfilter",
    "residues": "residues",
}
#: Options whose value may start with "-" (a negative B-factor range such as -200:0:20), which
#: argparse would otherwise take for an option: "--bfactors -200:0:20" is read as "--bfactors=-200:0:20".
NEGATIVE_VALUE_OPTIONS = ("--bfactors",)
EXIT_OK = 0
#: Every error a user can cause: a bad option value or usage, an unusable file, an output
#: place that cannot be written.
EXIT_ERROR = 1
#: Ctrl-C; any interrupt ends with 128 + its signal (:class:`.core.interrupts.Interrupted`).
EXIT_INTERRUPTED = 130
#: What to change when the computation runs out of memory, unless the command's module names
#: its own (``MEMORY_HINT``: the option that bounds its memory).
MEMORY_HINT = "use a machine (or a queue slot) with more memory, or crop the map to the molecule"
#: What to change when an output cannot be written, by the error's number.
WRITE_HINTS = {
    errno.ENOSPC: "free space or choose another folder (--out)",
    errno.EDQUOT: "free space or choose another folder (--out)",
    errno.EFBIG: "the file-size limit (ulimit -f) is too small for the outputs: raise it or choose another folder",
    errno.EROFS: "choose another folder (--out)",
    errno.EACCES: "choose another folder (--out) or check its permissions",
    errno.EPERM: "choose another folder (--out) or check its permissions",
}

logger = logging.getLogger("deepres_plugin")


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose errors (usage, or an option value that fails its check) are
    one line on stderr, exit status 1 like every other error a user can cause."""

    def error(self, message: str):
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def command_summary(doc: str | None) -> str | None:
    """A subcommand's one-line help: the first paragraph of its module docstring (a short
    sentence that may wrap over lines), on one line; None without a docstring."""
    paragraph = (doc or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()) or None


def build_parser() -> argparse.ArgumentParser:
    """Parser with one subparser per command, its help taken from the module docstring (the
    first paragraph in the list of commands, all of it in the command's own --help)."""
    parser = OneLineErrorParser(prog="deepres", description="DeepRes: deep-learning local resolution "
                                     "of cryo-EM maps (Ramirez-Aportela et al., IUCrJ 2019).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details (DEBUG level)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                       parser_class=OneLineErrorParser)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f".commands.{module_name}", __package__)
        doc = (module.__doc__ or "").strip()
        summary = command_summary(doc)
        # argparse expands %-formats in help texts: a literal % is written %%
        sub = subparsers.add_parser(name, help=summary.replace("%", "%%") if summary else None, description=doc,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(sub)
        sub.set_defaults(run=module.main)
    return parser


def configure_logging(verbose: bool) -> None:
    """Log to stderr for this process only (the library never configures logging itself)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def join_negative_values(argv: list[str]) -> list[str]:
    """Join each option of :data:`NEGATIVE_VALUE_OPTIONS` with the value that follows it."""
    joined: list[str] = []
    for item in argv:
        if joined and joined[-1] in NEGATIVE_VALUE_OPTIONS and item.startswith("-"):
            joined[-1] = f"{joined[-1]}={item}"
        else:
            joined.append(item)
    return joined


def one_line(message: str) -> str:
    """A message on one line (library messages may carry line breaks)."""
    return " ".join(message.split())


#: What the ``compute`` extra installs (TensorFlow, Dask): missing, a command says how to get it.
COMPUTATION_MODULES = ("tensorflow", "keras", "dask", "distributed", "dask_jobqueue")


def flush_stdout(status: int) -> int:
    """Flush standard output before the exit, so that a closed or full one ends the run with
    ``status`` or :data:`EXIT_ERROR`, not with the interpreter's "Exception ignored" lines.

    A reader that left (``deepres ... | head``) wants nothing more: exit 1 silently. Any other
    failure (``>/dev/full``) is one line on stderr. Either way the unwritten output is
    discarded (standard output then goes to ``os.devnull``), so the exit does not retry it.
    """
    stream = sys.stdout
    if stream is None:                   # started with stdout closed
        return status
    try:
        stream.flush()
    except OSError as exc:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        if exc.errno != errno.EPIPE:
            print(f"deepres: error: cannot write the standard output: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepres``; return the exit status (0 success, 1 error, 2 usage error, 128 + the
    signal when interrupted: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), standard output
    flushed (:func:`flush_stdout`)."""
    return flush_stdout(_main(argv))


def _main(argv: Sequence[str] | None) -> int:
    command = "deepres"
    with interrupts_as_exceptions():
        try:
            parser = build_parser()
            try:
                args = parser.parse_args(join_negative_values(sys.argv[1:] if argv is None else list(argv)))
            except SystemExit as exc:        # --help, --version, or a usage / option-value error (printed)
                return EXIT_OK if exc.code in (None, 0) else EXIT_ERROR
            command = f"deepres {args.command}"
            configure_logging(args.verbose)
            return _run(args, command)
        except KeyboardInterrupt as exc:     # at any moment, start-up included
            signal_name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"
            print(f"{command}: interrupted ({signal_name})", file=sys.stderr)
            return exc.exit_status if isinstance(exc, Interrupted) else EXIT_INTERRUPTED


def _run(args: argparse.Namespace, command: str) -> int:
    """Run the chosen command; every error a user can cause becomes one line on stderr."""
    try:
        return int(args.run(args) or EXIT_OK)
    except DeepResError as exc:
        hint = f" ({exc.option})" if exc.option else ""
        print(f"{command}: error: {one_line(str(exc))}{hint}", file=sys.stderr)
    except ModuleNotFoundError as exc:
        if exc.name not in COMPUTATION_MODULES:
            raise
        print(f"{command}: error: {exc.name} is not installed in this Python ({sys.executable}); "
              "install the computation with: pip install 'scipion-em-deepres[compute]'", file=sys.stderr)
    except MemoryError:
        module = sys.modules.get(args.run.__module__)
        print(f"{command}: error: out of memory; {getattr(module, 'MEMORY_HINT', MEMORY_HINT)}", file=sys.stderr)
    except OSError as exc:               # the output place: read-only, full, missing, a file size limit
        if isinstance(exc, BrokenPipeError) and exc.filename is None:   # standard output's reader left (| head)
            return flush_stdout(EXIT_ERROR)
        where = f" ({exc.filename})" if exc.filename else ""
        hint = f"; {WRITE_HINTS[exc.errno]}" if exc.errno in WRITE_HINTS else ""
        print(f"{command}: error: cannot read or write{where}: {exc.strerror or exc}{hint}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

"""What the training scripts share at their command line: the arguments error and the one-line error exit.

Each script is a typed call (`run(...)` taking its arguments dataclasses) with a `main(argv)` that parses flags
(`HfArgumentParser`, underscores as in `TrainingArguments`) and calls it; `exit_on_short_help` answers ``--help``
from the dataclasses alone, before a script's heavy imports. `main` raises like any function, so tests
and callers see the real exception; only `python -m training.<script>` turns a user's mistake into one line on
stderr and an exit status, through `run_script`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from microx_hf.errors import MicroXError

T = TypeVar("T")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

EXIT_USAGE = 2  # arguments that cannot work together (argparse's own status for bad flags)
EXIT_ERROR = 1  # data or files that are not what the script needs
EXIT_INTERRUPTED = 130


class ArgumentsError(ValueError):
    """Arguments of a training script that cannot work (raised by the arguments dataclasses' `__post_init__`)."""


def parse_arguments(arguments_class: type[T], argv: Sequence[str] | None = None) -> T:
    """Log at INFO and parse flags (`sys.argv` when `argv` is None) into one arguments dataclass."""
    from transformers import HfArgumentParser  # here: `training.scripts` is imported by `--help` fast paths

    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    (args,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(
        args=list(sys.argv[1:] if argv is None else argv), look_for_args_file=False
    )
    return args


def _metavar(kind: object) -> str | None:
    kind = str(kind)
    if kind.startswith("bool"):
        return "{true,false}"
    return "N" if kind.startswith("int") else "X" if kind.startswith("float") else "LIST" if "list" in kind else "TEXT"


def exit_on_short_help(
    argv: Sequence[str],
    prog: str,
    description: str,
    groups: list[tuple[str, Any]],
    epilog: str = "",
    usage: str | None = None,
) -> None:
    """Print a short help and exit 0 when `argv` asks for it (``-h`` / ``--help``); otherwise return.

    Built from arguments dataclasses with plain argparse, so a script can answer before it imports torch or
    transformers (`HfArgumentParser`'s own help lists every `TrainingArguments` flag: hundreds of lines).

    Args:
        argv: The command line (without the program).
        prog: How the script is run, e.g. "python -m training.train".
        description: The script's docstring (its first paragraph is shown).
        groups: (title, an arguments dataclass or a {flag: help} dict) per section.
        epilog: A last line, e.g. where the full help is.
        usage: The usage line (default: argparse's, which lists every flag).
    """
    if not any(a in ("-h", "--help") for a in argv):
        return
    summary = description.strip().split("\n\n")[0]
    parser = argparse.ArgumentParser(prog=prog, usage=usage, description=summary, epilog=epilog, add_help=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("-h", "--help", action="store_true", help="this help; --help-all: every flag")
    for title, source in groups:
        group = parser.add_argument_group(title)
        if isinstance(source, dict):
            for name, text in source.items():
                group.add_argument(f"--{name}", metavar="", help=text)
            continue
        for f in dataclasses.fields(source):
            text = f.metadata.get("help", "")
            if f.default is not dataclasses.MISSING and f.default is not None:
                text = f"{text} (default: {f.default})"
            group.add_argument(f"--{f.name}", metavar=_metavar(f.type), help=text)
    print(parser.format_help())
    sys.exit(0)


def one_line(error: BaseException) -> str:
    """The error's message on one line (the exception class for an empty message)."""
    return " ".join(str(error).split()) or type(error).__name__


def run_script(main: Callable[[], Any], interrupted: str | None = None) -> NoReturn:
    """Run a script's `main()` and exit: 0, or one line `error: ...` on stderr for a user's mistake.

    A mistake is an `ArgumentsError` (status 2), a `MicroXError` (bad data, no face, a missing backend) or a
    missing file (status 1). Anything else is a bug and keeps its traceback.

    Args:
        main: The script's entry point, called without arguments (it reads `sys.argv`).
        interrupted: What to say on Ctrl-C (status 130).
    """
    try:
        main()
    except KeyboardInterrupt:
        if interrupted:
            print(interrupted, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except ArgumentsError as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except (MicroXError, FileNotFoundError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
    sys.exit(0)

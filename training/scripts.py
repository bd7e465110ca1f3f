"""What the training scripts share at their command line: the arguments error and the one-line error exit.

Each script is a typed call (`run(...)` taking its arguments dataclasses) with a `main(argv)` that parses flags
(`HfArgumentParser`, underscores as in `TrainingArguments`) and calls it. `main` raises like any function, so tests
and callers see the real exception; only `python -m training.<script>` turns a user's mistake into one line on
stderr and an exit status, through `run_script`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from transformers import HfArgumentParser

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
    logging.basicConfig(format=LOG_FORMAT, level=logging.INFO)
    (args,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(
        args=list(sys.argv[1:] if argv is None else argv), look_for_args_file=False
    )
    return args


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

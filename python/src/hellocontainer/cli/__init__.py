"""The command line: the only package that prints or exits.

Each command is one module here, registered once in COMMANDS: its `HELP` (the line in
`hellocontainer --help`), `DESCRIPTION` (what its own --help starts with), `setup(parser)` adding its
options, and `run(args)`, which returns its exit status. A module that must exit with a status of
its own on any error, as `diff` does, says so in `TROUBLE_STATUS`.

This module is the one error boundary: every error a user can cause arrives here as a
HelloContainerError and leaves as one line, `hellocontainer: error: …`, with the error's exit
status (1, or 2 for usage errors) and no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc as garbage_collector
import os
import sys
import zlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NoReturn

from .. import __version__
from ..errors import HelloContainerError, UsageError, os_error_message
from . import autostart, build, bundle, completion, diff, gc, index, inspect, manpage, sign, validate, verify
from .options import PROG

# Every command, by the name a user types it, in the order `hellocontainer --help` lists them.
COMMANDS: dict[str, ModuleType] = {
    module.__name__.rpartition(".")[2]: module
    for module in (build, validate, index, diff, gc, inspect, bundle, autostart, sign, verify,
                   completion, manpage)
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the fix rather than a usage dump, and a
    command's options are added only when that command is the one parsed."""

    def __init__(self, *args: Any, setup: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        # No abbreviations: `--entry` silently meaning `--entrypoint` today would break build
        # recipes the day another option starting with `--entry` is added.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self._setup = setup

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: Any = None) -> tuple[Any, list[str]]:
        # Start-up time matters: the setup of a command not run (and what it imports for its
        # choices) costs nothing.
        if self._setup is None:
            return super().parse_known_args(args, namespace)
        self.add_command_options()
        # A command's parser: an unknown flag is named (with the close one) before argparse
        # complains about what it left out, e.g. `--ouput DIR` is not "--output is required",
        # and what it did not take is refused here, pointing at this command's help rather than
        # the top-level one's.
        arguments = list(sys.argv[1:] if args is None else args)
        self._refuse_unknown_flags(arguments)
        parsed, extras = super().parse_known_args(arguments, namespace)
        if extras:
            self.error(f"unexpected argument{'s' if len(extras) > 1 else ''}: {' '.join(extras)}")
        return parsed, extras

    def add_command_options(self) -> None:
        """Add this command's options now, as parsing it would (the shell completion and the
        manual page read every command's)."""
        if self._setup is not None:
            setup, self._setup = self._setup, None
            setup(self)

    def _refuse_unknown_flags(self, arguments: list[str]) -> None:
        """The first argument that looks like a flag of this command and is none, as argparse
        tells them (`-5` and words with spaces are values, `--` ends the flags)."""
        known = self._option_string_actions
        before = None  # the flag just before, when it waits for its value
        for argument in arguments:
            if argument == "--":
                return
            if (not argument.startswith("-") or argument == "-" or " " in argument
                    or self._negative_number_matcher.match(argument)):
                before = None
                continue
            name = argument.split("=", 1)[0] if argument.startswith("--") else argument[:2]
            if name not in known and before is not None:
                self.error(f"{before} needs a value; write one that starts with '-' as "
                           f"{before}={argument}")
            if name not in known:
                import difflib  # only on the way to an error

                flags = [o for o in known if o.startswith("--")]
                # The one flag it abbreviates (abbreviations are not taken), or a near spelling.
                close = [o for o in flags if o.startswith(name)] if name.startswith("--") else []
                close = close if len(close) == 1 else difflib.get_close_matches(name, flags, n=1,
                                                                                cutoff=0.75)
                self.error(f"unknown option {name}"
                           + (f" (did you mean {close[0]}?)" if close else ""))
            takes_value = known[name].nargs != 0 and "=" not in argument and argument == name
            before = name if takes_value else None

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see '{self.prog} --help'")


class _Parsers(dict[str, Any]):
    """The commands' parsers by name, each made when first looked up: a parser costs about as
    much start-up time as a hello build spends writing its image, and one run parses one
    command. The names are there from the start, so `--help`, the choices of a usage error and
    the completion see every command."""

    def __getitem__(self, name: str) -> argparse.ArgumentParser:
        made = super().__getitem__(name)
        if not isinstance(made, argparse.ArgumentParser):  # its maker: not made yet
            made = made()
            self[name] = made
        return made


class _Commands(argparse._SubParsersAction):
    """Subcommands whose parsers are made on demand (see _Parsers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.choices = self._name_parser_map = _Parsers()

    def add_parser(self, name: str, **kwargs: Any) -> None:
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), kwargs.pop("help")))

        def make() -> argparse.ArgumentParser:
            # argparse's own add_parser, into a map of its own: it refuses a name already
            # taken, and this one is.
            names, self._name_parser_map = self._name_parser_map, {}
            try:
                return super(_Commands, self).add_parser(name, **kwargs)
            finally:
                self._name_parser_map = names

        self._name_parser_map[name] = make


def command_line() -> argparse.ArgumentParser:
    """The whole command line; each command's options are added when it is parsed (or by
    `add_command_options`)."""
    parser = _Parser(prog=PROG, description="Package one static binary as a small, "
                     "reproducible OCI image layout.")
    # zlib decides the compressed bytes: naming it lets two users tell why their digests differ.
    parser.add_argument("--version", action="version",
                        version=f"{PROG} {__version__} (zlib {zlib.ZLIB_RUNTIME_VERSION})")
    # What `completion` and `manpage` are generated from, handed to them in their arguments:
    # a command module may not import this module back.
    parser.set_defaults(command_parsers=command_parsers)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser, action=_Commands)
    for name, module in COMMANDS.items():
        commands.add_parser(name, help=module.HELP, description=module.DESCRIPTION,
                            setup=module.setup)
    return parser


def command_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The whole command line and each command's parser by name, every option added: what the
    shell completion and the manual page are generated from, so they never list a flag the
    parser lacks or miss one it has."""
    parser = command_line()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    parsers = {name: commands.choices[name] for name in commands.choices}
    for command in parsers.values():
        command.add_command_options()
    return parser, parsers


def main(argv: Sequence[str] | None = None) -> int:
    # A command is one short run that makes its objects once and keeps most of them to the
    # end: the cyclic garbage collector, which walks every object the imports made over and
    # over as they grow, finds next to nothing to free (large layers are bytes, which it does
    # not track) yet costs a hello build a twentieth of its CPU. It is paused for the command
    # and resumed for a caller in the same process.
    collecting = garbage_collector.isenabled()
    garbage_collector.disable()
    try:
        return _run(argv)
    finally:
        if collecting:
            garbage_collector.enable()


def _run(argv: Sequence[str] | None) -> int:
    command: ModuleType | None = None  # known once the command line is parsed

    def trouble(status: int) -> int:
        return getattr(command, "TROUBLE_STATUS", status)

    try:
        args = command_line().parse_args(argv)
        command = COMMANDS[args.command]
        return command.run(args)
    except HelloContainerError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return trouble(error.exit_status)
    except BrokenPipeError:
        # `hellocontainer inspect … | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        # The one boundary for what the file system says (full disk, read-only, permissions,
        # names too long): modules name the path; the errno decides the advice.
        print(f"{PROG}: error: {os_error_message(error)}", file=sys.stderr)
        return trouble(1)
    except (MemoryError, RecursionError):
        print(f"{PROG}: error: the input is too large or nests too deeply to process; check it "
              f"with '{PROG} validate'", file=sys.stderr)
        return trouble(1)
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted; nothing was published", file=sys.stderr)
        return 130


def run_and_exit() -> NoReturn:
    """The console script and `python -m hellocontainer`: the command line of this process,
    exiting with its status."""
    status = main()
    # The process ends here, without tearing the interpreter down: freeing every module and
    # object one by one at exit costs a hello build a tenth of its CPU and does nothing the
    # system does not. Nothing is left to that teardown: every command has closed and
    # published what it writes when main returns, and the package registers no exit hooks.
    # Only the standard streams may still hold text, so they are flushed here.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader left: not an error of ours, as main says
    except OSError as error:  # a full disk under a redirected stdout
        print(f"{PROG}: error: {os_error_message(error, 'the standard output')}", file=sys.stderr)
        status = status or 1
    with contextlib.suppress(OSError):  # nowhere left to say it
        sys.stderr.flush()
    os._exit(status)

"""The ``xray`` command: argument parsing and dispatch; every error ends as one line.

Read commands talk to the HTTP API (``--url``/``XRAY_BASE_URL``/``sdk.base_url``, key from
``--api-key``/``XRAY_API_KEY``/``sdk.api_key``); ``serve``, ``db`` and ``keys`` act on the
server's own ``api:`` config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from xray.cli._analysis import cmd_cohorts, cmd_contrast, cmd_fields, cmd_groups, cmd_trends
from xray.cli._diff import cmd_diff
from xray.cli._errors import EXIT_ERROR, EXIT_USAGE, CLIError
from xray.cli._queries import (
    Context,
    cmd_candidate,
    cmd_decisions,
    cmd_pipelines,
    cmd_run,
    cmd_runs,
    cmd_steps,
    parse_rate,
    parse_time,
)
from xray.demo import RUNS_PER_PIPELINE
from xray.shared import (
    APIConfig,
    ConfigError,
    ConfigNotFoundError,
    RunStatus,
    SDKConfig,
    StepType,
    load_sdk_config,
)

__all__ = ["build_parser", "main"]

_DEFAULT_BASE_URL: str = SDKConfig.model_fields["base_url"].default
_DEFAULT_PORT: int = APIConfig.model_fields["port"].default

DESCRIPTION = """\
X-Ray: see why a multi-step pipeline produced its output.

Start here:  xray demo      (starts the API, records example runs, prints what to try)

Exit codes: 0 ok, 1 error, 2 bad arguments, 3 server unreachable, 4 unauthorized (401),
5 not found (404).
"""

EXAMPLES = """\
examples:
  xray runs --pipeline competitor-selection --metadata product_asin=B0LSTAND01
  xray run 5f0c...                      the funnel of one run
  xray steps --type filter --min-elimination-rate 0.9
  xray candidate B0PHCASE77 --run 5f0c...
  xray diff RUN_A RUN_B
  xray groups support-answer --by metadata.locale      which group of runs differs, where
  xray contrast support-answer --metadata locale=de-DE what sets those runs apart
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (``xray: ...``) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CLIError(f"{message} (see {self.prog} --help)", exit_code=EXIT_USAGE)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def _connection_options() -> _Parser:
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=argparse.SUPPRESS,
        help=f"API base URL (default: XRAY_BASE_URL, sdk.base_url, {_DEFAULT_BASE_URL})",
    )
    group.add_argument(
        "--api-key",
        default=argparse.SUPPRESS,
        help="API key (default: XRAY_API_KEY or sdk.api_key)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON for scripts instead of a table",
    )
    return parent


def _server_options() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--database-url", help="SQLAlchemy URL (default: DATABASE_URL, api.database_url, sqlite)"
    )
    parent.add_argument(
        "--config", help="path of xray.config.yaml (default: XRAY_CONFIG or found upward)"
    )
    return parent


def _run_filter_options() -> _Parser:
    """The run filters of ``runs``, ``groups`` and ``contrast`` (those of ``GET /runs``)."""
    parent = _Parser(add_help=False)
    group = parent.add_argument_group("run filters")
    group.add_argument("--status", choices=[s.value for s in RunStatus])
    group.add_argument(
        "--since", type=parse_time, help="started at or after: ISO-8601 or an age (30m, 2h, 7d)"
    )
    group.add_argument("--until", type=parse_time, help="started before: ISO-8601 or an age")
    group.add_argument(
        "--metadata",
        action="append",
        metavar="KEY=VALUE",
        help="run metadata equals (KEY!=VALUE: differs or is missing); repeatable, all match",
    )
    group.add_argument(
        "--step-type", choices=[t.value for t in StepType], help="runs having a step of this type"
    )
    group.add_argument("--step-name", help="... and/or of this name ...")
    group.add_argument(
        "--min-elimination-rate",
        type=parse_rate,
        help="... that eliminated at least this share, out/in (0.9 or 90%%)",
    )
    group.add_argument("--max-elimination-rate", type=parse_rate, help="... at most this share")
    group.add_argument("--reason", help="... that rejected candidates for this reason")
    group.add_argument(
        "--min-reason-rate",
        type=parse_rate,
        help="... for at least this share of its input (with --reason)",
    )
    group.add_argument(
        "--min-rejected-rate",
        type=parse_rate,
        help="... that rejected at least this share of its input (any reason)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, for ``main`` and for ``--help`` text in the docs."""
    conn = _connection_options()
    server = _server_options()
    parser = _Parser(
        prog="xray",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[conn],
    )
    from xray import __version__

    parser.add_argument("--version", action="version", version=f"xray {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    step_types = [t.value for t in StepType]
    statuses = [s.value for s in RunStatus]

    filters = _run_filter_options()
    p = sub.add_parser(
        "runs", parents=[conn, filters], help="list runs, newest first, with filters"
    )
    p.add_argument("--pipeline", help="only this pipeline")
    p.add_argument(
        "--columns",
        metavar="KEY,KEY",
        help="show these run metadata keys as columns (e.g. locale,app_version)",
    )
    p.add_argument("--limit", type=_positive, default=20, help="how many runs (default 20)")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser(
        "run", parents=[conn], help="one run as a funnel: steps, in → out, elimination, reasons"
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser(
        "steps", parents=[conn], help="steps across every run and pipeline, with filters"
    )
    p.add_argument("--type", choices=step_types, help="step type")
    p.add_argument("--name", help="step name")
    p.add_argument("--pipeline")
    p.add_argument("--run", metavar="RUN_ID", help="only the steps of this run")
    p.add_argument("--status", choices=statuses)
    p.add_argument(
        "--min-elimination-rate",
        type=parse_rate,
        help="at least this share eliminated (0.9 or 90%%)",
    )
    p.add_argument("--max-elimination-rate", type=parse_rate)
    p.add_argument("--min-input-count", type=_positive, help="at least this many candidates in")
    p.add_argument("--reason", help="steps that rejected candidates for this reason")
    p.add_argument(
        "--min-reason-rate", type=parse_rate, help="... for at least this share of the input"
    )
    p.add_argument(
        "--min-rejected-rate",
        type=parse_rate,
        help="rejected at least this share of the input, any reason (0.9 or 90%%)",
    )
    p.add_argument(
        "--metadata", action="append", metavar="KEY=VALUE", help="steps of runs with metadata"
    )
    p.add_argument("--since", type=parse_time)
    p.add_argument("--until", type=parse_time)
    p.add_argument("--limit", type=_positive, default=50, help="how many steps (default 50)")
    p.set_defaults(handler=cmd_steps)

    p = sub.add_parser(
        "decisions",
        parents=[conn],
        help="the per-candidate decisions of one step (STEP_ID, or RUN_ID --step NAME)",
    )
    p.add_argument("target", metavar="STEP_ID|RUN_ID")
    p.add_argument(
        "--step", metavar="NAME", help="the run's step of this name (NAME#2: its second one)"
    )
    p.add_argument("--decision", choices=["accepted", "rejected", "selected", "scored"])
    p.add_argument("--reason")
    p.add_argument("--candidate", help="only this candidate key")
    p.add_argument("--limit", type=_positive, default=50, help="how many decisions (default 50)")
    p.set_defaults(handler=cmd_decisions)

    p = sub.add_parser(
        "candidate",
        parents=[conn],
        help="every decision about one candidate, across steps and runs",
    )
    p.add_argument("key", metavar="KEY", help="the candidate key (e.g. an ASIN)")
    p.add_argument("--run", metavar="RUN_ID", help="only in this run")
    p.add_argument("--pipeline", help="only in this pipeline")
    p.add_argument("--limit", type=_positive, default=100, help="how many decisions (default 100)")
    p.set_defaults(handler=cmd_candidate)

    p = sub.add_parser("diff", parents=[conn], help="two runs side by side, step by step")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser(
        "groups",
        parents=[conn, filters],
        help="a pipeline's runs grouped by a key, with per-step reason shares and the outlier",
    )
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument(
        "--by",
        required=True,
        help="metadata.<key>, output.<field>, status or step.<name>.params.<key>",
    )
    p.add_argument(
        "--sample", type=_positive, default=1000, help="read the newest N runs (default 1000)"
    )
    p.set_defaults(handler=cmd_groups)

    p = sub.add_parser(
        "contrast",
        parents=[conn, filters],
        help="what sets the runs matching the filters apart from the pipeline's other runs",
    )
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument("--sample", type=_positive, default=1000)
    p.add_argument("--limit", type=_positive, default=20, help="fields shown (default 20)")
    p.set_defaults(handler=cmd_contrast)

    p = sub.add_parser(
        "cohorts",
        parents=[conn, filters],
        help="two groups of a pipeline's runs side by side, step by step",
        description="Compare two groups of runs: A and B are KEY:VALUE with the keys of "
        "`xray groups --by` (metadata.locale:de-DE); B defaults to every other run.",
    )
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument("a", metavar="A", help="e.g. metadata.locale:de-DE")
    p.add_argument("b", metavar="B", nargs="?", default="rest", help="another group, or rest")
    p.add_argument("--sample", type=_positive, default=1000)
    p.set_defaults(handler=cmd_cohorts)

    p = sub.add_parser(
        "trends", parents=[conn], help="runs per time bucket, with one step's reasons"
    )
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument("--step", help="a step name: its elimination and reason shares per bucket")
    p.add_argument("--bucket", default="1h", help="15m, 1h, 1d (default 1h)")
    p.add_argument("--since", type=parse_time)
    p.add_argument("--until", type=parse_time)
    p.set_defaults(handler=cmd_trends)

    p = sub.add_parser(
        "fields",
        parents=[conn],
        help="a pipeline's metadata keys, output fields and step params, with common values",
    )
    p.add_argument("pipeline", metavar="PIPELINE")
    p.add_argument("--sample", type=_positive, default=1000)
    p.set_defaults(handler=cmd_fields)

    p = sub.add_parser("pipelines", parents=[conn], help="the pipelines recorded, with run counts")
    p.add_argument("--limit", type=_positive, default=100)
    p.set_defaults(handler=cmd_pipelines)

    p = sub.add_parser(
        "demo",
        parents=[conn],
        help="start the API on SQLite, record example runs, print where to look",
        description="Start the API on a fresh SQLite database (in .xray-demo/), run the example "
        "pipelines, print the dashboard URL and commands to try, and serve until Ctrl-C. "
        "With --url, load the examples into a server that is already running.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port (default {_DEFAULT_PORT}, or a free one if it is taken)",
    )
    p.add_argument("--database-url", help="use this database instead of a fresh SQLite file")
    p.add_argument("--dir", default=".xray-demo", help="where the demo database and server log go")
    p.add_argument(
        "--runs",
        type=_positive,
        default=RUNS_PER_PIPELINE,
        help=f"runs per pipeline (default {RUNS_PER_PIPELINE})",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the random pipelines (default 1)")
    p.add_argument(
        "--no-serve",
        "--once",
        dest="no_serve",
        action="store_true",
        help="stop the server once the data is loaded (CI)",
    )
    p.set_defaults(handler=None, command="demo")

    p = sub.add_parser(
        "serve", parents=[server], help="run the API server (same as python -m xray.api)"
    )
    p.add_argument("--host", help="default: XRAY_HOST, api.host, 127.0.0.1")
    p.add_argument("--port", type=int, help=f"default: XRAY_PORT, PORT, api.port, {_DEFAULT_PORT}")

    p = sub.add_parser("upload", parents=[conn], help="send what the SDK's disk spool holds")
    p.add_argument("--spool", metavar="DIR", help="spool folder (default: the SDK's, per config)")

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(
        dest="db_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    db_sub.add_parser(
        "upgrade", parents=[server], help="apply the migrations (alembic upgrade head)"
    )

    keys = sub.add_parser("keys", help="API keys stored (hashed) in the database")
    keys_sub = keys.add_subparsers(
        dest="keys_command", metavar="ACTION", required=True, parser_class=_Parser
    )
    k = keys_sub.add_parser("create", parents=[server], help="create a key; prints it once")
    k.add_argument("--name", required=True, help="who or what uses it")
    k.add_argument("--json", action="store_true")
    k = keys_sub.add_parser("revoke", parents=[server], help="revoke a key by id")
    k.add_argument("key_id", metavar="KEY_ID")
    k.add_argument("--json", action="store_true")
    k = keys_sub.add_parser("list", parents=[server], help="list keys (never the keys themselves)")
    k.add_argument("--json", action="store_true")
    return parser


def _sdk_config(args: argparse.Namespace) -> SDKConfig:
    url = getattr(args, "url", None)
    key = getattr(args, "api_key", None)
    try:
        return load_sdk_config(base_url=url, api_key=key)
    except ConfigNotFoundError:
        # No config file: the CLI still has sensible defaults (the SDK would be disabled).
        try:
            return SDKConfig(**{k: v for k, v in {"base_url": url, "api_key": key}.items() if v})
        except ValueError as exc:
            raise CLIError(
                f"invalid --url {url!r}: must start with http:// or https://", exit_code=EXIT_USAGE
            ) from exc
    except ConfigError as exc:
        raise CLIError(f"invalid configuration: {exc}", exit_code=EXIT_USAGE) from exc


def _dispatch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from xray.cli import _admin

    command = args.command
    if command == "serve":
        return _admin.cmd_serve(args, out)
    if command == "db":
        return _admin.cmd_db_upgrade(args, out)
    if command == "keys":
        return _admin.cmd_keys(args, out)
    config = _sdk_config(args)
    if command == "demo":
        from xray.cli._demo import cmd_demo

        args.url = getattr(args, "url", None)
        args.json = getattr(args, "json", False)
        return cmd_demo(args, out, err, api_key=config.api_key)
    if command == "upload":
        from xray.cli._upload import cmd_upload

        return cmd_upload(args, config, out)
    from xray.cli._http import ApiClient

    handler: Callable[[Context, argparse.Namespace], int] = args.handler
    with ApiClient(config.base_url, api_key=config.api_key) as api:
        return handler(Context(api, out, bool(getattr(args, "json", False))), args)


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``xray`` with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Example:
        >>> main(["runs", "--pipeline", "competitor-selection", "--json"])  # doctest: +SKIP
        0
    """
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
        if not args.command:
            parser.print_help(stdout)
            return EXIT_USAGE
        return _dispatch(args, stdout, stderr)
    except CLIError as exc:
        stderr.write(f"xray: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.write("xray: interrupted\n")
        return 130
    except BrokenPipeError:
        # `xray runs | head`: the reader left; that is not an error worth a traceback.
        return 0
    except Exception as exc:
        # A bug, not a user error: one line by default, the traceback with --debug.
        if args is not None and getattr(args, "debug", False):
            raise
        stderr.write(
            f"xray: unexpected error: {type(exc).__name__}: {exc} (run with --debug for details)\n"
        )
        return EXIT_ERROR

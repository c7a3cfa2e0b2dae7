"""`manage.py move-database --to URL`: copy the whole database into a new, empty one (engine.move).

    manage.py move-database --to postgresql://lac@db.example:5432/lac
    manage.py --database-url sqlite:///data/console.db move-database --to postgresql://lac@127.0.0.1/lac --yes
    python -m engine.cli_move --to postgresql://lac@127.0.0.1/lac      # the same without manage.py

The source is the console's database (`--database-url`, else DATABASE_URL, else data/console.db) or
`--from URL`. It is opened read-only and never changed; the command must not bring it up to date
first (registered with `init_db=False`). Before copying it shows both databases (passwords hidden)
and asks for "yes" unless `--yes`; without a terminal `--yes` is required. Afterwards it prints the
per-table summary (rows and checksums) and what to do next. Errors are printed in both languages,
without a traceback (LAC_DEBUG=1 shows one); exit status 0 on success, 1 on an error, 2 on a wrong
command line.

Wiring into manage.py (module level, after `def command(...)`):

    from engine.cli_move import add_commands as add_move_commands  # noqa: E402
    add_move_commands(command)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from engine.errors import EngineError
from engine.messages import register, render

register(
    {
        "move.needs_yes": {
            "zh": "这里无法交互确认；确认无误后请加 --yes 重新运行。",
            "en": "Cannot ask for confirmation here; run again with --yes once you are sure.",
        },
        "move.cancelled": {"zh": "已取消，没有做任何改动。", "en": "Cancelled; nothing was changed."},
        "move.unexpected": {
            "zh": "发生意外错误（{kind}）：{detail}。如需详细信息，请设置环境变量 LAC_DEBUG=1 后重试。",
            "en": "Unexpected error ({kind}): {detail}. Set LAC_DEBUG=1 for the details.",
        },
    }
)

NAME = "move-database"
HELP = "迁移数据库 / copy everything into a new, empty database (e.g. SQLite → PostgreSQL)"


def _t(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


class _Progress:
    """One line on stderr while copying (only on a terminal)."""

    def __init__(self, lang: str) -> None:
        self.label = _t(lang, "复制", "copying")
        self.live = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        pct = f"{100 * done / total:5.1f}%" if total else ""
        sys.stderr.write(f"\r{self.label}: {done:,}/{total:,} {pct}   ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class MoveDatabaseCommand:
    name = NAME
    help = HELP

    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--to", required=True, metavar="URL", dest="to_url",
                       help="新建的空数据库 / the new, empty database, e.g. postgresql://lac@127.0.0.1:5432/lac")
        p.add_argument("--from", metavar="URL", dest="from_url", default=None,
                       help="源数据库（默认为系统当前数据库）/ source (default: the console's database)")
        p.add_argument("--yes", action="store_true", help="不再询问确认 / do not ask for confirmation")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.config import database_url
        from engine.move import MoveError, move_database, safe_url

        lang = getattr(args, "lang", None) or "zh"
        source = args.from_url or getattr(args, "database_url", None) or database_url()
        print(_t(lang, f"源数据库（只读，不会改动）：{safe_url(source)}",
                 f"Source (read only, never changed): {safe_url(source)}"))
        print(_t(lang, f"目标数据库（须为新建的空数据库）：{safe_url(args.to_url)}",
                 f"Target (must be new and empty): {safe_url(args.to_url)}"))
        print(_t(lang, "请先停止所有控制台进程：迁移复制的是开始那一刻的数据，之后的修改不会带过去。",
                 "Stop every console process first: the copy is the data at the moment it starts; "
                 "later changes are not carried over."))
        if not args.yes:
            if not sys.stdin.isatty():
                raise EngineError("move.needs_yes")
            answer = input(_t(lang, "确认迁移请输入 yes：", "Type yes to move: ")).strip().lower()
            if answer not in ("yes", "y", "是"):
                print(render("move.cancelled", lang))
                return 1
        try:
            summary = move_database(source, args.to_url, progress=_Progress(lang))
        except MoveError as exc:
            if exc.summary is not None:  # copied but not verified (rolled back): show where
                print(exc.summary.describe(lang))
            raise
        print(summary.describe(lang))
        print(_t(
            lang,
            f"下一步：把 DATABASE_URL 设为 {safe_url(args.to_url)}（见 DEPLOY.md），再启动控制台；"
            "原数据库保持不变，可作为备份保留。",
            f"Next: set DATABASE_URL to {safe_url(args.to_url)} (see DEPLOY.md) and start the console; "
            "the old database is unchanged and can be kept as a backup.",
        ))
        return 0


COMMANDS = (MoveDatabaseCommand,)


def add_commands(target: Any) -> None:
    """Register `move-database`: with manage.py's `command` registry decorator (without the usual
    "bring the database up to date" step: the source must not be written), or on argparse
    sub-parsers (each gets `func=<run>`)."""
    if hasattr(target, "add_parser"):
        for cmd in COMMANDS:
            p = target.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            cmd.configure(p)
            p.set_defaults(func=cmd.run)
        return
    for cmd in COMMANDS:
        target(cmd.name, cmd.help, init_db=False)(cmd)


# --------------------------------------------------------------------------------------------
# standalone: python -m engine.cli_move --to URL


def _describe(exc: BaseException, lang: str) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, EngineError):
        return exc.describe(lang)
    if isinstance(exc, SQLAlchemyError):
        from engine.move import _first_line

        return render("move.db_error", lang, detail=_first_line(exc))
    return render("move.unexpected", lang, kind=type(exc).__name__, detail=str(exc))


def report(exc: BaseException, lang: str) -> None:
    """An error on stderr, in `lang` first and then in the other language (no traceback)."""
    other = "en" if lang == "zh" else "zh"
    first, second = _describe(exc, lang), _describe(exc, other)
    print(first, file=sys.stderr)
    if second != first:
        print(second, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.cli_move", description=HELP)
    parser.add_argument("--database-url", default=None, help="源数据库 / source database (default DATABASE_URL)")
    parser.add_argument("--lang", choices=("zh", "en"), default=os.environ.get("LAC_LANG", "zh"))
    MoveDatabaseCommand.configure(parser)
    args = parser.parse_args(argv)
    if args.lang not in ("zh", "en"):
        args.lang = "zh"
    try:
        return MoveDatabaseCommand.run(args)
    except KeyboardInterrupt:
        print(_t(args.lang, "已中断。", "Interrupted."), file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("LAC_DEBUG"):
            import traceback

            traceback.print_exc()
        report(exc, args.lang)
        return 1


if __name__ == "__main__":
    sys.exit(main())

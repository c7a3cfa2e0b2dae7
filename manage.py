#!/usr/bin/env python3
"""Operator commands for the Legal Aid Console (法律援助工作台 管理命令).

    .venv/bin/python manage.py --help
    .venv/bin/python manage.py create-user wang --role staff --display-name 王芳
    .venv/bin/python manage.py list-forms
    .venv/bin/python manage.py import-form my_form.yaml          # also .json / .xlsx
    .venv/bin/python manage.py export-form intake --format xlsx --out intake.xlsx
    .venv/bin/python manage.py export-records intake --format csv --out intake.csv
    .venv/bin/python manage.py seed-demo
    .venv/bin/python manage.py backup
    .venv/bin/python manage.py restore data/backups/console-20260315-093000.db
    .venv/bin/python manage.py check

The database is DATABASE_URL (default: the SQLite file data/console.db) or --database-url. Every
command first brings the database up to date (schema upgrade and built-in forms), except `restore`,
which needs the target as it is. Errors are printed in Chinese and English, without a traceback;
the exit status is 0 on success, 1 on an error, 2 on a wrong command line.

New commands register themselves in COMMANDS (name -> Command); see `command()`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.messages import register, render  # noqa: E402

LANGS = ("zh", "en")

register(
    {
        "cli.usage": {"zh": "命令行参数有误：{detail}", "en": "Wrong command line: {detail}"},
        "cli.unexpected": {
            "zh": "发生意外错误（{kind}）：{detail}。如需详细信息，请设置环境变量 LAC_DEBUG=1 后重试。",
            "en": "Unexpected error ({kind}): {detail}. Set LAC_DEBUG=1 for the details.",
        },
        "cli.interrupted": {"zh": "已中断。", "en": "Interrupted."},
        "cli.os_error": {"zh": "文件操作失败：{detail}", "en": "File operation failed: {detail}"},
        "cli.db_error": {
            "zh": "无法访问数据库（{url}）：{detail}",
            "en": "Cannot use the database ({url}): {detail}",
        },
        "cli.password_mismatch": {"zh": "两次输入的密码不一致。", "en": "The two passwords do not match."},
        "cli.password_empty": {"zh": "没有读到密码。", "en": "No password was given."},
        "cli.no_tty": {
            "zh": "无法交互输入密码；请使用 --password-stdin 从标准输入读取。",
            "en": "Cannot prompt for a password here; use --password-stdin.",
        },
        "cli.reveal_needs_user": {
            "zh": "--reveal 需要同时用 --user 指明导出人（其角色须有权查看敏感信息）。",
            "en": "--reveal needs --user naming who exports (a role that may reveal sensitive data).",
        },
        "cli.user_unknown": {"zh": "用户「{username}」不存在。", "en": "There is no user '{username}'."},
        "cli.user_inactive": {"zh": "用户「{username}」已停用。", "en": "User '{username}' is deactivated."},
        "cli.file_missing": {"zh": "找不到文件「{path}」。", "en": "File '{path}' not found."},
        "cli.unknown_file_type": {
            "zh": "无法识别「{path}」的格式：请使用 .yaml、.yml、.json 或 .xlsx 文件。",
            "en": "Unknown file type of '{path}': use a .yaml, .yml, .json or .xlsx file.",
        },
        "cli.xlsx_unavailable": {
            "zh": "此版本尚不支持 Excel 表单（engine.xlsform 缺失）。",
            "en": "Excel forms are not supported by this version (engine.xlsform is missing).",
        },
        "cli.xlsx_needs_out": {
            "zh": "Excel 文件不能输出到终端，请用 --out 指定文件。",
            "en": "An Excel file cannot be written to a terminal; give --out FILE.",
        },
        "cli.xlsform_invalid": {
            "zh": "Excel 表单「{path}」有 {count} 处问题，未导入。",
            "en": "The Excel form '{path}' has {count} problem(s); nothing was imported.",
        },
        "cli.check_failed": {
            "zh": "检查发现 {count} 个问题。",
            "en": "The check found {count} problem(s).",
        },
    }
)


# --------------------------------------------------------------------------------------------
# output helpers


class CliError(Exception):
    """An error with a message code (rendered in both languages)."""

    def __init__(self, code: str, *, status: int = 1, **params: Any) -> None:
        self.code = code
        self.params = params
        self.status = status
        super().__init__(code)


def other(lang: str) -> str:
    return "en" if lang == "zh" else "zh"


def emit_error(lines_by_lang: Callable[[str], str], lang: str) -> None:
    """An error on stderr: in the chosen language first, then in the other one."""
    first, second = lines_by_lang(lang), lines_by_lang(other(lang))
    print(first, file=sys.stderr)
    if second and second != first:
        print(second, file=sys.stderr)


def say(text: str = "") -> None:
    print(text, flush=True)


def t(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


class Progress:
    """A one-line progress display on stderr (only when stderr is a terminal, or `force`)."""

    def __init__(self, label: str, *, force: bool = False) -> None:
        self.label = label
        self.live = force or sys.stderr.isatty()
        self.started = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.live:
            return
        now = time.perf_counter()
        if done < total and now - self._last < 0.2:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        pct = f"{100 * done / total:5.1f}%" if total else ""
        sys.stderr.write(f"\r{self.label}: {done:,}/{total:,} {pct} {rate:,.0f}/s   ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# command registry


@dataclass
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    init_db: bool = True  # bring the database up to date (schema + built-in forms) first


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, *, init_db: bool = True) -> Callable[[Any], Any]:
    """Register a subcommand: decorate a class with `configure(parser)` and `run(args) -> int`."""

    def wrap(cls: Any) -> Any:
        COMMANDS[name] = Command(name, help, cls.configure, cls.run, init_db)
        return cls

    return wrap


def engine_of(args: argparse.Namespace) -> Any:
    from engine.db import get_engine

    return get_engine(args.database_url)


def actor_for(args: argparse.Namespace, username: str | None) -> Any:
    """The operator: SYSTEM (an admin) unless --user names a real, active user."""
    from engine.access import SYSTEM
    from engine.auth import get_user

    if not username:
        return SYSTEM
    user = get_user(engine_of(args), username)
    if user is None:
        raise CliError("cli.user_unknown", username=username)
    if not user.active:
        raise CliError("cli.user_inactive", username=username)
    return user.actor()


def out_stream(path: str | None) -> Any:
    return sys.stdout.buffer if path in (None, "-") else None


def atomic_write(path: Path, write: Callable[[Any], Any]) -> Any:
    """Write to `path` through a temporary file: a failed export leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with tmp.open("wb") as fh:
            result = write(fh)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


# --------------------------------------------------------------------------------------------
# commands


@command("create-user", "创建用户 / create a user (password asked twice, or --password-stdin)")
class CreateUser:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        from engine.auth import ROLES

        p.add_argument("username", help="用户名 / user name (lower-case letters, digits, . _ -)")
        p.add_argument("--role", required=True, choices=ROLES, help="角色 / role")
        p.add_argument("--display-name", default="", help="显示名称，如 王芳 / display name")
        p.add_argument("--email", default="")
        p.add_argument("--form-editor", action="store_true", help="可设计表单 / may design forms")
        p.add_argument("--user-language", choices=LANGS, default="zh", help="界面语言 / UI language")
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="从标准输入读取密码（一行）/ read the password from stdin",
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.access import SYSTEM
        from engine.auth import check_password_policy, create_user

        password = read_password(args)
        check_password_policy(password, args.username)
        info = create_user(
            engine_of(args),
            args.username,
            password,
            args.role,
            args.display_name,
            SYSTEM,
            form_editor=args.form_editor,
            email=args.email,
            language=args.user_language,
        )
        say(
            t(
                args.lang,
                f"已创建用户 {info.username}（角色 {info.role}）。",
                f"User {info.username} created (role {info.role}).",
            )
        )
        return 0


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.rstrip("\r")
        if not password:
            raise CliError("cli.password_empty")
        return password
    if not sys.stdin.isatty():
        raise CliError("cli.no_tty")
    first = getpass.getpass(t(args.lang, "密码 / Password: ", "Password / 密码: "))
    second = getpass.getpass(t(args.lang, "再次输入密码 / Repeat: ", "Repeat / 再次输入密码: "))
    if first != second:
        raise CliError("cli.password_mismatch")
    if not first:
        raise CliError("cli.password_empty")
    return first


@command("list-forms", "列出表单 / list forms with their current version and record count")
class ListForms:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--archived", action="store_true", help="包括已停用表单 / include archived forms")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.forms import list_forms

        forms = list_forms(engine_of(args), include_archived=args.archived)
        head = (
            t(args.lang, "表单", "slug"),
            t(args.lang, "名称", "title"),
            t(args.lang, "版本", "version"),
            t(args.lang, "记录数", "records"),
        )
        rows = [(f.slug, f.label(args.lang), str(f.version), str(f.count)) for f in forms]
        print_table(head, rows)
        return 0


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(_width(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c + " " * (w - _width(c)) for c, w in zip(cells, widths, strict=True)).rstrip()

    say(line(head))
    say("  ".join("-" * w for w in widths))
    for r in rows:
        say(line(r))


@command(
    "import-form", "导入表单 / import a form from YAML, JSON or Excel (XLSForm); publishes a new version"
)
class ImportForm:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("file", help=".yaml / .yml / .json / .xlsx")
        p.add_argument("--slug", help="Excel 表单的标识 / slug for an Excel form without one")
        p.add_argument("--note", default="", help="版本说明 / change note")
        p.add_argument("--dry-run", action="store_true", help="只检查不发布 / check only, publish nothing")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.access import SYSTEM
        from engine.errors import SpecError
        from engine.forms import preview_publish, publish

        path = Path(args.file)
        if not path.is_file():
            raise CliError("cli.file_missing", path=str(path))
        source = load_form_source(path, args)
        engine = engine_of(args)
        plan, affected = preview_publish(engine, source)
        if plan.problems:
            raise SpecError(
                "form.publish_refused",
                problems=list(plan.problems),
                form=plan.spec.slug,
                count=len(plan.problems),
            )
        for change in plan.changes:
            say(f"  - {describe_change(change, args.lang)}")
        if args.dry_run:
            say(
                t(
                    args.lang,
                    f"检查通过（未发布）：{plan.spec.slug}，现有记录 {affected} 条不受影响。",
                    f"Check passed (not published): {plan.spec.slug}; {affected} existing record(s) keep their version.",
                )
            )
            return 0
        fv = publish(engine, source, actor=SYSTEM, note=args.note or f"import {path.name}")
        say(
            t(
                args.lang,
                f"已发布表单 {plan.spec.slug} 第 {fv.version} 版。",
                f"Published form {plan.spec.slug} version {fv.version}.",
            )
        )
        return 0


def describe_change(change: Any, lang: str = "zh") -> str:
    if hasattr(change, "describe"):
        return change.describe(lang)
    kind = getattr(change, "kind", "change")
    fld = getattr(change, "field", None)
    return f"{kind}: {fld}" if fld else str(kind)


def load_form_source(path: Path, args: argparse.Namespace) -> Any:
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        return path
    if suffix in (".xlsx", ".xlsm"):
        try:
            from engine.xlsform import import_xlsform
        except ImportError as exc:
            raise CliError("cli.xlsx_unavailable") from exc
        from engine.errors import SpecError

        spec, problems, warnings = import_xlsform(path.read_bytes(), slug=args.slug, lang=args.lang)
        for warning in warnings or []:
            print(str(warning), file=sys.stderr)
        if spec is None or problems:
            raise SpecError(
                "cli.xlsform_invalid",
                problems=list(problems or []),
                path=str(path),
                count=len(problems or []),
            )
        return spec
    raise CliError("cli.unknown_file_type", path=str(path))


@command("export-form", "导出表单定义 / export a form's spec as YAML, JSON or Excel (XLSForm)")
class ExportForm:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("slug")
        p.add_argument("--format", choices=("yaml", "json", "xlsx"), default="yaml")
        p.add_argument("--version", type=int, help="表单版本（默认当前版）/ version (default: current)")
        p.add_argument("--out", help="输出文件（默认输出到终端）/ output file (default: stdout)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.forms import get_spec

        spec = get_spec(engine_of(args), args.slug, args.version)
        if args.format == "xlsx":
            try:
                from engine.xlsform import export_xlsform
            except ImportError as exc:
                raise CliError("cli.xlsx_unavailable") from exc
            data = export_xlsform(spec)
            if not args.out and sys.stdout.isatty():
                raise CliError("cli.xlsx_needs_out")
        else:
            from engine.spec import dump_spec

            data = dump_spec(spec, args.format).encode("utf-8")
        if args.out and args.out != "-":
            atomic_write(Path(args.out), lambda fh: fh.write(data))
            say(t(args.lang, f"已导出到 {args.out}", f"Written to {args.out}"))
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        return 0


@command("export-records", "导出记录 / export a form's records as CSV (Excel) or XLSX")
class ExportRecords:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("slug")
        p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
        p.add_argument("--out", required=True, help="输出文件 / output file")
        p.add_argument("--keys", action="store_true", help="表头用字段标识而非名称 / field keys as headers")
        p.add_argument(
            "--reveal",
            action="store_true",
            help="不遮蔽敏感信息（需 --user）/ do not mask sensitive data (needs --user)",
        )
        p.add_argument("--user", help="以此用户身份导出 / export as this user")
        p.add_argument("--reason", help="导出未遮蔽敏感信息的原因（记入审计日志）/ why (kept in the audit log)")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.exporters import export_records

        if args.reveal and not args.user:
            raise CliError("cli.reveal_needs_user", status=2)
        actor = actor_for(args, args.user)
        engine = engine_of(args)
        progress = Progress(t(args.lang, "导出", "export"))
        result = atomic_write(
            Path(args.out),
            lambda fh: export_records(
                engine,
                args.slug,
                fh,
                args.format,
                actor=actor,
                headers="key" if args.keys else "label",
                lang=args.lang,
                reveal=args.reveal,
                progress=progress,
                reason=args.reason,
            ),
        )
        masked = result.sensitive and not result.revealed
        say(
            t(
                args.lang,
                f"已导出 {result.count} 条记录到 {args.out}" + ("（敏感信息已遮蔽）" if masked else ""),
                f"Exported {result.count} record(s) to {args.out}"
                + (" (sensitive data masked)" if masked else ""),
            )
        )
        return 0


@command("seed-demo", "生成演示数据 / fill the database with realistic demo data")
class SeedDemo:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--submissions",
            type=int,
            default=None,
            metavar="N",
            help="另外批量生成 N 条申请记录 / also bulk-fill N extra intake records",
        )
        p.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="基础演示数据的比例（1 = 工作报告规模，0 = 不生成）/ share of the base demo data",
        )
        p.add_argument("--years", type=int, default=3)
        p.add_argument("--seed", type=int, default=42)
        p.add_argument(
            "--force", action="store_true", help="已有演示数据时仍然生成 / seed even if demo data exists"
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.demo import seed_demo

        progress = Progress(t(args.lang, "生成", "seeding"), force=False)
        started = time.perf_counter()
        summary = seed_demo(
            engine_of(args),
            submissions=args.submissions,
            years=args.years,
            seed=args.seed,
            progress=progress,
            force=args.force,
            scale=args.scale,
        )
        elapsed = time.perf_counter() - started
        say(summary.describe(args.lang))
        say(t(args.lang, f"用时 {elapsed:.1f} 秒", f"took {elapsed:.1f} s"))
        return 0


@command("backup", "备份数据库 / back up the database")
class Backup:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dest", help="备份目录（默认 LAC_BACKUP_DIR，未设置时为 data/backups）/ directory (default LAC_BACKUP_DIR, else data/backups)")
        p.add_argument(
            "--format",
            choices=("sqlite", "lacdump"),
            help="SQLite 默认 sqlite，PostgreSQL 只能 lacdump / default: sqlite on SQLite, lacdump on PostgreSQL",
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.backup import backup

        path = backup(engine_of(args), args.dest, fmt=args.format)
        size = path.stat().st_size
        say(
            t(
                args.lang,
                f"备份完成：{path}（{size / 1024:,.0f} KB）",
                f"Backup written: {path} ({size / 1024:,.0f} KB)",
            )
        )
        return 0


@command("restore", "从备份恢复 / restore a backup (.db or .lacdump)", init_db=False)
class Restore:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("file")
        p.add_argument(
            "--force",
            action="store_true",
            help="目标数据库非空时也恢复（覆盖）/ restore into a non-empty database (replaces its data)",
        )

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.backup import restore
        from engine.forms import clear_caches

        summary = restore(args.database_url, args.file, force=args.force)
        clear_caches()
        say(summary.describe(args.lang))
        return 0


@command("check", "检查数据库 / check the database (integrity, specs, records)")
class Check:
    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--limit", type=int, default=50, help="最多显示多少个问题 / show at most N problems")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.check import check_database, summary_line

        engine = engine_of(args)
        problems = check_database(engine)
        for p in problems[: args.limit]:
            say(p.describe(args.lang))
        if len(problems) > args.limit:
            say(
                t(
                    args.lang,
                    f"……另有 {len(problems) - args.limit} 个问题未显示",
                    f"... and {len(problems) - args.limit} more",
                )
            )
        say(summary_line(engine, problems, args.lang))
        if problems:
            raise CliError("cli.check_failed", count=len(problems))
        return 0


# --------------------------------------------------------------------------------------------
# commands contributed by other modules (reports and record imports; moving the database)

from engine.cli_move import add_commands as _add_move_commands  # noqa: E402
from engine.cli_reports import add_commands as _add_report_commands  # noqa: E402

_add_report_commands(command)
_add_move_commands(command)


# --------------------------------------------------------------------------------------------
# main


class Parser(argparse.ArgumentParser):
    """argparse with bilingual errors and no traceback."""

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments:"
        if message.startswith(prefix):  # never echo stray values: one may be a password
            words = message[len(prefix) :].split()
            message = prefix + " " + " ".join(w if w.startswith("-") else "***" for w in words)
        self.print_usage(sys.stderr)
        lang = getattr(self, "_lang", "zh")
        emit_error(lambda lg: render("cli.usage", lg, detail=message), lang)
        raise SystemExit(2)


def build_parser(lang: str = "zh") -> Parser:
    parser = Parser(
        prog="manage.py",
        allow_abbrev=False,
        description="法律援助工作台 管理命令 / Legal Aid Console operator commands",
    )
    parser._lang = lang  # type: ignore[attr-defined]
    parser.add_argument(
        "--database-url",
        default=None,
        help="数据库地址（默认 DATABASE_URL 或 data/console.db）/ overrides DATABASE_URL",
    )
    parser.add_argument("--lang", choices=LANGS, default=None, help="提示语言 / language of messages (zh|en)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help, allow_abbrev=False)
        p._lang = lang  # type: ignore[attr-defined]
        cmd.configure(p)
    return parser


def _early_lang(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--lang="):
            value = arg.split("=", 1)[1]
            return value if value in LANGS else "zh"
        if arg == "--lang" and i + 1 < len(argv):
            return argv[i + 1] if argv[i + 1] in LANGS else "zh"
    env = os.environ.get("LAC_LANG", "zh")
    return env if env in LANGS else "zh"


def _describe(exc: BaseException, lang: str, url: str) -> str:
    from sqlalchemy.exc import SQLAlchemyError

    from engine.errors import EngineError

    if isinstance(exc, CliError):
        return render(exc.code, lang, **exc.params)
    if isinstance(exc, EngineError):
        return exc.describe(lang)
    if isinstance(exc, KeyboardInterrupt):
        return render("cli.interrupted", lang)
    if isinstance(exc, SQLAlchemyError):
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return render("cli.db_error", lang, url=_safe_url(url), detail=detail)
    if isinstance(exc, OSError):
        return render("cli.os_error", lang, detail=str(exc))
    return render("cli.unexpected", lang, kind=type(exc).__name__, detail=str(exc))


def _safe_url(url: str | None) -> str:
    if not url:
        return ""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "?"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    lang = _early_lang(argv)
    parser = build_parser(lang)
    args = parser.parse_args(argv)
    args.lang = args.lang or lang
    if not args.command:
        parser.print_help()
        return 2
    url = ""
    try:
        from engine.config import database_url

        args.database_url = url = args.database_url or database_url()
        cmd = COMMANDS[args.command]
        if cmd.init_db:
            from engine.forms import init_database

            init_database(engine_of(args))
        return cmd.run(args)
    except KeyboardInterrupt as exc:
        report(exc, args.lang, url)
        return 130
    except Exception as exc:
        if os.environ.get("LAC_DEBUG"):
            import traceback

            traceback.print_exc()
        report(exc, args.lang, url)
        return exc.status if isinstance(exc, CliError) else 1


def report(exc: BaseException, lang: str, url: str) -> None:
    emit_error(lambda lg: _describe(exc, lg, url), lang)


if __name__ == "__main__":
    sys.exit(main())

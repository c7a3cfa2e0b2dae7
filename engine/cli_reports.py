"""`manage.py report` and `manage.py import-records` (wired into manage.py with `add_commands`).

    manage.py report --year 2025 --out 2025.pdf [--lang zh|en]
    manage.py report --year 2023-2025 --out three-years.pdf
    manage.py report --from 2025-01-01 --to 2025-06-30 --out h1.pdf
    manage.py import-records intake last_year.xlsx [--dry-run] [--user NAME] [--lang zh|en]

`add_commands(target)` accepts manage.py's `command` registry decorator (the usual way) or a plain
argparse sub-parsers object (then each sub-parser gets `func=run`). The commands print per-row
problems of an import and exit with status 1 when anything is refused (nothing is stored then).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.messages import register

register(
    {
        "cli.report_needs_period": {
            "zh": "请用 --year（如 2025 或 2023-2025）或 --from/--to 指定统计期间。",
            "en": "Give the period with --year (e.g. 2025 or 2023-2025) or --from/--to.",
        },
        "cli.bad_year": {"zh": "年份「{value}」无效，应为 2025 或 2023-2025。",
                         "en": "Year '{value}' is not valid: use 2025 or 2023-2025."},
        "cli.bad_date": {"zh": "日期「{value}」无效，应为 YYYY-MM-DD。",
                         "en": "Date '{value}' is not valid: use YYYY-MM-DD."},
        "cli.import_refused": {
            "zh": "有 {rows} 行未通过检查（共 {problems} 处问题），没有导入任何记录。",
            "en": "{rows} row(s) failed the checks ({problems} problem(s)); nothing was imported.",
        },
    }
)


_FALLBACK = {  # also registered by manage.py; here so that the commands work without it
    "cli.user_unknown": {"zh": "用户「{username}」不存在。", "en": "There is no user '{username}'."},
    "cli.user_inactive": {"zh": "用户「{username}」已停用。", "en": "User '{username}' is deactivated."},
    "cli.file_missing": {"zh": "找不到文件「{path}」。", "en": "File '{path}' not found."},
}


def _register_fallbacks() -> None:
    from engine.messages import MESSAGES

    register({k: v for k, v in _FALLBACK.items() if k not in MESSAGES})


_register_fallbacks()


def _zh(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def parse_period(year: str | None, date_from: str | None, date_to: str | None) -> tuple[date, date]:
    """(from, to) from --year YYYY | YYYY-YYYY and/or --from/--to (which override the year's ends)."""
    from engine.reports import year_range

    lo = hi = None
    if year:
        parts = year.replace("–", "-").split("-")
        try:
            years = [int(p) for p in parts if p.strip()]
        except ValueError:
            raise EngineError("cli.bad_year", value=year) from None
        if not 1 <= len(years) <= 2 or not all(1900 <= y <= 9999 for y in years):
            raise EngineError("cli.bad_year", value=year)
        lo, hi = year_range(years[0], years[-1])
    try:
        if date_from:
            lo = date.fromisoformat(date_from)
        if date_to:
            hi = date.fromisoformat(date_to)
    except ValueError as exc:
        raise EngineError("cli.bad_date", value=str(exc).split("'")[1] if "'" in str(exc) else
                          (date_from or date_to)) from None
    if lo is None or hi is None:
        raise EngineError("cli.report_needs_period")
    return lo, hi


def _engine(args: argparse.Namespace) -> Any:
    from engine.db import get_engine

    return get_engine(getattr(args, "database_url", None))


def _actor(args: argparse.Namespace) -> Any:
    from engine.access import SYSTEM
    from engine.auth import get_user

    name = getattr(args, "user", None)
    if not name:
        return SYSTEM
    user = get_user(_engine(args), name)
    if user is None:
        raise EngineError("cli.user_unknown", username=name)
    if not user.active:
        raise EngineError("cli.user_inactive", username=name)
    return user.actor()


# --------------------------------------------------------------------------------------------------
class ReportCommand:
    name = "report"
    help = "年度工作统计报告（PDF）/ year-end statistics report as a PDF"

    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("--year", help="年份，如 2025 或 2023-2025 / year or range of years")
        p.add_argument("--from", dest="date_from", help="开始日期 YYYY-MM-DD / start date")
        p.add_argument("--to", dest="date_to", help="结束日期 YYYY-MM-DD / end date")
        p.add_argument("--out", required=True, help="输出的 PDF 文件 / the PDF file to write")
        p.add_argument("--no-compare", action="store_true", help="不与上期对比 / no previous-period comparison")
        if not any(a.dest == "lang" for a in p._actions):
            p.add_argument("--lang", choices=("zh", "en"), default=None, help="报告语言 / report language")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.prints import report_pdf
        from engine.reports import year_end_report

        lang = getattr(args, "lang", None) or "zh"
        lo, hi = parse_period(args.year, args.date_from, args.date_to)
        report = year_end_report(_engine(args), lo, hi, compare=not args.no_compare)
        pdf = report_pdf(report, lang)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.part")
        tmp.write_bytes(pdf)
        tmp.replace(out)
        accepted = report.get("cases.accepted")
        print(_zh(lang, f"已生成 {report.period_label(lang)} 统计报告：{out}（{len(pdf):,} 字节；受理案件 {accepted} 件）",
                  f"Wrote the {report.period_label(lang)} report to {out} ({len(pdf):,} bytes; {accepted} cases "
                  "accepted)"), flush=True)
        return 0


class ImportRecordsCommand:
    name = "import-records"
    help = "导入记录（CSV 或 XLSX）/ import records from CSV or XLSX (all or nothing)"

    @staticmethod
    def configure(p: argparse.ArgumentParser) -> None:
        p.add_argument("slug", help="表单 / form slug, e.g. intake")
        p.add_argument("file", help="CSV 或 XLSX 文件 / the CSV or XLSX file")
        p.add_argument("--dry-run", action="store_true", help="只检查，不导入 / check only, store nothing")
        p.add_argument("--user", default=None, help="导入人（默认系统管理员）/ who imports (default: system)")
        p.add_argument("--limit", type=int, default=200, help="最多显示多少个问题 / problems to print")
        if not any(a.dest == "lang" for a in p._actions):
            p.add_argument("--lang", choices=("zh", "en"), default=None, help="提示语言 / language of messages")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from engine.importers import ImportRefused, commit, dry_run

        lang = getattr(args, "lang", None) or "zh"
        path = Path(args.file)
        if not path.is_file():
            raise EngineError("cli.file_missing", path=str(path))
        engine, actor = _engine(args), _actor(args)
        try:
            if args.dry_run:
                report = dry_run(engine, args.slug, path, actor=actor, lang=lang)
            else:
                result = commit(engine, args.slug, path, actor=actor, lang=lang)
                report = result.report
        except ImportRefused as exc:
            report = exc.report
        _print_columns(report, lang)
        for m in report.messages(lang)[: args.limit]:
            where = _zh(lang, f"第 {m['row']} 行", f"row {m['row']}")
            what = f"「{m['field']}」" if lang == "zh" else f"'{m['field']}'"
            print(f"{where} {what}: {m['message']}" if m["field"] else f"{where}: {m['message']}", file=sys.stderr)
        if report.problems_total > args.limit:
            print(_zh(lang, f"……另有 {report.problems_total - args.limit} 个问题未显示",
                      f"... and {report.problems_total - args.limit} more"), file=sys.stderr)
        if report.problems_total:
            from engine.messages import render

            print(render("cli.import_refused", lang, rows=report.rows_refused, problems=report.problems_total),
                  file=sys.stderr)
            return 1
        if report.rows_total == 0:
            raise EngineError("import.empty")
        if args.dry_run:
            print(_zh(lang, f"检查通过：{report.rows_ok} 行均可导入（未写入数据库）。",
                      f"Check passed: all {report.rows_ok} rows can be imported (nothing stored)."))
        else:
            print(_zh(lang, f"已导入 {result.count} 条记录（导入批次 #{result.audit_id}，可撤销）。",
                      f"Imported {result.count} records (batch #{result.audit_id}, can be undone)."))
        return 0


def _print_columns(report: Any, lang: str) -> None:
    mapped = [f"{c.header}→{report.field_label(c.target, lang)}" for c in report.columns.columns if c.target]
    print(_zh(lang, "列对应：", "Columns: ") + ", ".join(mapped))
    if report.columns.unknown:
        print(_zh(lang, "未识别的列（已忽略）：", "Unknown columns (ignored): ") + ", ".join(report.columns.unknown))


COMMANDS = (ReportCommand, ImportRecordsCommand)


def add_commands(target: Any) -> None:
    """Register `report` and `import-records`: with manage.py's `command` decorator, or on argparse
    sub-parsers (each gets `func=<run>`)."""
    if hasattr(target, "add_parser"):
        for cmd in COMMANDS:
            p = target.add_parser(cmd.name, help=cmd.help, description=cmd.help)
            cmd.configure(p)
            p.set_defaults(func=cmd.run)
        return
    for cmd in COMMANDS:
        target(cmd.name, cmd.help)(cmd)


__all__ = ["COMMANDS", "ImportRecordsCommand", "ReportCommand", "add_commands", "parse_period"]

#!/bin/sh
# 法律援助工作台 · 每日备份 / nightly backup of the Legal Aid Console, with an off-machine copy.
#
# Run as the `lac` user, from cron (deploy/legal-aid-console.cron). On several machines: on ONE only.
#   LAC_BACKUP_DIR       where backups go            (default: <app>/data/backups)
#   LAC_BACKUP_OFFSITE   rsync target off this machine, e.g. lacbackup@nas.example:/volume1/lac/
#                        (ssh key login without a password; empty: no off-machine copy — not advised)
#   LAC_BACKUP_KEEP_DAYS backups kept here            (default: 30; the off-machine copy keeps all)
# SQLite: a consistent .db copy taken while people work; PostgreSQL: a .lacdump snapshot.
set -eu
APP=${LAC_APP_DIR:-/opt/legal-aid-console}
cd "$APP"
# the same settings as the service (DATABASE_URL, ...)
if [ -r /etc/legal-aid-console/env ]; then
    set -a
    . /etc/legal-aid-console/env
    set +a
fi
DEST=${LAC_BACKUP_DIR:-$APP/data/backups}
KEEP_DAYS=${LAC_BACKUP_KEEP_DAYS:-30}
umask 077
mkdir -p "$DEST"

echo "$(date '+%F %T') backup start"
.venv/bin/python manage.py backup --dest "$DEST"
find "$DEST" -maxdepth 1 -type f -name 'console-*' -mtime +"$KEEP_DAYS" -delete

if [ -n "${LAC_BACKUP_OFFSITE:-}" ]; then
    if ! command -v rsync >/dev/null 2>&1; then
        echo "$(date '+%F %T') ERROR: rsync is not installed (sudo apt install rsync): no off-machine copy" >&2
        exit 1
    fi
    # no --delete: the other machine keeps older backups after they are pruned here
    rsync -a --chmod=D700,F600 "$DEST"/ "$LAC_BACKUP_OFFSITE"
    echo "$(date '+%F %T') copied to $LAC_BACKUP_OFFSITE"
else
    echo "$(date '+%F %T') WARNING: LAC_BACKUP_OFFSITE is not set: the backups are on this machine only" >&2
fi
echo "$(date '+%F %T') backup done"

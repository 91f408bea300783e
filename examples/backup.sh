#!/usr/bin/env bash
# backup.sh: a batch job that times a backup and pushes the outcome to the
# Pushgateway (any node of a pushgateway-cluster will do).
#
#   PUSHGATEWAY_URL=http://pg2:9091 ./backup.sh
#
# The "backup" is simulated and harmless: it tars a few files from one
# temporary directory into another. Set SIMULATE_FAILURE=1 to make it fail.
#
# On success the job pushes duration, success=1 and the time of this success.
# On failure it pushes only duration and success=0: the push is a POST, which
# replaces just the metrics it carries, so the last success timestamp of the
# previous good run stays in place (alert on `time() - that > 86400`).
#
# Exit status: 0 when backup and push worked, 1 when the backup failed, and
# curl's status (22 for an HTTP error) when the push failed.
set -uo pipefail

PUSHGATEWAY_URL="${PUSHGATEWAY_URL:-http://localhost:9091}"

now() { local t="${EPOCHREALTIME:-$(date +%s)}"; echo "${t/,/.}"; }

work="$(mktemp -d)" || exit 1
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/dst"
for i in 1 2 3; do echo "record $i" >"$work/src/data-$i.txt"; done

start="$(now)"
if [[ -z "${SIMULATE_FAILURE:-}" ]] &&
    tar -C "$work/src" -czf "$work/dst/backup.tar.gz" . &&
    sleep 0.1; then
    backup_rc=0
else
    backup_rc=1
fi
end="$(now)"
duration="$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')"

if ((backup_rc == 0)); then
    # --retry retries a 503 (nothing was stored) and a 504 (outcome unknown;
    # a push is idempotent, so sending it again is safe).
    curl --fail --silent --show-error --retry 3 --retry-delay 1 \
        --data-binary @- "$PUSHGATEWAY_URL/metrics/job/backup/instance/$(hostname)" <<EOF || exit
# TYPE backup_duration_seconds gauge
# HELP backup_duration_seconds Duration of the last backup run in seconds.
backup_duration_seconds $duration
# TYPE backup_last_success_timestamp_seconds gauge
# HELP backup_last_success_timestamp_seconds Unix time of the last successful backup.
backup_last_success_timestamp_seconds ${end%.*}
# TYPE backup_success gauge
# HELP backup_success Whether the last backup run succeeded (1) or failed (0).
backup_success 1
EOF
else
    echo "backup failed" >&2
    curl --fail --silent --show-error --retry 3 --retry-delay 1 \
        --data-binary @- "$PUSHGATEWAY_URL/metrics/job/backup/instance/$(hostname)" <<EOF || exit
# TYPE backup_duration_seconds gauge
# HELP backup_duration_seconds Duration of the last backup run in seconds.
backup_duration_seconds $duration
# TYPE backup_success gauge
# HELP backup_success Whether the last backup run succeeded (1) or failed (0).
backup_success 0
EOF
fi
exit "$backup_rc"

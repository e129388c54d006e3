#!/usr/bin/env bash
# The nightly job, for cron or a systemd timer: today's extract into the production output
# directory, with the scheduler's own run id, JSON lines for the log shipper.
#
#   PA_BATCH_EXTRACT   the night's extract (a file, a directory or a quoted glob)
#   PA_BATCH_OUT       the output directory (history and the current run)
#   PA_BATCH_RUN_ID    optional: one id per night; default nightly-YYYY-MM-DD (UTC), so a
#                      re-run of the same night is idempotent: it writes nothing and exits
#                      as the committed run did
#
# Exit: 0 committed; 3 committed over --max-reject-rate (alert, do not retry); 75 transient
# (locked directory, full disk, cluster away): retry later; 1 input or command wrong: alert.
set -u
: "${PA_BATCH_EXTRACT:?the extract of the night}"
: "${PA_BATCH_OUT:?the output directory}"
export PA_BATCH_RUN_ID="${PA_BATCH_RUN_ID:-nightly-$(date -u +%F)}"
export PA_BATCH_LOG_FORMAT=json
PA_BATCH="${PA_BATCH:-pa-batch}"

$PA_BATCH run "$PA_BATCH_EXTRACT" --max-reject-rate "${PA_BATCH_MAX_REJECT_RATE:-0.05}"
status=$?
case $status in
  0|3) exit $status ;;
  75) echo "pa-batch: transient failure; the next attempt retries" >&2; exit 75 ;;
  *) exit $status ;;
esac

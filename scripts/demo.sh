#!/usr/bin/env bash
# The main job: `supamigrate demo`. It starts the local sandbox (a
# Supabase-like source with the TMS fixture and an RDS-like target), runs the
# whole migration (preflight, backup with a restore test, schema, users and
# data, Storage uploaded to a local S3 server, post-data, sequences, verify,
# report), prints the checklist, a summary and the HTML report's path, then
# stops and removes the sandbox and the S3 server. The report and backups
# stay in DIR.
#
#   bash scripts/demo.sh [DIR]      (default ./supamigrate-demo)
. "$(dirname "$0")/common.sh"
exec "$bin" -q demo --dir "${1:-supamigrate-demo}"

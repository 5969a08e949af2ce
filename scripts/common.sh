# Sourced by the demo and the benchmarks: set up the machine, build, and start
# a sandbox in a temporary folder that is stopped and removed on exit.
#
#   . scripts/common.sh; start_sandbox NAME SCALE
#
# Leaves $bin (the release binary), $base (the temporary folder) and the
# sandbox's SUPABASE_DB_URL, RDS_URL… exported.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
cargo build --release --locked --quiet
bin="$PWD/target/release/supamigrate"

start_sandbox() { # name, scale
  base=$(mktemp -d "${TMPDIR:-/tmp}/supamigrate-$1.XXXXXX")
  chmod 755 "$base"
  trap '"$bin" -q sandbox stop --remove --dir "$base/sandbox"; rm -rf "$base"' EXIT
  eval "$("$bin" -q sandbox start --dir "$base/sandbox" --scale "$2")"
}

#!/usr/bin/env bash
# The gdx CLI against a real broker and MariaDB: tables, --json, --help on
# every command, the session file's mode, the documented exit codes, numbers
# on the command line read whole, and answers larger than their caps.
# Usage: test_cli.sh GDX_BIN BROKER_BIN   (GDX_TEST_DB_ENV from ctest)
set -u
gdx=$1; broker_bin=$2
[ -n "${GDX_TEST_DB_ENV:-}" ] && [ -r "$GDX_TEST_DB_ENV" ] || {
  echo "GDX_TEST_DB_ENV is not set or unreadable: this test needs the fixture's MariaDB (run it through ctest)"
  exit 1
}
. "$(dirname "$0")/../../harness/wait.sh"
. "$GDX_TEST_DB_ENV"
work=$(mktemp -d /tmp/gdx-test-cli.XXXXXX)
db="gdx_test_cli_$$"
export XDG_CONFIG_HOME="$work/config"
pass=0; fail=0
check() { # name expected-exit command...
  local name=$1 want=$2; shift 2
  local out; out=$("$@" 2>&1); local got=$?
  if [ "$got" = "$want" ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL $name: exit $got, expected $want"; echo "$out" | sed 's/^/    /'; fi
  LAST=$out
}
contains() { # name needle
  if printf '%s' "$LAST" | grep -qF -- "$2"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL $1: output lacks '$2'"; printf '%s\n' "$LAST" | sed 's/^/    /'; fi
}
cleanup() {
  [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  [ -n "${bigpid:-}" ] && kill "$bigpid" 2>/dev/null && wait "$bigpid" 2>/dev/null
  mariadb --no-defaults --socket="$GDX_DB_SOCKET" -uroot -e "DROP DATABASE IF EXISTS $db"
  rm -rf "$work"
}
trap cleanup EXIT
mariadb --no-defaults --socket="$GDX_DB_SOCKET" -uroot -e "CREATE DATABASE $db"
port=$(( 20000 + (RANDOM % 20000) ))
cat >"$work/broker.conf" <<CONF
listen = { port = $port; };
db = { socket = "$GDX_DB_SOCKET"; user = "root"; name = "$db"; };
auth = { argon2_memory_kib = 1024; argon2_iterations = 1; };
schema_dir = "${GDX_SOURCE_DIR}/schemas";
log = { file = "$work/broker.log"; };
nodes = { port = -1; };
pki = { dir = "$work/pki"; };
CONF
echo 'Init-2026-pw!' | "$broker_bin" -c "$work/broker.conf" --init-admin ops.admin \
  --unit-code 91350100M000100Y43 --unit-name 运维单位 >/dev/null || exit 1
"$broker_bin" -c "$work/broker.conf" & bpid=$!
wait_until 30 "the broker to answer /healthz on port $port" \
  curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || exit 1
export GDX_BROKER="http://127.0.0.1:$port"

# --help everywhere, usage errors
for c in login logout whoami passwd units users audit catalog requests authorizations demands; do
  check "$c --help" 0 "$gdx" "$c" --help; contains "$c --help" "Usage: gdx $c"
done
check "no command" 2 "$gdx"
check "unknown command" 2 "$gdx" frobnicate
check "units without subcommand" 2 "$gdx" units

# numbers are read whole and range-checked: a usage error naming the option
check "quota not a number" 2 "$gdx" requests apply --resource 101001/000001 --purpose p \
  --items a --method call --until 2030-01-01 --quota 12x
contains "quota message" '--quota: must be a whole number from 1 to 1000000000000 (got "12x")'
contains "usage follows" "Usage: gdx requests"
check "quota zero" 2 "$gdx" requests approve 7 --quota 0
check "request id" 2 "$gdx" requests show 12x
contains "id message" 'ID: must be a whole number, 1 or more (got "12x")'
check "subscription id" 2 "$gdx" subscriptions report 5abc
contains "authorization message" 'AUTHORIZATION: must be a whole number'
check "audit limit" 2 "$gdx" audit list --limit ten
contains "limit message" '--limit: must be a whole number, 1 or more (got "ten")'
check "fetch page" 2 "$gdx" fetch --token t 101001/000001 --page 20000
contains "page message" '--page: must be a whole number from 1 to 10000 (got "20000")'
check "credential authorization" 2 "$gdx" credentials create --authorization 3.5

# not logged in
check "whoami logged out" 4 "$gdx" whoami
contains "hint" "gdx login"
check "wrong password" 4 sh -c "echo 'Nope-2026-pw!' | '$gdx' login --password-stdin ops.admin"

# first login and the forced password change
check "login" 0 sh -c "echo 'Init-2026-pw!' | '$gdx' login --password-stdin ops.admin"
contains "login says change" "must be changed"
mode=$(stat -c %a "$XDG_CONFIG_HOME/gdx/session.json")
[ "$mode" = 600 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL session file mode $mode"; }
check "forced change" 5 "$gdx" units list
contains "passwd hint" "gdx passwd"
check "passwd weak" 1 sh -c "printf 'Init-2026-pw!\nweak\n' | '$gdx' passwd --password-stdin"
contains "policy message" "at least 8 characters"
check "passwd" 0 sh -c "printf 'Init-2026-pw!\nOps-2026-pw!\n' | '$gdx' passwd --password-stdin"

# units and users, tables and JSON
check "create unit" 0 "$gdx" units create --code 91310115MA1H7GXY1E --name 市市场监管局 --roles provider,consumer
check "duplicate unit" 7 "$gdx" units create --code 91310115MA1H7GXY1E --name xx --roles provider
check "bad unit code" 1 "$gdx" units create --code 91310115MA1H7GXY1X --name xx --roles provider
contains "check character" "check character"
check "units table" 0 "$gdx" units list
contains "table header" "CODE"
contains "table row" "市市场监管局"
check "units json" 0 "$gdx" units list --json
contains "json output" '"code": "91310115MA1H7GXY1E"'
contains "json output is the API's" '"items": ['
check "unit not found" 6 "$gdx" units show 121000004000000010
check "create unit admin" 0 sh -c "echo 'Start-2026-pw' | '$gdx' users create --password-stdin --username admin.a --name 张三 --role unit_admin --unit 91310115MA1H7GXY1E"
check "users table" 0 "$gdx" users list
contains "user row" "admin.a"
check "audit verify" 0 "$gdx" audit verify
contains "verify" "audit chain intact"
check "audit list" 0 "$gdx" audit list --action unit.create
contains "audit row" "unit.create"

# a unit admin may not create units
check "logout" 0 "$gdx" logout
check "admin login" 0 sh -c "echo 'Start-2026-pw' | '$gdx' login --password-stdin admin.a"
check "admin passwd" 0 sh -c "printf 'Start-2026-pw\nAdmin-2026-pw!\n' | '$gdx' passwd --password-stdin"
check "admin creates unit" 5 "$gdx" units create --code 121000004000000010 --name xx --roles consumer
check "admin creates staff" 0 sh -c "echo 'Start-2026-pw' | '$gdx' users create --password-stdin --username staff.a --name 李四 --role staff"

# answers larger than their caps, from a stand-in broker: a clear error, no crash
if command -v python3 >/dev/null; then
  python3 - "$work/big.port" <<'PY' & bigpid=$!
import http.server, sys
class Big(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # /api/v1/me: 64 MiB + 1 byte of success; else a 64 KiB + 1 refusal
        big = self.path == "/api/v1/me"
        n = (64 << 20) + 1 if big else (64 << 10) + 1
        self.send_response(200 if big else 500)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = b" " * 65536
        try:
            while n > 0:
                self.wfile.write(block[:min(n, len(block))])
                n -= min(n, len(block))
        except (BrokenPipeError, ConnectionResetError):
            pass
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), Big)
with open(sys.argv[1], "w") as f:
    f.write(str(s.server_port))
s.serve_forever()
PY
  wait_until 30 "the stand-in broker's port file" test -s "$work/big.port" || exit 1
  big="http://127.0.0.1:$(cat "$work/big.port")"
  check "answer over its cap" 1 "$gdx" --broker "$big" whoami
  contains "answer cap named" "gdx: the broker's answer is larger than 64 MiB"
  check "refusal over its cap" 1 "$gdx" --broker "$big" units list
  contains "refusal cap named" "gdx: the broker's answer is larger than 64 KiB (HTTP 500)"
  kill "$bigpid"; wait "$bigpid" 2>/dev/null; bigpid=""
else
  echo "no python3: the caps on answers are not checked"
fi

# the broker gone
kill "$bpid"; wait "$bpid" 2>/dev/null; bpid=""
check "unreachable" 3 "$gdx" whoami
contains "unreachable message" "cannot reach the broker"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

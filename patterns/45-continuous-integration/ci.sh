#!/usr/bin/env bash
# Pattern 45, continuous integration: the job a CI system runs to test code against AWS
# without an account. It starts `nimbus serve --ephemeral` on a free port, waits for its
# `Ready.` line, runs the test suite in tests/ (aws CLI checks of S3, SQS and EC2) against
# it, stops it, and checks that nothing of it is left on the machine: no process, no file
# outside its temporary directory, no network device, no mount, no cgroup. See README.md.
#
#   ./ci.sh
#
# nimbus is $NIMBUS_BIN if set; else, inside a nimbus checkout with cargo, the release
# build of that checkout (`cargo build --release --locked`); else `nimbus` on PATH. Runs
# as a normal user (EC2 instances are then supervised processes: the process driver) or
# as root (instances in namespaces on a `nimbus0` bridge: the namespace driver; run it in
# a network namespace of its own, or on a CI machine, as one nimbus owns the bridge of a
# network namespace). Needs bash, curl and the `aws` CLI (preinstalled on GitHub's
# runners), nothing else: no account, no token, no container engine. Prints each
# observation as an ok or FAIL line and exits non-zero if any failed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  "") ;;
  *) echo "unknown argument: $1" >&2; exit 2 ;;
esac

FAILED=0
ok()   { printf '  ok    %s\n' "$*"; }
bad()  { printf '  FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }
step() { printf '\n== %s\n' "$*"; }
say()  { printf '        %s\n' "$*"; }
# Microseconds since the epoch, without a fork where bash has $EPOCHREALTIME.
now_us() {
  if [ -n "${EPOCHREALTIME:-}" ]; then local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"
  else echo $(( $(date +%s%N) / 1000 )); fi
}

# --- 1. nimbus --------------------------------------------------------------------------
step "1. nimbus"
if [ -n "${NIMBUS_BIN:-}" ]; then
  NIMBUS=$NIMBUS_BIN; how="NIMBUS_BIN"
elif [ -f "$HERE/../../crates/nimbus/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
  SRC=$(cd "$HERE/../.." && pwd)
  echo "building nimbus in $SRC (cargo build --release --locked)"
  (cd "$SRC" && cargo build --release --locked --bin nimbus)
  target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$SRC/$target ;; esac
  NIMBUS=$target/release/nimbus; how="built from $SRC"
elif command -v nimbus >/dev/null 2>&1; then
  NIMBUS=$(command -v nimbus); how="nimbus on PATH"
else
  echo "no nimbus: set NIMBUS_BIN, run this inside a nimbus checkout with cargo, or put nimbus on PATH" >&2
  exit 2
fi
[ -x "$NIMBUS" ] || { echo "$NIMBUS is not an executable file" >&2; exit 2; }
echo "nimbus: $NIMBUS ($how), $("$NIMBUS" --version 2>/dev/null || echo "version unknown")"
echo "user: $(id -un 2>/dev/null || id -u) (uid $(id -u))"

# --- what the machine looks like before ------------------------------------------------------
# Everything of this run lives in WORK: nimbus's TMPDIR (so its --ephemeral data directory
# is in here), its log, the tests' scratch files. Removed at exit.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nimbus-ci.XXXXXX")
echo "temporary directory: $WORK"
mkdir "$WORK/tmp" "$WORK/scratch"
NIMBUS_PID=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$NIMBUS_PID" ] && kill -0 "$NIMBUS_PID" 2>/dev/null; then
    kill -TERM "$NIMBUS_PID"; wait "$NIMBUS_PID"
  fi
  rm -rf "$WORK"
  if [ "$rc" != 0 ] && [ "$FAILED" = 0 ]; then printf '  FAIL  ci.sh stopped early (exit %s)\n' "$rc"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

links()  { awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/net/dev | sort; }   # this network namespace's devices
mounts() { awk '{ for (i = 7; $i != "-"; i++); print $5, $(i + 1), $(i + 2) }' /proc/self/mountinfo | sort; }
tables() { if [ "$(id -u)" = 0 ] && command -v nft >/dev/null 2>&1; then nft list tables 2>/dev/null | sort; fi; }
# Where programs leave state behind: anything named *nimbus* made since the start, by this
# user, outside WORK.
state_dirs=(/tmp /var/tmp /dev/shm /run "${HOME:-/nonexistent}" "${HOME:-/nonexistent}/.local/share" "${HOME:-/nonexistent}/.cache" "${HOME:-/nonexistent}/.config")
new_files() {
  local d
  for d in "${state_dirs[@]}"; do
    [ -d "$d" ] || continue
    find "$d" -maxdepth 2 -path "$WORK" -prune -o -newer "$WORK/started" -user "$(id -u)" -name '*nimbus*' -print 2>/dev/null
  done | sort -u
}
cgroup_parents() { local d; for d in /sys/fs/cgroup/nimbus /sys/fs/cgroup/*/nimbus; do [ -d "$d" ] && echo "$d"; done; return 0; }
links > "$WORK/links.before"
mounts > "$WORK/mounts.before"
tables > "$WORK/tables.before"
cgroup_parents > "$WORK/cgroups.before"

# --- 2. start ---------------------------------------------------------------------------------
step "2. start nimbus serve --ephemeral on a free port"
touch "$WORK/started"
t0=$(now_us)
# --port 0: the system picks a free port and nimbus names it in its Ready. line.
TMPDIR=$WORK/tmp "$NIMBUS" serve --ephemeral --port 0 >"$WORK/nimbus.out" 2>"$WORK/nimbus.err" &
NIMBUS_PID=$!
ready=""
while :; do
  if grep -q 'Ready\.' "$WORK/nimbus.out" 2>/dev/null; then ready=$(now_us); break; fi
  if ! kill -0 "$NIMBUS_PID" 2>/dev/null; then break; fi
  if [ $(( $(now_us) - t0 )) -gt 10000000 ]; then break; fi
  sleep 0.005
done
if [ -z "$ready" ]; then
  bad "nimbus did not print Ready. within 10 s"; cat "$WORK/nimbus.out" "$WORK/nimbus.err" >&2; exit 1
fi
READY_MS=$(( (ready - t0) / 1000 ))
line=$(grep 'Ready\.' "$WORK/nimbus.out")
say "$line"
ENDPOINT=$(sed -n 's|.* listening on \(http://[^ ]*\) .*|\1|p' <<<"$line")
DATA_DIR=$(sed -n 's|.*, data in \(.*\) (ephemeral)\. Ready\.$|\1|p' <<<"$line")
if [ "$READY_MS" -lt 1000 ]; then ok "start to ready: $READY_MS ms"; else bad "start to ready: $READY_MS ms (1 s or more)"; fi
case $DATA_DIR in
  "$WORK"/tmp/*) ok "data directory in the temporary directory: $DATA_DIR" ;;
  *) bad "data directory ${DATA_DIR:-unknown} is not under $WORK/tmp" ;;
esac
HEALTH=$(curl -sS --noproxy '*' -m 5 "$ENDPOINT/_nimbus/health")
DRIVER=$(sed -n 's/.*"instance_driver" *: *"\([a-z]*\)".*/\1/p' <<<"$HEALTH")
say "endpoint $ENDPOINT, EC2 instance driver: ${DRIVER:-unknown}"

# --- 3. the test suite ------------------------------------------------------------------------
step "3. the test suite (tests/*.sh) against it"
# What a test suite needs to reach nimbus instead of AWS: an endpoint and any keys.
export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
RUN="ci-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
export RUN SCRATCH=$WORK/scratch
for test in "$HERE"/tests/*.sh; do
  name=tests/$(basename "$test")
  t=$(now_us)
  if out=$(bash "$test" 2>&1); then
    ok "$name ($(( ($(now_us) - t) / 1000 )) ms)"
  else
    bad "$name"
  fi
  [ -z "$out" ] || while IFS= read -r l; do say "$l"; done <<<"$out"
done
INSTANCE=$(cat "$WORK/scratch/instance" 2>/dev/null || true)

# --- 4. stop ----------------------------------------------------------------------------------
step "4. stop nimbus (SIGTERM, as a CI system ends a job)"
# What runs of it now: anything that names nimbus's TMPDIR (instance inits run `nimbus
# __instance-init DIR`) or the daemon the EC2 test's instance started.
ours() {
  local p cmd
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case $cmd in *"$WORK/tmp"*|*"daemon-$RUN"*) printf '%s(%s) ' "${p#/proc/}" "${cmd% }" ;; esac
  done
}
running=$(ours)
if grep -q "daemon-$RUN" <<<"$running"; then
  ok "before the stop: nimbus (pid $NIMBUS_PID) runs, and $(grep -o '[0-9]*(' <<<"$running" | wc -l) processes of its instance, its daemon among them"
else
  bad "the EC2 test's instance daemon (daemon-$RUN) is not running before the stop: $running"
fi
t=$(now_us)
kill -TERM "$NIMBUS_PID"
rc=0; wait "$NIMBUS_PID" || rc=$?
pid=$NIMBUS_PID; NIMBUS_PID=""
if [ "$rc" = 0 ]; then ok "nimbus stopped in $(( ($(now_us) - t) / 1000 )) ms, exit status 0"
else bad "nimbus exited with status $rc"; tail -n 20 "$WORK/nimbus.err" >&2; fi

# --- 5. nothing left --------------------------------------------------------------------------
step "5. nothing left behind"
# Processes: nimbus itself, and everything of its instance counted above. A stopped
# instance may take a moment to be reaped.
left=""
for _ in $(seq 50); do
  left=$(ours)
  [ -d "/proc/$pid" ] && left="$pid(nimbus) $left"
  [ -z "$left" ] && break
  sleep 0.1
done
if [ -z "$left" ]; then ok "no process: nimbus and every instance process ended"; else bad "processes left: $left"; fi

# Files: nimbus's data directory (the store, buckets, queues, instance disks) and the
# rest of its TMPDIR are gone; nothing named after it appeared anywhere else.
if [ -n "$DATA_DIR" ] && [ ! -e "$DATA_DIR" ] && [ -z "$(find "$WORK/tmp" -mindepth 1 -maxdepth 1)" ]; then
  ok "no file: the data directory $DATA_DIR is gone, nimbus's TMPDIR is empty"
else
  bad "files left in nimbus's TMPDIR: $(find "$WORK/tmp" -mindepth 1 -maxdepth 1 | tr '\n' ' ')"
fi
files=$(new_files)
if [ -z "$files" ]; then ok "no file outside the temporary directory (new *nimbus* entries in ${state_dirs[*]}: none)"
else bad "files left outside the temporary directory: $(tr '\n' ' ' <<<"$files")"; fi

# Network devices: the same list as before the start (as root: no nimbus0 bridge, no veth).
links > "$WORK/links.after"
if cmp -s "$WORK/links.before" "$WORK/links.after"; then
  ok "no network device: the same $(wc -l <"$WORK/links.after") as before ($(tr '\n' ' ' <"$WORK/links.after" | sed 's/ $//'))"
else
  bad "network devices changed: $(comm -13 "$WORK/links.before" "$WORK/links.after" | tr '\n' ' ')"
fi
tables > "$WORK/tables.after"
if cmp -s "$WORK/tables.before" "$WORK/tables.after"; then ok "no nftables table added"
else bad "nftables tables added: $(comm -13 "$WORK/tables.before" "$WORK/tables.after" | tr '\n' ' ')"; fi

# Mounts: the same as before, and none under WORK (instance roots are overlays mounted
# inside the instance's own mount namespace).
mounts > "$WORK/mounts.after"
if cmp -s "$WORK/mounts.before" "$WORK/mounts.after" && ! grep -qF "$WORK" /proc/self/mountinfo; then
  ok "no mount: the same $(wc -l <"$WORK/mounts.after") mounts as before"
else
  bad "mounts changed: added: $(comm -13 "$WORK/mounts.before" "$WORK/mounts.after" | tr '\n' ';') removed: $(comm -23 "$WORK/mounts.before" "$WORK/mounts.after" | tr '\n' ';') under $WORK: $(grep -cF "$WORK" /proc/self/mountinfo)"
fi

# cgroups (namespace driver): the instance's group is gone, and so is the shared nimbus
# parent unless another nimbus on this machine still has instances in it.
if [ "$DRIVER" = namespace ] && ! grep -Eq ' - cgroup2? ' /proc/self/mountinfo; then
  say "no cgroup hierarchy is mounted here: instances ran without limits, and no cgroup was made"
elif [ "$DRIVER" = namespace ]; then
  leftover=""; shared=""
  for d in $(cgroup_parents); do
    others=$(find "$d" -mindepth 1 -maxdepth 1 -type d | wc -l)
    if [ -n "$INSTANCE" ] && [ -e "$d/$INSTANCE" ]; then leftover="$leftover $d/$INSTANCE"
    elif [ "$others" -gt 0 ]; then shared="$shared $d ($others groups)"
    elif ! grep -qxF "$d" "$WORK/cgroups.before"; then leftover="$leftover $d"
    fi
  done
  if [ -n "$leftover" ]; then bad "cgroups left:$leftover"
  elif [ -z "$shared" ]; then ok "no cgroup: ${INSTANCE:-the instance}'s group and the nimbus parent groups are gone"
  else
    ok "no cgroup: ${INSTANCE:-the instance}'s group is gone"
    say "the nimbus parent groups stay, other nimbus on this machine have groups in them:$shared"
  fi
fi

echo
if [ "$FAILED" = 0 ]; then echo "all passed: start to ready $READY_MS ms, nothing left behind"; else echo "$FAILED failed"; fi
[ "$FAILED" = 0 ]

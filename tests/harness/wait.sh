# Waiting on a condition in the shell tests, as TH_WAIT_UNTIL (harness.h)
# does in C: source this file, then
#   wait_until SECONDS WHAT COMMAND [ARG...]
# runs COMMAND until it succeeds; once SECONDS have passed it says
# "waited SECONDS s for WHAT" on stderr and returns 1.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local end=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS >= end)); then
      echo "waited $seconds s for $what" >&2
      return 1
    fi
    sleep 0.02 # the harness's poll interval
  done
}

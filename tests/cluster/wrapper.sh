# Sourced by the lab wrappers (with-swarm.sh, with-k8s.sh): what both need
# to time their phases and to end the command they run.

# Seconds since $1 (an $EPOCHREALTIME), one decimal.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Ends the wrapped command's process group ($child): SIGTERM, then SIGKILL
# after 10 s.
stop_child() {
  [ -n "$child" ] && kill -0 "$child" 2>/dev/null || return 0
  kill -TERM -- "-$child" 2>/dev/null
  local end=$((SECONDS + 10))
  while kill -0 "$child" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
  kill -KILL -- "-$child" 2>/dev/null || true
}

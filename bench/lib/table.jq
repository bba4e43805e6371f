# bench/run's table: results.json -> tab-separated lines for `column -t`.

def n0: if . == null then "-" else (round | tostring) end;
def n2: if . == null then "-" else ((. * 100 | round) / 100 | tostring) end;
def lat: "\(.rps | n0)/s p50 \(.p50_ms | n2) p99 \(.p99_ms | n2) ms";
def cpu: "\(.server_cpu_us_per_request | n0) us CPU/call + children \(.children_cpu_us_per_request | n0)";
def verdict: to_entries | map("\(.key)=\(if .value then "pass" else "MISS" end)") | join(" ");

["SECTION", "SETUP", "SESSIONGATE", "RMCP", "FLOOR", "X_RMCP", "X_FLOOR", "X_BASE", "OTHER_CPU", "ACCEPTANCE"],
(.sections as $s
 | (["echo", "stateless"][] as $sec | $s[$sec] // empty
    | to_entries[] | select(.key | startswith("t")) | .value
    | [$sec, "wrk -t\(.threads) -c\(.connections)",
       (.targets.sessiongate | lat), (.targets.rmcp | lat), (.targets.floor | lat),
       (.ratio_vs_rmcp | n2), (.ratio_vs_floor | n2), (.ratio_vs_baseline | n2),
       ([.targets[].other_cores_max] | max | n2),
       (.acceptance | verdict)]),
   ($s.create // empty | to_entries[] | select(.key | startswith("t")) | .value
    | ["create", "wrk -t\(.threads) -c\(.connections) initialize",
       "\(.sessions_per_s | n0) sessions/s p50 \(.p50_ms | n2) p99 \(.p99_ms | n2) ms (health count \(if .verified_by_health_count then "agrees" else "DISAGREES" end))",
       "-", "-", "-", "-", "-", (.other_cores_max | n2), (.acceptance | verdict)]),
   ($s.memory // empty
    | ["memory", "\(.sessions) sessions",
       "VmRSS \(.rss_mb | n2) MB (start \(.rss_at_start_mb | n2), peak \(.peak_rss_mb | n2), \(.bytes_per_session) B/session; after restart \(.rss_after_restart_mb | n2))",
       "-", "-", "-", "-", "-", "-", (.acceptance | verdict)]),
   ($s.health // {} | to_entries[] | select(.value | type == "object" and has("p50_ms"))
    | .key as $backend | .value
    | ["health", "\($backend), \(.rows) rows, wrk -t2 -c4",
       "p50 \(.p50_ms | n2) p99 \(.p99_ms | n2) ms, \(.rps | n0)/s (startup \(.startup_s) s)",
       "-", "-", "-", "-", "-", (.other_cores_max | n2), (.acceptance | verdict)]),
   ($s.streams // {} | to_entries[] | select(.value | type == "object" and has("reconnect_p50_ms"))
    | .key as $backend | .value
    | ["streams", "\($backend), sequential over HTTP",
       "reconnect p50 \(.reconnect_p50_ms | n2) ms; replay \(.replay_events) events p50 \(.replay_p50_ms | n2) ms",
       "-", "-", "-", "-", "-", "-", (.acceptance | verdict)]),
   ($s.eventlog // {} | to_entries[] | select(.key | startswith("t")) | .value
    | ["eventlog", "wrk -t\(.threads) -c\(.connections), SSE answers ready at once",
       "log on \(.targets.log_on | lat); off \(.targets.log_off | lat)",
       "-", "-", "-", "on/off \(.ratio_on_vs_off | n2)", "-", ([.targets[].other_cores_max] | max | n2),
       (.acceptance | verdict)]),
   ($s.eventlog_streamed // {} | to_entries[] | select(.key | startswith("t")) | .value
    | ["eventlog", "wrk -t\(.threads) -c\(.connections), SSE answers streamed",
       "log on \(.targets.log_on | lat); off \(.targets.log_off | lat)",
       "-", "-", "-", "on/off \(.ratio_on_vs_off | n2)", "-", ([.targets[].other_cores_max] | max | n2),
       (.acceptance | verdict)]),
   ($s.live // empty
    | .subscribers as $n
    | ["live", "\($n) WS subscribers, 1000 events/s, wrk echo",
       "delivery p50 \(.quiet.delivery_p50_ms | n2) p99 \(.quiet.delivery_p99_ms | n2) ms (\(.targets["subscribers_\($n)"].delivery_p99_ms | n2) under wrk); echo with \(.targets["subscribers_\($n)"] | lat), without \(.targets.subscribers_0 | lat)",
       "-", "-", "-", "with/without \(.ratio_with_vs_without | n2)", "-", ([.targets[].other_cores_max] | max | n2),
       (.acceptance | verdict)]),
   ($s.mrtr // {} | to_entries[] | select(.key | startswith("t")) | .value
    | ["mrtr", "wrk -t\(.threads) -c\(.connections), stateless",
       "round trip \(.targets.mrtr.server_cpu_us_per_request | n2) us CPU, \(.targets.mrtr.rps | n0) trips/s; plain call \(.targets.plain.server_cpu_us_per_request | n2) us CPU, \(.targets.plain.rps | n0)/s",
       "-", "-", "-", "trip/call CPU \(.cpu_ratio_trip_vs_call | n2)", "-", ([.targets[].other_cores_max] | max | n2),
       (.acceptance | verdict)]),
   ($s.tasks // {} | to_entries[] | select(.value | type == "object" and has("tasks_per_s"))
    | .key as $backend | .value
    | ["tasks", "\($backend), \(.clients) clients: create, poll, result",
       "\(.tasks_per_s | n0) tasks/s p50 \(.p50_ms | n2) p99 \(.p99_ms | n2) ms, \(.polls_per_task | n2) polls/task (store \(if .verified_in_store then "agrees" else "DISAGREES" end))",
       "-", "-", "-", "-", "-", (.other_cores_max | n2), (.acceptance | verdict)]),
   ($s.gateway_stdio // empty
    | ["gateway", "stdio echo, wrk -t\(.threads) -c\(.connections)",
       "per session \(.targets.sessiongate | lat) (\(.targets.sessiongate | cpu)); shared \(.targets.sessiongate_shared // {} | lat) (\(.targets.sessiongate_shared // {} | cpu)); supergateway \(.targets.supergateway | lat) (\(.targets.supergateway | cpu)); mcp-proxy \(.targets.mcp_proxy | lat) (\(.targets.mcp_proxy | cpu)); self \(.targets.self | lat) (\(.targets.self | cpu))",
       "-", "-", "x supergateway \(.ratio_vs_supergateway | n2), x mcp-proxy \(.ratio_vs_mcp_proxy | n2); shared: x \(.shared.ratio_vs_supergateway | n2), x \(.shared.ratio_vs_mcp_proxy | n2)", "-",
       "x self \(.ratio_vs_self | n2); shared x \(.shared.ratio_vs_self | n2)", ([.targets[].other_cores_max] | max | n2), (.acceptance | verdict)]),
   ($s.gateway_http // empty
    | ["gateway", "HTTP upstream, wrk -t\(.threads) -c\(.connections)",
       "\(.targets.sessiongate | lat) (\(.targets.sessiongate | cpu)); direct \(.targets.direct | lat) (\(.targets.direct | cpu))",
       "-", "-", "x direct \(.ratio_vs_direct | n2)", "-", "p50 added at saturation \(.p50_added_at_saturation_ms | n2) ms",
       ([.targets[].other_cores_max] | max | n2), (.acceptance | verdict)]),
   ($s.gateway_http_serial // empty
    | ["gateway", "HTTP upstream, wrk -t\(.threads) -c\(.connections)",
       "\(.targets.sessiongate | lat); direct \(.targets.direct | lat)",
       "-", "-", "-", "-", "p50 added \(.p50_added_ms | n2) ms",
       ([.targets[].other_cores_max] | max | n2), (.acceptance | verdict)]),
   ($s.gateway_heal // empty
    | ["gateway", "\(.kills) kills of the child",
       "kill to success p50 \(.kill_to_success_p50_ms | n2) p99 \(.kill_to_success_p99_ms | n2) max \(.kill_to_success_max_ms | n2) ms; \(.failed_after_kill) of \(.calls_after_kill) calls after a kill failed",
       "-", "-", "-", "-", "-", "-", (.acceptance | verdict)]),
   ($s.gateway_memory // empty
    | ["gateway", "\(.sessions) sessions, \(.children) children",
       "gateway VmRSS \(.rss_mb | n2) MB (start \(.rss_at_start_mb | n2))",
       "-", "-", "-", "-", "-", "-", (.acceptance | verdict)]))
| @tsv

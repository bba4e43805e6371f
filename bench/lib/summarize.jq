# bench/run's summary: reads the runs (one object each, slurped), writes
# results.json. This invocation's sections replace those of $previous.
# Acceptance figures are those of issue 2 ("Figures").

def median:
  map(select(. != null)) | sort
  | if length == 0 then null
    elif length % 2 == 1 then .[(length - 1) / 2]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
def ratio($a; $b): if $a == null or $b == null or $b == 0 then null else $a / $b end;
def round3: if . == null then null else (. * 1000 | round) / 1000 end;
def errors: .errors_status + .errors_connect + .errors_read + .errors_write + .errors_timeout;
def load_figures:
  { server_cores: (map(.server_cores) | median | round3),
    children_cores: (map(.children_cores // 0) | median | round3),
    wrk_cores: (map(.wrk_cores) | median | round3),
    other_cores: (map(.other_cores) | median | round3),
    other_cores_max: (map(.other_cores) | max | round3) };

def latency_figures:
  { rps: (map(.rps) | median | round),
    p50_ms: (map(.p50_us / 1000) | median | round3),
    p99_ms: (map(.p99_us / 1000) | median | round3),
    errors: (map(errors) | add),
    server_cpu_us_per_request: (map(.server_cores * 1e6 / .rps) | median | round3),
    children_cpu_us_per_request: (map((.children_cores // 0) * 1e6 / .rps) | median | round3),
    repeats: length } + load_figures;

# echo and stateless: per wrk thread count, each target's medians and the
# median of the per-repeat ratios.
def compare_section:
  group_by(.threads) | map(
    (.[0].threads) as $threads
    | (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
    | (group_by(.rep) | map((map({(.target): .rps}) | add) as $m
        | {rmcp: ratio($m.sessiongate; $m.rmcp), floor: ratio($m.sessiongate; $m.floor),
           baseline: ratio($m.sessiongate; $m.baseline)})) as $per_rep
    | {("t\($threads)"): (
        {threads: $threads, connections: 64, targets: $targets,
         ratio_vs_rmcp: ($per_rep | map(.rmcp) | median | round3),
         ratio_vs_floor: ($per_rep | map(.floor) | median | round3),
         ratio_vs_baseline: ($per_rep | map(.baseline) | median | round3),
         ratios_per_repeat: $per_rep | map(map_values(round3))}
        | .acceptance = {
            ratio_vs_rmcp_ge_2: (.ratio_vs_rmcp != null and .ratio_vs_rmcp >= 2),
            ratio_vs_floor_ge_0_6: (.ratio_vs_floor != null and .ratio_vs_floor >= 0.6),
            p99_le_5ms: (.targets.sessiongate.p99_ms != null and .targets.sessiongate.p99_ms <= 5)}
          + if .ratio_vs_baseline == null then {}
            else {cost_vs_baseline_le_3pct: (.ratio_vs_baseline >= 0.97)} end)})
  | add;

def create_section:
  group_by(.threads) | map(
    (.[0].threads) as $threads
    | {("t\($threads)"): (
        {threads: $threads, connections: 64,
         sessions_per_s: (map(.rps) | median | round),
         p50_ms: (map(.p50_us / 1000) | median | round3),
         p99_ms: (map(.p99_us / 1000) | median | round3),
         errors: (map(errors) | add),
         created_per_health_count: map(.created),
         verified_by_health_count: all(.verified),
         server_cpu_us_per_session: (map(.server_cores * 1e6 / .rps) | median | round3),
         repeats: length} + load_figures
        | .acceptance = {sessions_per_s_ge_5000: (.sessions_per_s >= 5000)})})
  | add;

def mb: . * 1024 / 1e6 | round3;
def memory_section:
  {sessions: (map(.sessions) | min),
   rss_mb: (map(.rss_kb | mb) | median),
   rss_at_start_mb: (map(.rss_start_kb | mb) | median),
   peak_rss_mb: (map(.hwm_kb | mb) | median),
   bytes_per_session: (map((.rss_kb - .rss_start_kb) * 1024 / .sessions) | median | round),
   rss_after_restart_mb: (map(.rss_restart_kb | mb) | median),
   restored_after_restart: (map(.restored) | min),
   seconds_to_create: (map(.create_s) | median | round3),
   repeats: length}
  | .acceptance = {rss_le_200mb: (.rss_mb <= 200)};

def health_section:
  group_by(.target) | map(
    {(.[0].target): (
      {rows: (map(.rows) | min), seed_s: .[0].seed_s, startup_s: .[0].startup_s}
      + latency_figures
      | .acceptance = {p50_le_20ms: (.p50_ms <= 20)})})
  | add;

def streams_section:
  group_by(.target) | map(
    {(.[0].target): (
      {reconnect_p50_ms: (map(.reconnect_p50_ms) | median | round3),
       reconnect_p99_ms: (map(.reconnect_p99_ms) | median | round3),
       replay_events: .[0].replay_events,
       replay_p50_ms: (map(.replay_p50_ms) | median | round3),
       replay_p99_ms: (map(.replay_p99_ms) | median | round3),
       repeats: length}
      | .acceptance = {reconnect_p50_le_2ms: (.reconnect_p50_ms <= 2),
                       replay_1000_p50_le_50ms: (.replay_p50_ms <= 50)})})
  | add;

def eventlog_section:
  group_by(.threads) | map(
    (.[0].threads) as $threads
    | (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
    | (group_by(.rep) | map((map({(.target): .rps}) | add) | ratio(.log_on; .log_off))) as $per_rep
    | {("t\($threads)"): (
        {threads: $threads, connections: 64, targets: $targets,
         ratio_on_vs_off: ($per_rep | median | round3),
         ratios_per_repeat: $per_rep | map(round3)}
        | .acceptance = {throughput_cost_le_10_percent: (.ratio_on_vs_off != null and .ratio_on_vs_off >= 0.9)})})
  | add;

# mrtr: per repeat, the server's CPU per round trip over its CPU per plain call.
def mrtr_section:
  group_by(.threads) | map(
    (.[0].threads) as $threads
    | (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
    | (group_by(.rep) | map((map({(.target): (.server_cores / .rps)}) | add)
        | ratio(.mrtr; .plain))) as $per_rep
    | {("t\($threads)"): (
        {threads: $threads, connections: 64, targets: $targets,
         cpu_ratio_trip_vs_call: ($per_rep | median | round3),
         ratios_per_repeat: $per_rep | map(round3)}
        | .acceptance = {trip_cpu_le_2_5_calls: (.cpu_ratio_trip_vs_call != null and .cpu_ratio_trip_vs_call <= 2.5)})})
  | add;

# live: per repeat, the throughput with subscribers over that without.
def live_section:
  (map(select(.subscribers > 0)) | .[0].subscribers) as $n
  | (map(select(.target == "quiet")) | {
      delivery_p50_ms: (map(.live.latency_ms.p50) | median | round3),
      delivery_p99_ms: (map(.live.latency_ms.p99) | median | round3),
      delivery_max_ms: (map(.live.latency_ms.max) | max | round3),
      events_per_s: (map(.live.events_per_s) | median | round),
      request_errors: (map(.live.request_errors) | add),
      repeats: length}) as $quiet
  | map(select(.target != "quiet"))
  | (group_by(.target) | map({(.[0].target): (latency_figures + {
        events_per_s: (map(.live.events_per_s) | median | round),
        delivery_p50_ms: (map(.live.latency_ms.p50) | median | round3),
        delivery_p99_ms: (map(.live.latency_ms.p99) | median | round3),
        delivery_max_ms: (map(.live.latency_ms.max) | max | round3),
        request_errors: (map(.live.request_errors) | add)})}) | add) as $targets
  | (group_by(.rep) | map((map({(.subscribers | tostring): .rps}) | add) as $m
      | ratio($m[$n | tostring]; $m["0"]))) as $per_rep
  | {subscribers: $n, quiet: $quiet, targets: $targets,
     ratio_with_vs_without: ($per_rep | median | round3),
     ratios_per_repeat: $per_rep | map(round3)}
  | .acceptance = {
      delivery_p99_le_50ms: ($quiet.delivery_p99_ms <= 50),
      throughput_drop_le_10_percent: (.ratio_with_vs_without != null and .ratio_with_vs_without >= 0.9)};

# tasks: per backend, bench-tasks' medians; acceptance (issue: >= 5000 tasks/s on
# SQLite) read on SQLite, every run verified against the store on both.
def tasks_section:
  group_by(.target) | map(
    (.[0].target) as $backend
    | {($backend): (
        {clients: .[0].clients,
         tasks_per_s: (map(.tasks_per_s) | median | round),
         requests_per_s: (map(.requests_per_s) | median | round),
         polls_per_task: (map(.polls_per_task) | median | round3),
         p50_ms: (map(.latency_ms.p50) | median | round3),
         p99_ms: (map(.latency_ms.p99) | median | round3),
         completed: (map(.completed) | add),
         failed: (map(.failed) | add),
         errors: (map(.errors) | add),
         verified_in_store: all(.verified),
         server_cpu_us_per_task: (map(.server_cores * 1e6 / .tasks_per_s) | median | round3),
         repeats: length}
        + {server_cores: (map(.server_cores) | median | round3),
           client_cores: (map(.client_cores) | median | round3),
           other_cores: (map(.other_cores) | median | round3),
           other_cores_max: (map(.other_cores) | max | round3)}
        | .acceptance = ({verified_in_store: .verified_in_store}
            + if $backend == "sqlite" then {tasks_per_s_ge_5000: (.tasks_per_s >= 5000)} else {} end))})
  | add;

# gateway (issue 17): the stdio echo server through sessiongate (a child per session,
# and shared) vs the peers and vs sessiongate serving echo itself; an HTTP upstream
# through sessiongate vs directly, at saturation and one call at a time; healing
# after kills; the gateway's RSS with a child per session.
def per_rep_ratios($of; $names):
  group_by(.rep) | map((map({(.target): .rps}) | add) as $m
    | reduce $names[] as $n ({}; .[$n] = ratio($m[$of]; $m[$n])));
def gateway_stdio_section:
  (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
  | per_rep_ratios("sessiongate"; ["supergateway", "mcp_proxy", "self"]) as $per_rep
  | per_rep_ratios("sessiongate_shared"; ["supergateway", "mcp_proxy", "self"]) as $shared
  | {threads: .[0].threads, connections: .[0].threads, targets: $targets,
     ratio_vs_supergateway: ($per_rep | map(.supergateway) | median | round3),
     ratio_vs_mcp_proxy: ($per_rep | map(.mcp_proxy) | median | round3),
     ratio_vs_self: ($per_rep | map(.self) | median | round3),
     ratios_per_repeat: $per_rep | map(map_values(round3)),
     shared: {ratio_vs_supergateway: ($shared | map(.supergateway) | median | round3),
              ratio_vs_mcp_proxy: ($shared | map(.mcp_proxy) | median | round3),
              ratio_vs_self: ($shared | map(.self) | median | round3),
              ratios_per_repeat: $shared | map(map_values(round3))}}
  | .acceptance = {
      ratio_vs_supergateway_ge_10: (.ratio_vs_supergateway != null and .ratio_vs_supergateway >= 10),
      ratio_vs_mcp_proxy_ge_20: (.ratio_vs_mcp_proxy != null and .ratio_vs_mcp_proxy >= 20),
      ratio_vs_self_ge_0_4: (.ratio_vs_self != null and .ratio_vs_self >= 0.4)};
# p50 added: the median of the per-repeat differences, through minus direct.
def p50_added:
  group_by(.rep) | map((map({(.target): .p50_us}) | add) as $m
    | if $m.sessiongate == null or $m.direct == null then null
      else ($m.sessiongate - $m.direct) / 1000 end) | median | round3;
def gateway_http_section:
  (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
  | per_rep_ratios("sessiongate"; ["direct"]) as $per_rep
  | {threads: .[0].threads, connections: .[0].threads, targets: $targets,
     ratio_vs_direct: ($per_rep | map(.direct) | median | round3),
     p50_added_at_saturation_ms: p50_added,
     ratios_per_repeat: $per_rep | map(map_values(round3))}
  | .acceptance = {
      ratio_vs_direct_ge_0_5: (.ratio_vs_direct != null and .ratio_vs_direct >= 0.5)};
def gateway_http_serial_section:
  (group_by(.target) | map({(.[0].target): latency_figures}) | add) as $targets
  | {threads: .[0].threads, connections: .[0].threads, targets: $targets,
     p50_added_ms: p50_added}
  | .acceptance = {
      p50_added_le_0_5ms: (.p50_added_ms != null and .p50_added_ms <= 0.5)};
def percentile($p): sort | if length == 0 then null else .[((length - 1) * $p | ceil)] end;
def gateway_heal_section:
  (map(.kill_to_success_us) | add) as $us
  | {kills: (map(.kills) | add), calls_after_kill: (map(.calls_after_kill) | add),
     failed_after_kill: (map(.failed_after_kill) | add),
     kill_to_success_p50_ms: ($us | percentile(0.5) / 1000 | round3),
     kill_to_success_p99_ms: ($us | percentile(0.99) / 1000 | round3),
     kill_to_success_max_ms: ($us | max / 1000 | round3)}
  | .acceptance = {p99_le_1s: (.kill_to_success_p99_ms <= 1000), no_failed_call_after_kill: (.failed_after_kill == 0)};
def gateway_memory_section:
  {sessions: (map(.sessions) | min), children: (map(.children) | min),
   rss_mb: (map(.rss_kb | mb) | median), rss_at_start_mb: (map(.rss_start_kb | mb) | median)}
  | .acceptance = {rss_le_100mb: (.rss_mb <= 100)};

. as $runs
| def runs_of($s): [$runs[] | select(.section == $s)];
{}
| if (runs_of("echo") | length) > 0 then .echo = (runs_of("echo") | compare_section) else . end
| if (runs_of("stateless") | length) > 0 then .stateless = (runs_of("stateless") | compare_section) else . end
| if (runs_of("create") | length) > 0 then .create = (runs_of("create") | create_section) else . end
| if (runs_of("memory") | length) > 0 then .memory = (runs_of("memory") | memory_section) else . end
| if (runs_of("health") | length) > 0 then .health = (runs_of("health") | health_section) else . end
| if (runs_of("streams") | length) > 0 then .streams = (runs_of("streams") | streams_section) else . end
| if (runs_of("eventlog") | length) > 0 then .eventlog = (runs_of("eventlog") | eventlog_section) else . end
| if (runs_of("eventlog_streamed") | length) > 0 then .eventlog_streamed = (runs_of("eventlog_streamed") | eventlog_section) else . end
| if (runs_of("live") | length) > 0 then .live = (runs_of("live") | live_section) else . end
| if (runs_of("mrtr") | length) > 0 then .mrtr = (runs_of("mrtr") | mrtr_section) else . end
| if (runs_of("tasks") | length) > 0 then .tasks = (runs_of("tasks") | tasks_section) else . end
| if (runs_of("gateway_stdio") | length) > 0 then .gateway_stdio = (runs_of("gateway_stdio") | gateway_stdio_section) else . end
| if (runs_of("gateway_http") | length) > 0 then .gateway_http = (runs_of("gateway_http") | gateway_http_section) else . end
| if (runs_of("gateway_http_serial") | length) > 0 then .gateway_http_serial = (runs_of("gateway_http_serial") | gateway_http_serial_section) else . end
| if (runs_of("gateway_heal") | length) > 0 then .gateway_heal = (runs_of("gateway_heal") | gateway_heal_section) else . end
| if (runs_of("gateway_memory") | length) > 0 then .gateway_memory = (runs_of("gateway_memory") | gateway_memory_section) else . end
| map_values(. + {date: $date, machine: {nproc: $nproc, cpu: $cpu, kernel: $kernel},
                  settings: {repeats: $repeats, duration: $duration, wrk_threads: $threads}})
| . as $new
| ($runs | map(.section) | unique) as $ran
| {
    updated: $date,
    acceptance_source: "issue 2, Figures: echo and stateless >= 2x rmcp, >= 0.6x floor, p99 <= 5 ms (wrk -t64 -c64); create >= 5000 sessions/s; 100k sessions <= 200 MB RSS; health p50 <= 20 ms with 1M rows on SQLite and PostgreSQL. issue 3: reconnect p50 <= 2 ms; replay of 1000 events p50 <= 50 ms (SQLite and PostgreSQL); event log costs <= 10% of tools/call throughput over SSE. issue 4: with 500 WebSocket subscribers and 1000 session events/s, delivery p99 <= 50 ms and tools/call throughput drops <= 10%. MRTR: a round trip (first call + retry) costs <= 2.5x a plain stateless tools/call in server CPU. issue 17 (gateway): tools/call to the stdio echo server, 32 sessions, >= 10x supergateway 4.0, >= 20x mcp-proxy 0.13, >= 0.4x sessiongate serving echo itself; through sessiongate to a Streamable HTTP upstream >= 0.5x direct (wrk -t32 -c32) with <= 0.5 ms p50 added (one call at a time); over 100 child kills p99 kill-to-success <= 1 s and no failed call after a kill; 200 sessions with a child each <= 100 MB gateway RSS",
    sections: (($previous.sections // {}) + $new),
    runs: ((($previous.runs // []) | map(select(.section as $s | $ran | index($s) | not))) + $runs)
  }

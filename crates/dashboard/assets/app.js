// sessiongate dashboard: plain JavaScript, no build step, no dependencies.
//
// Everything shown comes from the management API (/api/mcp/...) with the
// admin token the operator types in, kept in sessionStorage (this tab only).
// Live mode: the WebSocket /api/mcp/ws/sessions (token offered as the
// subprotocol "bearer.<token>" next to "sessiongate.v1"); its events patch
// table rows in place, batched per animation frame. When the socket fails,
// the page polls (10 s while visible, 30 s while hidden) and retries the
// socket with backoff. Tasks (GET /api/mcp/tasks) are patched the same way
// by task_created and task_status_changed, and refetched on every snapshot
// and poll. The gateway's upstreams (GET /api/mcp/upstreams) come with every
// snapshot, each row replaced by the report an upstream_up, upstream_down or
// upstream_restarted event carries, and are refetched on every poll; the
// panel is hidden while there are none. The badge in the top bar says which: live, polling or
// offline (the API is unreachable).
'use strict';

(() => {
  // ------------------------------------------------------------ constants
  const TOKEN_KEY = 'sessiongate.adminToken';
  const THEME_KEY = 'sessiongate.theme';
  const LIMIT_KEY = 'sessiongate.pageSize';
  const WS_PATH = '/api/mcp/ws/sessions';
  const WS_PROTOCOL = 'sessiongate.v1';
  const POLL_VISIBLE_MS = 10_000;
  const POLL_HIDDEN_MS = 30_000;
  const WS_RETRY_MAX_MS = 30_000;
  const EVENT_MEMORY_MS = 15_000;
  const KNOWN_CLIENTS = ['Claude Code', 'Cursor', 'Windsurf', 'Cline', 'Kiro', 'Augment', 'Gemini', 'unknown'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const LOADING = 'Loading…';
  const TASK_STATUSES = ['working', 'input_required', 'completed', 'failed', 'cancelled'];
  const TASK_PAGE = 50;

  // ------------------------------------------------------------ DOM helpers
  const byId = (id) => document.getElementById(id);
  const tid = (name, root = document) => root.querySelector(`[data-testid="${name}"]`);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else node.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') node.textContent = v;
        else node.setAttribute(k, String(v));
      }
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function setText(node, text) {
    const t = text === null || text === undefined ? '' : String(text);
    if (node.textContent !== t) node.textContent = t;
  }

  // ------------------------------------------------------------ formatting
  const intFmt = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (Number.isFinite(Number(n)) ? intFmt.format(Number(n)) : '–');

  function fmtNum(n, digits = 1) {
    const x = Number(n);
    if (!Number.isFinite(x)) return '–';
    return x.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: digits });
  }

  function fmtDur(seconds) {
    let s = Number(seconds);
    if (!Number.isFinite(s)) return '–';
    if (s < 0) s = 0;
    if (s < 10) return `${fmtNum(Math.floor(s * 10) / 10, 1)}s`;
    if (s < 60) return `${Math.floor(s)}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${Math.floor(s % 60)}s`;
    const h = Math.floor(m / 60);
    if (h < 24) return `${h}h ${m % 60}m`;
    const d = Math.floor(h / 24);
    return `${d}d ${h % 24}h`;
  }

  /** Milliseconds with the precision they have: µs below 1 ms, min above 1 min. */
  function fmtMs(ms) {
    const x = Number(ms);
    if (!Number.isFinite(x)) return '–';
    if (x <= 0) return '0 ms';
    if (x < 1) return `${fmtNum(x * 1000, x < 0.01 ? 1 : 0)} µs`;
    if (x < 10) return `${fmtNum(x, 2)} ms`;
    if (x < 1000) return `${fmtNum(x, 0)} ms`;
    if (x < 60_000) return `${fmtNum(x / 1000, 2)} s`;
    return `${fmtNum(x / 60_000, 1)} min`;
  }

  // One time format everywhere, in the reader's locale: hour, minute and
  // second (the request log keeps the full instant in its cells' titles).
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const dateTimeFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const axisFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const axisDayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });

  function fmtDateTime(iso) {
    if (!iso) return '–';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return dateTimeFmt.format(d);
  }

  function fmtTime(value) {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return '–';
    return timeFmt.format(d);
  }

  function fmtHourMinute(ms, withDay) {
    return (withDay ? axisDayFmt : axisFmt).format(new Date(ms));
  }

  const shortId = (id) => String(id || '').slice(0, 8);

  // ------------------------------------------------------------ state
  const state = {
    token: null,
    running: false,
    // connection
    ws: null,
    wsLive: false,
    wsAttempt: 0,
    wsRetryTimer: 0,
    offline: false,
    // when the server last answered (local ms): the age of what is shown once it stops
    lastUpdated: 0,
    tickTimer: 0,
    lastTick: 0,
    clockTimer: 0,
    // clock skew: server time minus local time, from the health timestamp
    skew: 0,
    // table model
    status: '',
    client: '',
    search: '',
    limit: 50,
    offset: 0,
    total: 0,
    activeNow: 0,
    order: [], // session ids of the page, in order
    sessions: new Map(), // id -> session object (the page's)
    pageSeq: 0,
    pageLoaded: false,
    events: [], // recent live events, replayed over a page fetched meanwhile
    clientTypes: new Set(KNOWN_CLIENTS),
    health: null,
    // charts
    hours: 1,
    timeline: null,
    analytics: null,
    usage: null,
    // stateless clients (GET /api/mcp/clients)
    clients: null,
    // tasks (GET /api/mcp/tasks): the newest TASK_PAGE matching taskStatus
    tasks: new Map(), // id -> task summary
    taskOrder: [],
    taskCounts: null, // by status, every stored task
    taskTotal: 0, // matching the filter
    taskStatus: '',
    taskSeq: 0,
    taskEvents: [], // recent task events, replayed over a list fetched meanwhile
    // upstreams (GET /api/mcp/upstreams, the snapshot, upstream_* events)
    upstreams: null, // reports in configuration order; null before the first
    upstreamSeq: 0,
    // detail
    detailId: null,
    detailSession: null,
    detailFetchTimer: 0,
    detailLastFetch: 0,
    // first render measurement
    firstRender: null,
  };

  const now = () => Date.now() + state.skew;

  // ------------------------------------------------------------ API
  class AuthError extends Error {}
  class NetError extends Error {}
  class HttpError extends Error {
    constructor(status, detail) {
      super(detail || `HTTP ${status}`);
      this.status = status;
    }
  }

  async function api(path, { method = 'GET', token = state.token } = {}) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new NetError(`cannot reach the server (${e && e.message ? e.message : e})`);
    }
    const text = await res.text().catch(() => '');
    let body = null;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const detail = body && typeof body === 'object' && body.detail ? String(body.detail) : res.statusText;
    if (res.status === 401) throw new AuthError(detail || 'unauthorized');
    if (!res.ok) throw new HttpError(res.status, detail);
    return body;
  }

  /** api() for a signed-in page: tracks reachability, signs out on 401. */
  async function call(path, opts) {
    try {
      const body = await api(path, opts);
      setReachable(true);
      return body;
    } catch (e) {
      if (e instanceof NetError) setReachable(false);
      else if (e instanceof AuthError) {
        if (state.running) signOut('The server refused the admin token (401 Unauthorized). Sign in again.');
      } else setReachable(true);
      throw e;
    }
  }

  // ------------------------------------------------------------ mode badge
  function currentMode() {
    if (state.wsLive) return 'live';
    if (state.offline) return 'offline';
    return 'polling';
  }

  const MODE_TITLES = {
    live: 'Live: updates arrive over the WebSocket as they happen',
    polling: 'Polling: the live stream is unavailable; refreshing every 10 s (30 s while the tab is hidden)',
    offline: 'Offline: the server cannot be reached; retrying',
  };

  function updateMode() {
    const badge = tid('mode');
    const mode = currentMode();
    if (badge.textContent !== mode) {
      badge.textContent = mode;
      badge.className = `mode mode-${mode}`;
      badge.title = MODE_TITLES[mode];
      badge.setAttribute('aria-label', `Connection mode: ${mode}`);
      document.documentElement.dataset.mode = mode;
    }
    renderStale();
  }

  /** While the server is unreachable everything shown is old: say how old, grey it, stop the clocks. */
  function renderStale() {
    const stale = state.running && state.offline;
    const banner = tid('stale-banner');
    byId('main').classList.toggle('stale', stale);
    if (stale) {
      const since = state.lastUpdated ? ` — showing data from ${fmtTime(state.lastUpdated)}` : '';
      setText(banner, `Connection lost${since}. Retrying…`);
    }
    banner.hidden = !stale;
  }

  function setReachable(ok) {
    if (ok) state.lastUpdated = Date.now();
    if (state.offline === !ok) return;
    state.offline = !ok;
    updateMode();
  }

  // ------------------------------------------------------------ render scheduling
  // Model changes mark what is dirty; one animation frame applies them.
  const dirty = { health: false, structure: false, rows: new Set(), clock: false, search: false, detail: false, pager: false, tasks: false, taskRows: new Set(), taskCounts: false };
  let frame = 0;

  function schedule() {
    if (!frame) frame = requestAnimationFrame(flush);
  }

  function flush() {
    frame = 0;
    if (dirty.health) {
      dirty.health = false;
      renderHealth();
    }
    if (dirty.structure) {
      dirty.structure = false;
      dirty.rows.clear();
      dirty.search = true;
      dirty.pager = true;
      renderRows();
    } else if (dirty.rows.size) {
      for (const id of dirty.rows) patchRow(id);
      dirty.rows.clear();
    }
    if (dirty.tasks) {
      dirty.tasks = false;
      dirty.taskCounts = false;
      dirty.taskRows.clear();
      renderTasks();
    } else if (dirty.taskRows.size || dirty.taskCounts) {
      for (const id of dirty.taskRows) patchTaskRow(id);
      dirty.taskRows.clear();
      dirty.taskCounts = false;
      renderTaskCounts();
    }
    if (dirty.clock) {
      dirty.clock = false;
      for (const id of state.order) patchRowClock(id);
      for (const id of state.taskOrder) patchTaskClock(id);
      if (state.detailSession) renderDetailClock();
    }
    if (dirty.search) {
      dirty.search = false;
      applySearch();
    }
    if (dirty.pager) {
      dirty.pager = false;
      renderPager();
    }
    if (dirty.detail) {
      dirty.detail = false;
      renderDetailSession();
    }
    if (state.firstRender && !state.firstRender.done && state.firstRender.health && state.firstRender.page) {
      state.firstRender.done = true;
      // The next frame's callback runs once this frame (cards and rows) has been painted.
      requestAnimationFrame(() => {
        const t = performance.now();
        performance.mark('sessiongate:first-render');
        document.documentElement.dataset.firstRenderMs = String(Math.round(t));
      });
    }
  }

  // ------------------------------------------------------------ health
  function setHealth(health) {
    if (!health || typeof health !== 'object') return;
    state.health = health;
    const ts = Date.parse(health.timestamp);
    if (Number.isFinite(ts)) state.skew = ts - Date.now();
    const sb = health.status_breakdown || {};
    if (Number.isFinite(sb.active)) state.activeNow = sb.active;
    dirty.health = true;
    dirty.pager = true;
    schedule();
  }

  function renderHealth() {
    const h = state.health;
    if (!h) return;
    const sb = h.status_breakdown || {};
    const active = Number(sb.active) || 0;
    const total = Number(sb.total) || 0;
    setText(tid('card-active'), fmtInt(active));
    setText(tid('card-disconnected'), fmtInt(sb.disconnected ?? 0));
    setText(tid('card-total'), fmtInt(total));
    setText(tid('card-active-percent'), total ? `${fmtNum((active / total) * 100, 1)} %` : '0 %');

    const ad = h.age_distribution || {};
    const buckets = [['healthy', ad.healthy], ['aging', ad.aging], ['stale', ad.stale]].map(([k, v]) => [k, Number(v) || 0]);
    const sum = buckets.reduce((a, [, v]) => a + v, 0);
    const bar = tid('age-bar');
    const segs = bar.querySelectorAll('.agebar-seg');
    buckets.forEach(([, v], i) => {
      segs[i].style.flexGrow = String(v);
      segs[i].hidden = v === 0;
    });
    bar.classList.toggle('agebar-empty', sum === 0);
    bar.setAttribute(
      'aria-label',
      sum === 0 ? 'No active sessions' : buckets.map(([k, v]) => `${k} ${v} (${fmtNum((v / sum) * 100, 0)} %)`).join(', '),
    );
    for (const [k, v] of buckets) setText(tid(`age-${k}`), sum ? `${fmtInt(v)} · ${fmtNum((v / sum) * 100, 0)} %` : fmtInt(v));

    const ch = h.connection_health || {};
    setText(tid('conn-avg-duration'), fmtDur(ch.avg_duration_seconds));
    setText(tid('conn-per-hour'), fmtNum(ch.sessions_per_hour, 2));
    setText(tid('conn-disconnect-rate'), `${fmtNum(ch.disconnect_rate_percent, 1)} %`);
    setText(tid('conn-total'), fmtInt(ch.total_sessions_24h ?? 0));
    const sc = h.stateless_clients;
    setText(
      tid('stateless-line'),
      sc ? `Stateless (2026-07-28) clients: ${fmtInt(sc.active)} active, ${fmtInt(sc.total_24h)} in 24 h. Idle timeout ${fmtDur(h.session_timeout)}.` : '',
    );
    if (state.firstRender) state.firstRender.health = true;
  }

  // ------------------------------------------------------------ sessions table
  const rowViews = new Map(); // id -> {tr, cells}

  function matchesFilters(s) {
    if (state.status && s.status !== state.status) return false;
    if (state.client && s.client_type !== state.client) return false;
    return true;
  }

  function noteClientType(type) {
    if (!type || state.clientTypes.has(type)) return;
    state.clientTypes.add(type);
    renderClientOptions();
  }

  function renderClientOptions() {
    const select = byId('f-client');
    const current = select.value;
    const types = [...state.clientTypes].sort((a, b) => a.localeCompare(b));
    const options = [el('option', { value: '', text: 'All clients' })];
    for (const t of types) options.push(el('option', { value: t, text: t }));
    select.replaceChildren(...options);
    select.value = types.includes(current) ? current : '';
  }

  /** The more recent of two records of one session. */
  function fresher(a, b) {
    if (!a) return b;
    if (!b) return a;
    if ((a.reconnect_count || 0) !== (b.reconnect_count || 0)) return (a.reconnect_count || 0) > (b.reconnect_count || 0) ? a : b;
    if (a.status !== b.status) return a.status === 'disconnected' ? a : b;
    if ((a.request_count || 0) !== (b.request_count || 0)) return (a.request_count || 0) > (b.request_count || 0) ? a : b;
    return Date.parse(a.last_activity) >= Date.parse(b.last_activity) ? a : b;
  }

  function setPage(sessions, total) {
    state.order = [];
    state.sessions = new Map();
    for (const s of sessions) {
      if (!s || !s.session_id || state.sessions.has(s.session_id)) continue;
      state.order.push(s.session_id);
      state.sessions.set(s.session_id, s);
      noteClientType(s.client_type);
    }
    if (Number.isFinite(total)) state.total = total;
    state.pageLoaded = true;
    dirty.structure = true;
    schedule();
  }

  async function loadPage() {
    const seq = ++state.pageSeq;
    const startedAt = performance.now();
    const q = new URLSearchParams({ limit: String(state.limit), offset: String(state.offset) });
    if (state.status) q.set('status', state.status);
    if (state.client) q.set('client_type', state.client);
    const body = await call(`/api/mcp/sessions?${q}`);
    if (seq !== state.pageSeq) return; // a newer load or a snapshot won
    const total = Number(body.total) || 0;
    if (Number.isFinite(body.active_sessions)) state.activeNow = body.active_sessions;
    if (state.offset > 0 && state.offset >= total) {
      state.offset = Math.max(0, Math.floor((total - 1) / state.limit) * state.limit);
      return loadPage();
    }
    setPage(Array.isArray(body.sessions) ? body.sessions : [], total);
    // Live events that arrived while the request was out may be newer than it.
    for (const e of state.events) if (e.at >= startedAt) applyEvent(e.kind, e.session, false);
  }

  function reloadPageSoon() {
    loadPage().catch(() => {});
  }

  function rememberEvent(kind, session) {
    const at = performance.now();
    state.events.push({ at, kind, session });
    while (state.events.length && (state.events[0].at < at - EVENT_MEMORY_MS || state.events.length > 2000)) state.events.shift();
  }

  function applyEvent(kind, s, fresh = true) {
    if (!s || !s.session_id) return;
    const id = s.session_id;
    noteClientType(s.client_type);
    if (fresh && id === state.detailId) {
      state.detailSession = fresher(state.detailSession, s);
      dirty.detail = true;
      if (kind !== 'session_created') scheduleDetailFetch();
    }
    const known = state.sessions.get(id);
    if (known) {
      const next = fresher(known, s);
      if (next !== known) {
        state.sessions.set(id, next);
        dirty.rows.add(id);
      }
    } else if (matchesFilters(s)) {
      // A session this page has not seen: a new one, or one whose creation
      // was not reported (it ended before the server could send it), or one
      // that now matches the filters (reconnected while listing active ones).
      if (state.offset === 0) {
        const pos = insertionIndex(s);
        if (pos >= 0) {
          state.order.splice(pos, 0, id);
          state.sessions.set(id, s);
          while (state.order.length > state.limit) state.sessions.delete(state.order.pop());
          if (fresh) state.total += 1;
          dirty.structure = true;
          dirty.pager = true;
        }
      } else if (fresh && kind === 'session_created') {
        state.total += 1;
        dirty.pager = true;
      }
    }
    schedule();
  }

  /** Newest connected_at first, then the larger id (the server's order). */
  function before(a, b) {
    const ta = Date.parse(a.connected_at);
    const tb = Date.parse(b.connected_at);
    if (ta !== tb) return ta > tb;
    return a.session_id > b.session_id;
  }

  /** Where s belongs on the first page; -1 when past its end. */
  function insertionIndex(s) {
    for (let i = 0; i < state.order.length; i++) {
      const other = state.sessions.get(state.order[i]);
      if (other && before(s, other)) return i;
    }
    return state.order.length < state.limit ? state.order.length : -1;
  }

  function onSessionEvent(kind, s) {
    rememberEvent(kind, s);
    applyEvent(kind, s, true);
  }

  function makeRow(id) {
    const tr = el('tr', { 'data-testid': 'session-row', 'data-session-id': id, class: 'row' });
    const open = el('button', { type: 'button', class: 'link mono', 'data-testid': 'row-open', title: id, 'aria-label': `Session ${id}: show details` }, shortId(id));
    const cells = {
      id: el('td', { 'data-testid': 'row-id' }, open),
      client: el('td', { 'data-testid': 'row-client' }),
      status: el('td', { 'data-testid': 'row-status-cell' }),
      statusBadge: el('span', { class: 'status', 'data-testid': 'row-status' }),
      reason: el('span', { class: 'reason muted small', 'data-testid': 'row-reason' }),
      idle: el('td', { class: 'num', 'data-testid': 'row-idle' }),
      uptime: el('td', { class: 'num col-opt', 'data-testid': 'row-uptime' }),
      protocol: el('td', { class: 'mono small col-opt', 'data-testid': 'row-protocol' }),
      requests: el('td', { class: 'num col-opt', 'data-testid': 'row-requests' }),
      clientName: el('span', { class: 'client-type' }),
      clientVersion: el('span', { class: 'muted small' }),
    };
    cells.client.append(cells.clientName, ' ', cells.clientVersion);
    cells.status.append(cells.statusBadge, cells.reason);
    tr.append(cells.id, cells.client, cells.status, cells.idle, cells.uptime, cells.protocol, cells.requests);
    const view = { tr, cells };
    rowViews.set(id, view);
    return view;
  }

  function patchRow(id) {
    const view = rowViews.get(id);
    const s = state.sessions.get(id);
    if (!view || !s) return;
    const c = view.cells;
    setText(c.clientName, s.client_type || 'unknown');
    setText(c.clientVersion, s.client_version || '');
    c.client.title = [s.client_name, s.client_version].filter(Boolean).join(' ') || 'no clientInfo';
    const status = s.status || 'unknown';
    setText(c.statusBadge, status);
    c.statusBadge.className = `status status-${status}`;
    setText(c.reason, s.status === 'disconnected' && s.disconnect_reason ? s.disconnect_reason : '');
    view.tr.classList.toggle('row-ended', s.status === 'disconnected');
    view.tr.dataset.status = status;
    setText(c.protocol, s.protocol_version || '');
    setText(c.requests, fmtInt(s.request_count ?? 0));
    view.tr.dataset.requests = String(s.request_count ?? 0);
    patchRowClock(id);
  }

  function idleSeconds(s) {
    if (s.status !== 'active') return null;
    return (now() - Date.parse(s.last_activity)) / 1000;
  }

  function uptimeSeconds(s) {
    if (s.status === 'disconnected') {
      if (Number.isFinite(s.total_duration)) return s.total_duration;
      if (s.disconnected_at) return (Date.parse(s.disconnected_at) - Date.parse(s.connected_at)) / 1000;
    }
    return (now() - Date.parse(s.connected_at)) / 1000;
  }

  function patchRowClock(id) {
    const view = rowViews.get(id);
    const s = state.sessions.get(id);
    if (!view || !s) return;
    const idle = idleSeconds(s);
    setText(view.cells.idle, idle === null ? '–' : fmtDur(idle));
    setText(view.cells.uptime, fmtDur(uptimeSeconds(s)));
  }

  function renderRows() {
    const body = byId('sessions-body');
    const keep = new Set(state.order);
    for (const id of [...rowViews.keys()]) if (!keep.has(id)) rowViews.delete(id);
    const trs = state.order.map((id) => {
      const view = rowViews.get(id) || makeRow(id);
      patchRow(id);
      return view.tr;
    });
    body.replaceChildren(...trs);
    if (state.firstRender && state.pageLoaded) state.firstRender.page = true;
  }

  function rowText(s) {
    return [s.session_id, s.client_type, s.client_name, s.client_version, s.status, s.disconnect_reason, s.protocol_version, s.remote_addr, s.user_agent, s.principal]
      .filter(Boolean)
      .join(' ')
      .toLowerCase();
  }

  function applySearch() {
    const q = state.search.trim().toLowerCase();
    let shown = 0;
    for (const id of state.order) {
      const view = rowViews.get(id);
      const s = state.sessions.get(id);
      if (!view || !s) continue;
      const hide = q !== '' && !rowText(s).includes(q);
      if (view.tr.hidden !== hide) view.tr.hidden = hide;
      if (!hide) shown += 1;
    }
    tid('sessions-empty').hidden = !state.pageLoaded || shown > 0;
    setText(tid('sessions-empty'), state.order.length === 0 ? 'No sessions match these filters.' : 'No session on this page matches the search.');
  }

  function renderPager() {
    const total = state.total;
    const from = state.order.length ? state.offset + 1 : 0;
    const to = state.offset + state.order.length;
    const pages = Math.max(1, Math.ceil(total / state.limit));
    const page = Math.floor(state.offset / state.limit) + 1;
    setText(tid('page-info'), `Page ${fmtInt(page)} of ${fmtInt(pages)}`);
    setText(tid('sessions-summary'), `${fmtInt(from)}–${fmtInt(to)} of ${fmtInt(total)} · ${fmtInt(state.activeNow)} active now`);
    byId('pg-first').disabled = state.offset === 0;
    byId('pg-prev').disabled = state.offset === 0;
    byId('pg-next').disabled = state.offset + state.limit >= total;
    byId('pg-last').disabled = state.offset + state.limit >= total;
  }

  function goToOffset(offset) {
    state.offset = Math.max(0, offset);
    dirty.pager = true;
    schedule();
    reloadPageSoon();
  }

  // ------------------------------------------------------------ stateless clients
  async function refreshClients() {
    try {
      const body = await call('/api/mcp/clients');
      state.clients = Array.isArray(body && body.clients) ? body.clients : [];
    } catch (e) {
      if (e instanceof AuthError) return;
      state.clients = state.clients || [];
    }
    if (state.running) requestAnimationFrame(renderClients);
  }

  let clientsTimer = 0;
  /** At most one clients fetch a second, however busy the stateless traffic. */
  function refreshClientsSoon() {
    if (clientsTimer) return;
    clientsTimer = setTimeout(() => {
      clientsTimer = 0;
      if (state.running) refreshClients();
    }, 1000);
  }

  function renderClients() {
    const clients = state.clients;
    if (!clients) return;
    const rows = [...clients]
      .sort((a, b) => Date.parse(b.last_seen) - Date.parse(a.last_seen))
      .map((c) =>
        el(
          'tr',
          { 'data-testid': 'client-row', 'data-client-key': c.client_key },
          el(
            'td',
            { 'data-testid': 'client-name', title: [c.client_name, c.client_version].filter(Boolean).join(' ') || 'no clientInfo' },
            el('span', { class: 'client-type', text: c.client_type || 'unknown' }),
            ' ',
            el('span', { class: 'muted small', text: c.client_version || '' }),
          ),
          el('td', { class: 'col-opt', 'data-testid': 'client-principal', text: c.principal || '–' }),
          el('td', { class: 'num', 'data-testid': 'client-requests', text: fmtInt(c.request_count ?? 0) }),
          el('td', { class: 'num', 'data-testid': 'client-last-seen', title: c.last_seen, text: fmtTime(c.last_seen) }),
          el('td', { class: 'mono small col-opt', 'data-testid': 'client-protocol', text: c.protocol_version || '–' }),
        ),
      );
    byId('clients-body').replaceChildren(...rows);
    tid('clients-empty').hidden = rows.length > 0;
    const requests = clients.reduce((n, c) => n + (Number(c.request_count) || 0), 0);
    setText(tid('clients-summary'), `${fmtInt(clients.length)} clients · ${fmtInt(requests)} requests`);
  }

  // ------------------------------------------------------------ tasks
  const taskViews = new Map(); // id -> {tr, cells}
  const isFinished = (status) => status === 'completed' || status === 'failed' || status === 'cancelled';

  async function refreshTasks() {
    const seq = ++state.taskSeq;
    const startedAt = performance.now();
    const q = new URLSearchParams({ limit: String(TASK_PAGE) });
    if (state.taskStatus) q.set('status', state.taskStatus);
    let body;
    try {
      body = await call(`/api/mcp/tasks?${q}`);
    } catch {
      return; // what was shown stays (greyed while the server is unreachable)
    }
    if (seq !== state.taskSeq || !state.running) return;
    state.taskOrder = [];
    state.tasks = new Map();
    for (const t of Array.isArray(body.tasks) ? body.tasks : []) {
      if (!t || !t.task_id || state.tasks.has(t.task_id)) continue;
      state.taskOrder.push(t.task_id);
      state.tasks.set(t.task_id, t);
    }
    state.taskTotal = Number(body.total) || 0;
    state.taskCounts = Object.fromEntries(TASK_STATUSES.map((s) => [s, Number(body.counts && body.counts[s]) || 0]));
    // Events that arrived while the request was out may be newer than it.
    for (const e of state.taskEvents) if (e.at >= startedAt) applyTaskEvent(e.m);
    dirty.tasks = true;
    schedule();
  }

  let tasksTimer = 0;
  /** At most one task list fetch a second, however many tasks change. */
  function refreshTasksSoon() {
    if (tasksTimer) return;
    tasksTimer = setTimeout(() => {
      tasksTimer = 0;
      if (state.running) refreshTasks();
    }, 1000);
  }

  function onTaskEvent(m) {
    const at = performance.now();
    state.taskEvents.push({ at, m });
    while (state.taskEvents.length && (state.taskEvents[0].at < at - EVENT_MEMORY_MS || state.taskEvents.length > 2000)) state.taskEvents.shift();
    applyTaskEvent(m);
    schedule();
  }

  /** Patches the list and the counts with one live event; applying one twice changes nothing. */
  function applyTaskEvent(m) {
    const counts = state.taskCounts;
    if (!counts) return; // the first list is still out; it will replay this
    if (m.type === 'task_created') {
      const t = m.task;
      if (!t || !t.task_id || state.tasks.has(t.task_id)) return;
      if (t.status in counts) counts[t.status] += 1;
      if (!state.taskStatus || t.status === state.taskStatus) {
        // Newest first: a new task leads the list.
        state.taskOrder.unshift(t.task_id);
        state.tasks.set(t.task_id, t);
        while (state.taskOrder.length > TASK_PAGE) state.tasks.delete(state.taskOrder.pop());
        state.taskTotal += 1;
        dirty.tasks = true;
      } else {
        dirty.taskCounts = true;
      }
    } else if (m.type === 'task_status_changed') {
      const known = state.tasks.get(m.task_id);
      if (!known) {
        // Not on this page: the counts need the status it leaves.
        refreshTasksSoon();
        return;
      }
      // A finished task never changes; an event already applied changes nothing.
      if (known.status === m.status || isFinished(known.status)) return;
      if (known.status in counts) counts[known.status] = Math.max(0, counts[known.status] - 1);
      if (m.status in counts) counts[m.status] += 1;
      state.tasks.set(m.task_id, { ...known, status: m.status, status_message: m.status_message ?? null, updated_at: m.updated_at || known.updated_at });
      dirty.taskRows.add(m.task_id);
      dirty.taskCounts = true;
    }
  }

  /** A client key `anonymous/NAME/VERSION` as "NAME VERSION"; a principal as it is. */
  function taskOwner(t) {
    const m = t.owner_kind === 'client' ? /^anonymous\/(.+)\/([^/]*)$/.exec(t.owner || '') : null;
    return m ? { name: m[1], version: m[2] } : { name: t.owner || 'unknown', version: '' };
  }

  function makeTaskRow(id) {
    const tr = el('tr', { 'data-testid': 'task-row', 'data-task-id': id });
    const cells = {
      id: el('td', { class: 'mono small col-opt', 'data-testid': 'task-id', title: id, text: shortId(id) }),
      client: el('td', { 'data-testid': 'task-client' }),
      clientName: el('span', { class: 'client-type' }),
      clientVersion: el('span', { class: 'muted small' }),
      tool: el('td', { class: 'mono small', 'data-testid': 'task-tool' }),
      status: el('td', { class: 'task-status', 'data-testid': 'task-status-cell' }),
      statusBadge: el('span', { class: 'status', 'data-testid': 'task-status' }),
      reason: el('span', { class: 'reason small', 'data-testid': 'task-reason' }),
      age: el('td', { class: 'num', 'data-testid': 'task-age' }),
    };
    cells.client.append(cells.clientName, ' ', cells.clientVersion);
    cells.status.append(cells.statusBadge, cells.reason);
    tr.append(cells.id, cells.client, cells.tool, cells.status, cells.age);
    const view = { tr, cells };
    taskViews.set(id, view);
    return view;
  }

  function patchTaskRow(id) {
    const view = taskViews.get(id);
    const t = state.tasks.get(id);
    if (!view || !t) return;
    const c = view.cells;
    const owner = taskOwner(t);
    setText(c.clientName, owner.name);
    setText(c.clientVersion, owner.version);
    c.client.title = `${t.owner_kind || 'owner'}: ${t.owner || ''}`;
    setText(c.tool, t.tool || '–');
    const status = t.status || 'unknown';
    setText(c.statusBadge, status.replace('_', ' '));
    c.statusBadge.className = `status status-${status}`;
    // Why it failed or was cancelled: the status message, else the error's.
    const reason = status === 'failed' || status === 'cancelled' ? t.status_message || (t.error && t.error.message) || '' : '';
    setText(c.reason, reason);
    c.reason.hidden = !reason;
    view.tr.dataset.status = status;
    view.tr.classList.toggle('row-ended', isFinished(status));
    patchTaskClock(id);
  }

  function patchTaskClock(id) {
    const view = taskViews.get(id);
    const t = state.tasks.get(id);
    if (!view || !t) return;
    setText(view.cells.age, fmtDur((now() - Date.parse(t.created_at)) / 1000));
    view.cells.age.title = `created ${fmtDateTime(t.created_at)}`;
  }

  function renderTaskCounts() {
    const counts = state.taskCounts;
    for (const s of TASK_STATUSES) setText(tid(`task-count-${s}`), counts ? fmtInt(counts[s]) : '–');
    if (!counts) return;
    const stored = TASK_STATUSES.reduce((n, s) => n + counts[s], 0);
    const shown = state.taskOrder.length;
    setText(
      tid('tasks-summary'),
      `${fmtInt(stored)} stored · ${fmtInt(counts.working + counts.input_required)} running` +
        (state.taskTotal > shown ? ` · newest ${fmtInt(shown)} of ${fmtInt(state.taskTotal)} shown` : ''),
    );
  }

  function renderTasks() {
    const keep = new Set(state.taskOrder);
    for (const id of [...taskViews.keys()]) if (!keep.has(id)) taskViews.delete(id);
    const trs = state.taskOrder.map((id) => {
      const view = taskViews.get(id) || makeTaskRow(id);
      patchTaskRow(id);
      return view.tr;
    });
    byId('tasks-body').replaceChildren(...trs);
    const empty = tid('tasks-empty');
    setText(empty, state.taskStatus ? `No ${state.taskStatus.replace('_', ' ')} tasks.` : 'No tasks.');
    empty.hidden = trs.length > 0 || !state.taskCounts;
    renderTaskCounts();
  }

  // ------------------------------------------------------------ upstreams
  const UPSTREAM_STATUSES = ['up', 'degraded', 'down'];

  async function refreshUpstreams() {
    const seq = ++state.upstreamSeq;
    let body;
    try {
      body = await call('/api/mcp/upstreams');
    } catch {
      return;
    }
    if (seq !== state.upstreamSeq || !state.running) return;
    setUpstreams(body.upstreams);
  }

  function setUpstreams(list) {
    state.upstreams = Array.isArray(list) ? list.filter((u) => u && u.name) : [];
    renderUpstreams();
  }

  /** An upstream event carries the upstream's report now: it replaces the row. */
  function onUpstreamEvent(m) {
    const report = m.report;
    if (!report || !report.name || !state.upstreams) {
      refreshUpstreams();
      return;
    }
    state.upstreamSeq += 1; // newer than a list fetch still out
    const i = state.upstreams.findIndex((u) => u.name === report.name);
    if (i < 0) state.upstreams.push(report);
    else state.upstreams[i] = report;
    renderUpstreams();
  }

  function fmtLatency(ms) {
    return ms === null || ms === undefined ? '–' : fmtMs(ms);
  }

  function makeUpstreamRow(u) {
    const status = UPSTREAM_STATUSES.includes(u.status) ? u.status : 'unknown';
    const transport = u.mode ? `${u.transport} · ${u.mode}` : u.transport || '–';
    const error = u.last_error || '';
    return el(
      'tr',
      { 'data-testid': 'upstream-row', 'data-upstream': u.name, 'data-status': status },
      el('td', { class: 'mono small', 'data-testid': 'upstream-name', text: u.name }),
      el('td', { class: 'small col-opt', 'data-testid': 'upstream-transport', text: transport }),
      el(
        'td',
        { class: 'upstream-status' },
        el('span', { class: `status status-upstream-${status}`, 'data-testid': 'upstream-status', text: status }),
        // The last failure beside its badge, as a task's reason is.
        el('span', {
          class: 'reason small',
          'data-testid': 'upstream-error',
          title: u.last_error_at ? `at ${fmtDateTime(u.last_error_at)}` : null,
          hidden: !error,
          text: error,
        }),
      ),
      el('td', { class: 'num col-opt', 'data-testid': 'upstream-processes', text: fmtInt(u.processes ?? 0) }),
      el('td', { class: 'num', 'data-testid': 'upstream-restarts', text: fmtInt(u.restarts ?? 0) }),
      el('td', { class: 'num col-opt', 'data-testid': 'upstream-sessions', text: fmtInt(u.sessions_mapped ?? 0) }),
      el('td', { class: 'num col-opt', 'data-testid': 'upstream-latency', text: `${fmtLatency(u.p50_ms)} / ${fmtLatency(u.p99_ms)}` }),
    );
  }

  function renderUpstreams() {
    const list = state.upstreams || [];
    tid('upstreams-panel').hidden = list.length === 0;
    byId('upstreams-body').replaceChildren(...list.map(makeUpstreamRow));
    const count = (s) => list.filter((u) => u.status === s).length;
    setText(
      tid('upstreams-summary'),
      list.length ? UPSTREAM_STATUSES.map((s) => `${fmtInt(count(s))} ${s}`).join(' · ') : '',
    );
  }

  // ------------------------------------------------------------ detail view
  function openDetail(id) {
    const dialog = byId('detail');
    state.detailId = id;
    state.detailSession = state.sessions.get(id) || null;
    state.detailData = null;
    byId('detail-req-body').replaceChildren();
    for (const k of ['detail-errors', 'detail-avg']) setText(tid(k), '…');
    tid('detail-error').hidden = true;
    dirty.detail = true;
    flush();
    if (!dialog.open) dialog.showModal();
    fetchDetail();
  }

  function closeDetail() {
    const dialog = byId('detail');
    if (dialog.open) dialog.close();
  }

  function onDetailClosed() {
    const id = state.detailId;
    state.detailId = null;
    state.detailSession = null;
    clearTimeout(state.detailFetchTimer);
    const view = id && rowViews.get(id);
    if (view) view.cells.id.querySelector('button')?.focus();
  }

  async function fetchDetail() {
    const id = state.detailId;
    if (!id) return;
    state.detailLastFetch = Date.now();
    try {
      const body = await call(`/api/mcp/sessions/${encodeURIComponent(id)}`);
      if (state.detailId !== id) return;
      state.detailSession = fresher(state.detailSession, body.session);
      renderDetailRequests(body.requests || [], body.summary || {});
      dirty.detail = true;
      schedule();
    } catch (e) {
      if (state.detailId !== id || e instanceof AuthError) return;
      const msg = e instanceof HttpError && e.status === 404 ? 'This session no longer exists.' : `Could not load the session: ${e.message}`;
      showDetailError(msg);
    }
  }

  function scheduleDetailFetch() {
    if (state.detailFetchTimer) return;
    const wait = Math.max(0, 1000 - (Date.now() - state.detailLastFetch));
    state.detailFetchTimer = setTimeout(() => {
      state.detailFetchTimer = 0;
      fetchDetail();
    }, wait);
  }

  function showDetailError(msg) {
    const p = tid('detail-error');
    p.textContent = msg;
    p.hidden = !msg;
  }

  function renderDetailSession() {
    const s = state.detailSession;
    const id = state.detailId;
    if (!id) return;
    setText(byId('detail-title'), `Session ${shortId(id)}`);
    setText(tid('detail-id'), id);
    if (!s) return;
    const status = s.status || 'unknown';
    const badge = tid('detail-status');
    setText(badge, status);
    badge.className = `status status-${status}`;
    setText(tid('detail-reason'), s.disconnect_reason || '–');
    setText(tid('detail-connected'), fmtDateTime(s.connected_at));
    setText(tid('detail-last-activity'), fmtDateTime(s.last_activity));
    setText(tid('detail-disconnected'), s.disconnected_at ? fmtDateTime(s.disconnected_at) : '–');
    setText(tid('detail-requests-count'), fmtInt(s.request_count ?? 0));
    setText(tid('detail-reconnects'), fmtInt(s.reconnect_count ?? 0));
    setText(tid('detail-client-type'), s.client_type || 'unknown');
    setText(tid('detail-client-name'), s.client_name || '–');
    setText(tid('detail-client-version'), s.client_version || '–');
    setText(tid('detail-protocol'), s.protocol_version || '–');
    setText(tid('detail-principal'), s.principal || '–');
    setText(tid('detail-remote'), s.remote_addr || '–');
    setText(tid('detail-ua'), s.user_agent || '–');
    setText(tid('detail-metadata'), JSON.stringify({ client_capabilities: s.client_capabilities ?? {}, metadata: s.metadata ?? {} }, null, 2));
    const term = tid('detail-terminate');
    term.disabled = status !== 'active';
    setText(term, status === 'active' ? 'Terminate session' : 'Session ended');
    renderDetailClock();
  }

  function renderDetailClock() {
    const s = state.detailSession;
    if (!s) return;
    setText(tid('detail-duration'), fmtDur(uptimeSeconds(s)) + (s.status === 'active' ? ' (so far)' : ''));
  }

  function renderDetailRequests(requests, summary) {
    const rows = requests.map((r) =>
      el(
        'tr',
        { 'data-testid': 'detail-request' },
        el('td', { class: 'small', 'data-testid': 'detail-request-time', title: r.started_at, text: fmtTime(r.started_at) }),
        el('td', { class: 'mono small', text: r.method || '–' }),
        el('td', { text: r.tool_name || '–' }),
        el('td', { class: 'mono small', 'data-testid': 'detail-request-upstream', text: r.upstream || '–' }),
        el('td', { class: 'num', 'data-testid': 'detail-request-duration', text: fmtMs(r.duration_ms) }),
        el(
          'td',
          { title: r.status === 'error' ? `${r.error_code ?? ''} ${r.error_message ?? ''}`.trim() : null },
          el('span', { class: `status status-${r.status === 'error' ? 'error' : 'success'}`, text: r.status || '–' }),
        ),
      ),
    );
    if (!rows.length) rows.push(el('tr', null, el('td', { colspan: '6', class: 'muted', text: 'No requests logged yet.' })));
    byId('detail-req-body').replaceChildren(...rows);
    setText(tid('detail-errors'), fmtInt(summary.errors ?? 0));
    setText(tid('detail-avg'), fmtMs(summary.avg_duration_ms ?? 0));
  }

  async function terminateDetail() {
    const id = state.detailId;
    if (!id) return;
    const ok = window.confirm(`Terminate session ${shortId(id)}?\n\nIts client's next request gets 404 and it has to start a new session.`);
    if (!ok) return;
    const button = tid('detail-terminate');
    button.disabled = true;
    showDetailError('');
    try {
      const res = await call(`/api/mcp/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
      const merged = Object.assign({}, state.detailSession || state.sessions.get(id) || { session_id: id }, {
        status: res.status || 'disconnected',
        disconnect_reason: res.disconnect_reason || 'admin_terminated',
        disconnected_at: res.disconnected_at || new Date(now()).toISOString(),
        total_duration: res.total_duration,
      });
      if (state.detailId === id) {
        state.detailSession = merged;
        dirty.detail = true;
      }
      if (state.sessions.has(id)) {
        state.sessions.set(id, fresher(state.sessions.get(id), merged));
        dirty.rows.add(id);
      }
      schedule();
      // The cards follow the row now, not at the next health update.
      call('/api/mcp/sessions/health').then(setHealth, () => {});
      toast(`Session ${shortId(id)} terminated.`);
      scheduleDetailFetch();
    } catch (e) {
      if (e instanceof AuthError) return;
      if (e instanceof HttpError && e.status === 409) {
        showDetailError('The session had already ended.');
        fetchDetail();
      } else {
        showDetailError(`Could not terminate the session: ${e.message}`);
        button.disabled = false;
      }
    }
  }

  // ------------------------------------------------------------ charts
  function chartSize(container) {
    const w = Math.max(240, Math.floor(container.clientWidth || 320));
    const h = w < 420 ? 160 : 190;
    return { w, h };
  }

  function noData(container, message) {
    const loading = message === LOADING;
    container.replaceChildren(el('p', { class: loading ? 'placeholder loading' : 'placeholder nodata', text: message }));
    container.setAttribute('aria-busy', String(loading));
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const exp = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
    return 10 * exp;
  }

  /** The top of a 4-gridline axis over values up to v: 4 × a round step (whole steps for counts). */
  function axisMax(v, integers) {
    let step = niceMax((v > 0 ? v : 1) / 4);
    if (integers) step = Math.max(1, Math.ceil(step));
    return step * 4;
  }

  function fmtAxis(v) {
    if (v >= 1e6) return `${fmtNum(v / 1e6, 1)}M`;
    if (v >= 1e3) return `${fmtNum(v / 1e3, 1)}k`;
    return fmtNum(v, v < 10 ? 2 : 0);
  }

  /**
   * A line chart: times (ms) on x, one or more series on y.
   * series: [{label, cls, values: number[]}]; the first is also filled.
   */
  function lineChart(container, { times, series, label, unit = '', withDay = false, integers = false }) {
    const { w, h } = chartSize(container);
    const pad = { l: 44, r: 12, t: 12, b: 26 };
    const iw = w - pad.l - pad.r;
    const ih = h - pad.t - pad.b;
    const n = times.length;
    const max = axisMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))), integers);
    const t0 = times[0];
    const t1 = times[n - 1];
    const x = (t) => pad.l + (n < 2 || t1 === t0 ? iw / 2 : ((t - t0) / (t1 - t0)) * iw);
    const y = (v) => pad.t + ih - (Math.max(0, v) / max) * ih;
    const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'chart-svg', role: 'img', 'aria-label': label });
    const grid = svg('g', { class: 'grid' });
    for (let i = 0; i <= 4; i++) {
      const v = (max * i) / 4;
      const yy = y(v);
      grid.append(svg('line', { x1: pad.l, x2: w - pad.r, y1: yy, y2: yy }));
      grid.append(svg('text', { x: pad.l - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis', text: fmtAxis(v) }));
    }
    const ticks = Math.min(5, n);
    for (let i = 0; i < ticks; i++) {
      const idx = ticks === 1 ? 0 : Math.round((i * (n - 1)) / (ticks - 1));
      const anchor = i === 0 ? 'start' : i === ticks - 1 ? 'end' : 'middle';
      grid.append(svg('text', { x: x(times[idx]), y: h - 8, 'text-anchor': anchor, class: 'axis', text: fmtHourMinute(times[idx], withDay) }));
    }
    root.append(grid);
    series.forEach((s, si) => {
      const pts = s.values.map((v, i) => [x(times[i]), y(Number.isFinite(v) ? v : 0)]);
      const d = pts.map(([px, py], i) => `${i ? 'L' : 'M'}${px.toFixed(1)},${py.toFixed(1)}`).join('');
      if (si === 0 && pts.length > 1) {
        const area = `${d}L${pts[pts.length - 1][0].toFixed(1)},${pad.t + ih}L${pts[0][0].toFixed(1)},${pad.t + ih}Z`;
        root.append(svg('path', { d: area, class: `area ${s.cls}` }));
      }
      root.append(svg('path', { d, class: `line ${s.cls}` }));
      if (pts.length === 1) root.append(svg('circle', { cx: pts[0][0], cy: pts[0][1], r: 3, class: `dot ${s.cls}` }));
    });
    // hover guide
    const guide = svg('line', { class: 'guide', y1: pad.t, y2: pad.t + ih, x1: pad.l, x2: pad.l, visibility: 'hidden' });
    root.append(guide);
    const tip = el('div', { class: 'tip', hidden: true });
    const legend = el(
      'div',
      { class: 'chart-legend' },
      ...series.map((s) => el('span', null, el('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), s.label)),
    );
    root.addEventListener('pointermove', (ev) => {
      const box = root.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * w;
      let best = 0;
      for (let i = 1; i < n; i++) if (Math.abs(x(times[i]) - px) < Math.abs(x(times[best]) - px)) best = i;
      const gx = x(times[best]);
      guide.setAttribute('x1', gx);
      guide.setAttribute('x2', gx);
      guide.setAttribute('visibility', 'visible');
      tip.hidden = false;
      tip.textContent = `${fmtHourMinute(times[best], withDay)} · ${series.map((s) => `${s.label} ${fmtNum(s.values[best], 2)}${unit}`).join(' · ')}`;
      tip.style.left = `${Math.min(Math.max(0, (gx / w) * box.width - 60), box.width - 160)}px`;
    });
    root.addEventListener('pointerleave', () => {
      tip.hidden = true;
      guide.setAttribute('visibility', 'hidden');
    });
    container.replaceChildren(legend, root, tip);
    container.setAttribute('aria-busy', 'false');
  }

  /** Horizontal bars, one group per row: rows [{label, values: number[]}], keys [{label, cls}]. */
  function barChart(container, { rows, keys, label, format }) {
    const { w } = chartSize(container);
    const labelW = Math.min(140, Math.max(70, Math.floor(w * 0.3)));
    const valueW = 70;
    const barH = keys.length > 1 ? 7 : 14;
    const groupH = barH * keys.length + 10;
    const h = rows.length * groupH + 8;
    const iw = w - labelW - valueW;
    const max = niceMax(Math.max(0, ...rows.flatMap((r) => r.values.filter(Number.isFinite))));
    const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'chart-svg', role: 'img', 'aria-label': label });
    rows.forEach((r, ri) => {
      const top = 4 + ri * groupH;
      const g = svg('g', { class: 'bar-row' });
      const name = r.label.length > 18 ? `${r.label.slice(0, 17)}…` : r.label;
      g.append(svg('text', { x: labelW - 8, y: top + (groupH - 10) / 2 + 4, 'text-anchor': 'end', class: 'axis label', text: name }, svg('title', { text: r.label })));
      keys.forEach((k, ki) => {
        const v = Number(r.values[ki]) || 0;
        const bw = Math.max(v > 0 ? 2 : 0, (v / max) * iw);
        const by = top + ki * barH;
        g.append(svg('rect', { x: labelW, y: by, width: bw.toFixed(1), height: barH - 1, rx: 2, class: `bar ${k.cls}` }, svg('title', { text: `${r.label} ${k.label}: ${format(v)}` })));
        if (ki === keys.length - 1) {
          // after the longest bar of the group
          const top1 = Math.max(0, ...r.values.map(Number).filter(Number.isFinite));
          const end = labelW + Math.max(top1 > 0 ? 2 : 0, (top1 / max) * iw);
          g.append(svg('text', { x: end + 6, y: top + (groupH - 10) / 2 + 4, class: 'axis value', text: format(top1) }));
        }
      });
      root.append(g);
    });
    const parts = [];
    if (keys.length > 1) {
      parts.push(el('div', { class: 'chart-legend' }, ...keys.map((k) => el('span', null, el('span', { class: `swatch ${k.cls}`, 'aria-hidden': 'true' }), k.label))));
    }
    parts.push(root);
    container.replaceChildren(...parts);
    container.setAttribute('aria-busy', 'false');
  }

  function renderCharts() {
    renderTimelineCharts();
    renderLatencyChart();
    renderToolsChart();
  }

  function renderTimelineCharts() {
    const active = byId('chart-active');
    const rps = byId('chart-rps');
    const tl = state.timeline;
    if (!tl || tl.error) {
      const msg = tl && tl.error ? tl.error : LOADING;
      noData(active, msg);
      noData(rps, msg);
      return;
    }
    const points = (Array.isArray(tl.points) ? tl.points : []).filter((p) => Number.isFinite(Date.parse(p.t)));
    if (!points.length) {
      noData(active, 'No data for this period yet.');
      noData(rps, 'No data for this period yet.');
      return;
    }
    const times = points.map((p) => Date.parse(p.t));
    const bucket = Number(tl.bucket_seconds) > 0 ? Number(tl.bucket_seconds) : 60;
    const withDay = Number(tl.hours) > 12;
    const range = withDay ? 'the last 24 hours' : 'the last hour';
    const act = points.map((p) => Number(p.active) || 0);
    lineChart(active, {
      times,
      withDay,
      integers: true,
      series: [{ label: 'active', cls: 's1', values: act }],
      label: `Active sessions over ${range}: now ${act[act.length - 1]}, peak ${Math.max(...act)}`,
    });
    // The last bucket is still filling: divide by the seconds it has run.
    const span = (i) => (i < points.length - 1 ? bucket : Math.min(bucket, Math.max(1, (now() - times[i]) / 1000)));
    const req = points.map((p, i) => (Number(p.requests) || 0) / span(i));
    const err = points.map((p, i) => (Number(p.errors) || 0) / span(i));
    lineChart(rps, {
      times,
      withDay,
      unit: '/s',
      series: [
        { label: 'requests', cls: 's2', values: req },
        { label: 'errors', cls: 's4', values: err },
      ],
      label: `Requests per second over ${range}: latest ${fmtNum(req[req.length - 1], 2)}, peak ${fmtNum(Math.max(...req), 2)}`,
    });
  }

  function renderLatencyChart() {
    const box = byId('chart-latency');
    const an = state.analytics;
    const overall = byId('latency-overall');
    if (!an || an.error) {
      noData(box, an && an.error ? an.error : LOADING);
      setText(overall, '');
      return;
    }
    const rt = an.response_times || {};
    const tools = (Array.isArray(rt.by_tool) ? rt.by_tool : []).filter((t) => t && t.tool && !t.unknown);
    const hasPct = Number.isFinite(Number(rt.p50));
    const parts = [];
    if (hasPct) parts.push(`all requests: p50 ${fmtMs(rt.p50)} · p95 ${fmtMs(rt.p95)} · p99 ${fmtMs(rt.p99)}`);
    const ratios = an.ratios || {};
    if (Number.isFinite(Number(ratios.success_rate))) parts.push(`${fmtNum(ratios.success_rate, 1)} % success`);
    const change = an.comparison && an.comparison.requests;
    if (change && typeof change.change_percent === 'number' && Number.isFinite(change.change_percent)) {
      const c = Number(change.change_percent);
      parts.push(`requests ${c >= 0 ? '+' : '−'}${fmtNum(Math.abs(c), 1)} % vs the day before`);
    }
    setText(overall, parts.join(' · '));
    if (!tools.length) {
      noData(box, 'No tool calls today (UTC).');
      return;
    }
    tools.sort((a, b) => (Number(b.count) || 0) - (Number(a.count) || 0));
    const rows = tools.slice(0, 8).map((t) => ({
      label: t.tool,
      values: [t.p50 ?? t.avg_ms, t.p95 ?? t.max_ms, t.p99 ?? t.max_ms].map(Number),
    }));
    barChart(box, {
      rows,
      keys: [
        { label: 'p50', cls: 's1' },
        { label: 'p95', cls: 's3' },
        { label: 'p99', cls: 's4' },
      ],
      format: fmtMs,
      label: `Tool latency percentiles: ${rows.map((r) => `${r.label} p50 ${fmtMs(r.values[0])}, p95 ${fmtMs(r.values[1])}, p99 ${fmtMs(r.values[2])}`).join('; ')}`,
    });
  }

  function renderToolsChart() {
    const box = byId('chart-tools');
    const note = byId('tools-unknown');
    let tools = null;
    const us = state.usage;
    if (us && !us.error && us.by_tool && typeof us.by_tool === 'object') {
      tools = Object.entries(us.by_tool).map(([tool, v]) => ({ tool, count: Number(v && v.count) || 0, errors: Number(v && v.errors) || 0, unknown: Boolean(v && v.unknown) }));
    } else if (state.analytics && !state.analytics.error && state.analytics.response_times && Array.isArray(state.analytics.response_times.by_tool)) {
      tools = state.analytics.response_times.by_tool.map((t) => ({ tool: t.tool, count: Number(t.count) || 0, errors: Number(t.errors) || 0, unknown: Boolean(t.unknown) }));
    }
    if (!tools) {
      noData(box, us && us.error ? us.error : LOADING);
      note.hidden = true;
      return;
    }
    tools = tools.filter((t) => t.tool && t.count > 0).sort((a, b) => b.count - a.count);
    // Names clients tried that the server does not offer are not tools: listed apart.
    const unknown = tools.filter((t) => t.unknown);
    setText(
      note,
      unknown.length
        ? `Unknown tools tried (not in this server's catalog): ${unknown.map((t) => `${t.tool} ×${fmtInt(t.count)}`).join(', ')}`
        : '',
    );
    note.hidden = unknown.length === 0;
    const known = tools.filter((t) => !t.unknown);
    if (!known.length) {
      noData(box, 'No tool calls today (UTC).');
      return;
    }
    const rows = known.slice(0, 10).map((t) => ({ label: t.tool, values: [t.count, t.errors] }));
    barChart(box, {
      rows,
      keys: [
        { label: 'requests', cls: 's2' },
        { label: 'errors', cls: 's4' },
      ],
      format: fmtInt,
      label: `Requests by tool: ${rows.map((r) => `${r.label} ${r.values[0]} (${r.values[1]} errors)`).join(', ')}`,
    });
  }

  function chartError(e) {
    if (e instanceof HttpError && e.status === 404) return { error: 'No data (this server does not provide it yet).' };
    if (e instanceof NetError) return { error: 'No data (server unreachable).' };
    return { error: `No data (${e && e.message ? e.message : 'error'}).` };
  }

  /** A chart's new data; while the server is unreachable, the last it drew (greyed as stale). */
  function chartData(previous, result) {
    if (result.status === 'fulfilled') return result.value || {};
    if (result.reason instanceof NetError && previous && !previous.error) return previous;
    return chartError(result.reason);
  }

  async function refreshCharts() {
    const hours = state.hours;
    const [tl, an, us] = await Promise.allSettled([
      call(`/api/mcp/sessions/timeline?hours=${hours}`),
      call('/api/mcp/analytics?days=1&compare=true'),
      call('/api/mcp/usage/summary?days=1'),
    ]);
    if (!state.running) return;
    if (hours === state.hours) state.timeline = chartData(state.timeline, tl);
    state.analytics = chartData(state.analytics, an);
    state.usage = chartData(state.usage, us);
    requestAnimationFrame(renderCharts);
  }

  async function refreshTimeline() {
    const hours = state.hours;
    try {
      const tl = await call(`/api/mcp/sessions/timeline?hours=${hours}`);
      if (hours === state.hours) state.timeline = tl || {};
    } catch (e) {
      if (hours === state.hours) state.timeline = chartError(e);
    }
    requestAnimationFrame(renderTimelineCharts);
  }

  // ------------------------------------------------------------ live stream
  function wsUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${WS_PATH}`;
  }

  function connectWs() {
    clearTimeout(state.wsRetryTimer);
    state.wsRetryTimer = 0;
    if (!state.running || state.ws) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl(), [WS_PROTOCOL, `bearer.${state.token}`]);
    } catch {
      scheduleWsRetry();
      return;
    }
    state.ws = ws;
    ws.onmessage = (ev) => {
      if (state.ws !== ws) return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      onWsMessage(m);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      const wasLive = state.wsLive;
      state.wsLive = false;
      updateMode();
      if (!state.running) return;
      if (wasLive) tick(); // catch up by polling straight away
      scheduleWsRetry();
    };
    ws.onerror = () => {}; // a close follows
  }

  function scheduleWsRetry() {
    if (!state.running || state.wsRetryTimer) return;
    const base = Math.min(WS_RETRY_MAX_MS, 1000 * 2 ** Math.min(state.wsAttempt, 5));
    state.wsAttempt += 1;
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    state.wsRetryTimer = setTimeout(() => {
      state.wsRetryTimer = 0;
      connectWs();
    }, delay);
  }

  function onWsMessage(m) {
    if (state.wsLive) state.lastUpdated = Date.now();
    switch (m && m.type) {
      case 'snapshot': {
        state.wsLive = true;
        state.lastUpdated = Date.now();
        state.wsAttempt = 0;
        setReachable(true);
        updateMode();
        setHealth(m.health);
        const sessions = Array.isArray(m.sessions) ? m.sessions : [];
        const total = Number(m.total) || 0;
        const usable = state.offset === 0 && !state.status && !state.client && (sessions.length >= state.limit || sessions.length >= total);
        if (usable) {
          state.pageSeq += 1; // newer than any page request still out
          setPage(sessions.slice(0, state.limit), total);
        } else {
          reloadPageSoon();
        }
        if (state.detailId) scheduleDetailFetch();
        refreshTasks();
        if (Array.isArray(m.upstreams)) {
          state.upstreamSeq += 1; // newer than a list fetch still out
          setUpstreams(m.upstreams);
        }
        break;
      }
      case 'session_created':
      case 'session_updated':
      case 'session_reconnected':
      case 'session_disconnected':
        onSessionEvent(m.type, m.session);
        break;
      case 'health_update':
        setHealth(m.data);
        break;
      case 'lagged':
        // A fresh snapshot follows; it replaces the page.
        break;
      case 'client_activity':
        refreshClientsSoon();
        break;
      case 'task_created':
      case 'task_status_changed':
        onTaskEvent(m);
        break;
      case 'upstream_up':
      case 'upstream_down':
      case 'upstream_restarted':
        onUpstreamEvent(m);
        break;
      case 'ping':
      default:
        break;
    }
  }

  // ------------------------------------------------------------ timers
  function pollInterval() {
    return document.visibilityState === 'hidden' ? POLL_HIDDEN_MS : POLL_VISIBLE_MS;
  }

  function scheduleTick(delay = pollInterval()) {
    clearTimeout(state.tickTimer);
    if (state.running) state.tickTimer = setTimeout(tick, delay);
  }

  /** The periodic refresh: health and charts always, the table when not live. */
  async function tick() {
    if (!state.running) return;
    clearTimeout(state.tickTimer);
    state.lastTick = Date.now();
    // Tasks every time: expired ones leave without an event.
    const jobs = [call('/api/mcp/sessions/health').then(setHealth), refreshCharts(), refreshClients(), refreshTasks(), refreshUpstreams()];
    if (!state.wsLive) {
      jobs.push(loadPage());
      if (state.detailId) jobs.push(fetchDetail());
    }
    await Promise.allSettled(jobs);
    if (state.running && !state.ws && !state.wsRetryTimer) scheduleWsRetry();
    scheduleTick();
  }

  function onVisibilityChange() {
    if (!state.running) return;
    const since = Date.now() - state.lastTick;
    const interval = pollInterval();
    if (since >= interval) tick();
    else scheduleTick(interval - since);
    if (document.visibilityState === 'visible' && !state.ws) {
      // come back quickly to live mode
      state.wsAttempt = 0;
      connectWs();
    }
  }

  // ------------------------------------------------------------ sign in / out
  function showSignIn(message) {
    byId('signin').hidden = false;
    byId('main').hidden = true;
    tid('mode').hidden = true;
    tid('stale-banner').hidden = true;
    byId('signout').hidden = true;
    const err = tid('signin-error');
    err.textContent = message || '';
    err.hidden = !message;
    const input = tid('signin-token');
    input.setAttribute('aria-invalid', message ? 'true' : 'false');
    input.focus();
  }

  function showDashboard() {
    byId('signin').hidden = true;
    byId('main').hidden = false;
    tid('mode').hidden = false;
    byId('signout').hidden = false;
  }

  async function onSignInSubmit(ev) {
    ev.preventDefault();
    const input = tid('signin-token');
    const button = tid('signin-submit');
    const token = input.value.trim();
    if (!token) {
      showSignIn('Enter the admin token.');
      return;
    }
    button.disabled = true;
    setText(button, 'Signing in…');
    try {
      const health = await api('/api/mcp/sessions/health', { token });
      sessionStorage.setItem(TOKEN_KEY, token);
      input.value = '';
      start(token, health);
    } catch (e) {
      if (e instanceof AuthError) showSignIn('That token was refused (401 Unauthorized). Check the admin token and try again.');
      else if (e instanceof NetError) showSignIn('Cannot reach the sessiongate server. Is it running?');
      else showSignIn(`Sign-in failed: ${e.message}`);
    } finally {
      button.disabled = false;
      setText(button, 'Sign in');
    }
  }

  function stop() {
    state.running = false;
    clearTimeout(state.tickTimer);
    clearTimeout(state.wsRetryTimer);
    clearTimeout(state.detailFetchTimer);
    clearInterval(state.clockTimer);
    state.wsRetryTimer = 0;
    state.detailFetchTimer = 0;
    const ws = state.ws;
    state.ws = null;
    state.wsLive = false;
    if (ws) ws.close(1000, 'sign out');
  }

  function signOut(message) {
    stop();
    closeDetail();
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.sessions = new Map();
    state.order = [];
    state.pageLoaded = false;
    state.health = null;
    state.clients = null;
    state.tasks = new Map();
    state.taskOrder = [];
    state.taskCounts = null;
    state.taskEvents = [];
    state.upstreams = null;
    rowViews.clear();
    taskViews.clear();
    byId('clients-body').replaceChildren();
    byId('tasks-body').replaceChildren();
    renderUpstreams();
    byId('sessions-body').replaceChildren();
    showSignIn(message);
  }

  function start(token, health) {
    state.token = token;
    state.running = true;
    state.offline = false;
    state.wsAttempt = 0;
    state.firstRender = { health: false, page: false, done: false };
    showDashboard();
    updateMode();
    dirty.pager = true;
    const first = [health ? Promise.resolve(setHealth(health)) : call('/api/mcp/sessions/health').then(setHealth), loadPage()];
    connectWs();
    state.lastTick = Date.now();
    scheduleTick();
    // The charts' queries wait until the cards and the first page are in.
    Promise.allSettled(first).then(() => {
      if (state.running && state.token === token) {
        refreshCharts();
        refreshClients();
        refreshTasks();
        refreshUpstreams();
      }
    });
    state.clockTimer = setInterval(() => {
      if (state.offline) return; // stale data: idle clocks stand still
      dirty.clock = true;
      schedule();
    }, 1000);
  }

  // ------------------------------------------------------------ theme
  const THEMES = ['auto', 'light', 'dark'];
  const THEME_HELP = {
    auto: "Colour theme: auto follows the system's light or dark setting.",
    light: 'Colour theme: light, whatever the system says.',
    dark: 'Colour theme: dark, whatever the system says.',
  };

  function applyTheme(theme) {
    const root = document.documentElement;
    if (theme === 'light' || theme === 'dark') root.dataset.theme = theme;
    else delete root.dataset.theme;
    const button = byId('theme-toggle');
    const name = theme === 'auto' ? 'auto (system)' : theme;
    const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    setText(byId('theme-name'), name);
    button.title = `${THEME_HELP[theme]} Click for ${next === 'auto' ? 'auto (system)' : next}.`;
    button.setAttribute('aria-label', `Colour theme: ${name}. Click for ${next === 'auto' ? 'auto (system)' : next}.`);
  }

  function currentTheme() {
    try {
      return localStorage.getItem(THEME_KEY) || 'auto';
    } catch {
      return 'auto';
    }
  }

  // ------------------------------------------------------------ misc UI
  let toastTimer = 0;
  function toast(message) {
    const t = byId('toast');
    t.textContent = message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (t.hidden = true), 4000);
  }

  function wire() {
    byId('signin-form').addEventListener('submit', onSignInSubmit);
    byId('signout').addEventListener('click', () => signOut(''));
    byId('theme-toggle').addEventListener('click', () => {
      const next = THEMES[(THEMES.indexOf(currentTheme()) + 1) % THEMES.length];
      try {
        localStorage.setItem(THEME_KEY, next);
      } catch {
        // private mode: the choice lasts until reload
      }
      applyTheme(next);
    });
    byId('filters').addEventListener('submit', (ev) => ev.preventDefault());
    byId('f-status').addEventListener('change', (ev) => {
      state.status = ev.target.value;
      goToOffset(0);
    });
    byId('task-filters').addEventListener('submit', (ev) => ev.preventDefault());
    byId('t-status').addEventListener('change', (ev) => {
      state.taskStatus = ev.target.value;
      refreshTasks();
    });
    byId('f-client').addEventListener('change', (ev) => {
      state.client = ev.target.value;
      goToOffset(0);
    });
    byId('f-search').addEventListener('input', (ev) => {
      state.search = ev.target.value;
      dirty.search = true;
      schedule();
    });
    byId('f-limit').addEventListener('change', (ev) => {
      state.limit = Number(ev.target.value) || 50;
      try {
        localStorage.setItem(LIMIT_KEY, String(state.limit));
      } catch {
        // ignore
      }
      goToOffset(0);
    });
    byId('pg-first').addEventListener('click', () => goToOffset(0));
    byId('pg-prev').addEventListener('click', () => goToOffset(state.offset - state.limit));
    byId('pg-next').addEventListener('click', () => {
      if (state.offset + state.limit < state.total) goToOffset(state.offset + state.limit);
    });
    byId('pg-last').addEventListener('click', () => {
      if (state.total > 0) goToOffset(Math.floor((state.total - 1) / state.limit) * state.limit);
    });
    byId('sessions-body').addEventListener('click', (ev) => {
      const tr = ev.target.closest('tr[data-session-id]');
      if (tr) openDetail(tr.dataset.sessionId);
    });
    for (const b of document.querySelectorAll('.seg[data-hours]')) {
      b.addEventListener('click', () => {
        const hours = Number(b.dataset.hours);
        if (hours === state.hours) return;
        state.hours = hours;
        for (const o of document.querySelectorAll('.seg[data-hours]')) o.setAttribute('aria-pressed', String(o === b));
        state.timeline = null;
        renderTimelineCharts();
        refreshTimeline();
      });
    }
    const dialog = byId('detail');
    byId('detail-close').addEventListener('click', closeDetail);
    dialog.addEventListener('close', onDetailClosed);
    dialog.addEventListener('click', (ev) => {
      if (ev.target === dialog) closeDetail(); // a click on the backdrop
    });
    tid('detail-terminate').addEventListener('click', terminateDetail);
    document.addEventListener('visibilitychange', onVisibilityChange);
    let resizeFrame = 0;
    const ro = new ResizeObserver(() => {
      if (resizeFrame || !state.running) return;
      resizeFrame = requestAnimationFrame(() => {
        resizeFrame = 0;
        renderCharts();
      });
    });
    for (const c of document.querySelectorAll('.chart')) ro.observe(c);
  }

  function init() {
    applyTheme(currentTheme());
    try {
      const saved = Number(localStorage.getItem(LIMIT_KEY));
      if ([25, 50, 100, 200].includes(saved)) {
        state.limit = saved;
        byId('f-limit').value = String(saved);
      }
    } catch {
      // ignore
    }
    renderClientOptions();
    wire();
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token, null);
    else showSignIn('');
  }

  init();
})();

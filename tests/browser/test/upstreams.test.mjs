// The dashboard's Upstreams panel and the request log's Upstream column, in
// headless Chromium against a private sessiongate. The first test puts a
// real stdio server behind it and kills its child; the others need states
// a real upstream does not reach on cue (down with an error, several at
// once), so they answer GET /api/mcp/upstreams and the live socket in the
// page (as the live protocol tests of dashboard.test.mjs do) with the JSON
// the API documents.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { artifact, byTest, launch, mcpClient, openPage, PHONE, row, signIn, waitMode } from '../lib/browser.mjs';
import { Server } from '../lib/server.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** The stdio MCP server of the gateway's Rust tests. */
const FIXTURE = fileURLToPath(new URL('../../../crates/testkit/fixtures/stdio_mcp_server.py', import.meta.url));

/** Runs fn with a fresh server and page; prints the server log if it fails. */
async function withDashboard(fn, { page: pageOptions, server: serverOptions } = {}) {
  const server = await Server.start(serverOptions);
  const { context, page } = await openPage(browser, pageOptions);
  try {
    await fn({ server, page });
    assert.deepEqual(page.problems, [], 'no page errors or CSP violations');
  } catch (e) {
    console.error(`--- sessiongate log (tail) ---\n${server.logTail()}`);
    throw e;
  } finally {
    await context.close();
    await server.stop();
  }
}

const NOW = new Date().toISOString();

/** Reports as GET /api/mcp/upstreams lists them. */
function upstream(name, extra = {}) {
  return {
    name,
    transport: 'stdio',
    mode: 'per-session',
    status: 'up',
    processes: 3,
    restarts: 2,
    last_error: null,
    last_error_at: null,
    sessions_mapped: 3,
    requests: 120,
    errors: 4,
    p50_ms: 1.25,
    p99_ms: 9.5,
    ...extra,
  };
}

const SEARCH_DOWN = {
  transport: 'streamable-http',
  mode: null,
  status: 'down',
  processes: 0,
  restarts: 0,
  last_error: 'connection refused: http://127.0.0.1:9/mcp (the upstream could not be reached at all)',
  last_error_at: NOW,
  sessions_mapped: 0,
  requests: 0,
  errors: 0,
  p50_ms: null,
  p99_ms: null,
};

function health() {
  return {
    status_breakdown: { active: 0, disconnected: 0, total: 0 },
    age_distribution: { healthy: 0, aging: 0, stale: 0 },
    connection_health: { avg_duration_seconds: 0, sessions_per_hour: 0, disconnect_rate_percent: 0, total_sessions_24h: 0 },
    recent_activity: [],
    timestamp: NOW,
    stateless_clients: { active: 0, total_24h: 0 },
    session_timeout: 300,
  };
}

/** Answers GET /api/mcp/upstreams with whatever list() gives at the time. */
async function serveUpstreams(page, list) {
  let fetched = 0;
  await page.route(/\/api\/mcp\/upstreams$/, (route) => {
    fetched += 1;
    return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ upstreams: list() }) });
  });
  return () => fetched;
}

const upstreamRow = (page, name) => page.locator(`[data-testid="upstream-row"][data-upstream="${name}"]`);
const cell = (page, name, id) => upstreamRow(page, name).locator(`[data-testid="${id}"]`);

async function waitStatus(page, name, status, timeout = 5000) {
  await page.waitForFunction(
    ([n, s]) => document.querySelector(`[data-testid="upstream-row"][data-upstream="${n}"]`)?.dataset.status === s,
    [name, status],
    { timeout },
  );
}

test('upstreams: a real stdio server behind the gateway, its child killed: the restart shows live and the log names it', () =>
  withDashboard(
    async ({ server, page }) => {
      await signIn(page, server);
      await waitMode(page, 'live');
      await waitStatus(page, 'fx', 'up', 10_000);
      assert.equal(await cell(page, 'fx', 'upstream-transport').textContent(), 'stdio · per-session');
      assert.equal(await cell(page, 'fx', 'upstream-restarts').textContent(), '0');

      const c = await mcpClient(server, 'gateway-browser-client', '1.0.0');
      try {
        const first = await c.client.callTool({ name: 'fx__pid', arguments: {} });
        const pid = Number(first.content[0].text);
        assert.ok(pid > 0, `the child's pid: ${first.content[0].text}`);
        process.kill(pid, 'SIGKILL');
        const healed = await c.client.callTool({ name: 'fx__echo', arguments: { text: 'after the kill' } });
        assert.equal(healed.content[0].text, 'after the kill', 'the same session goes on');
        await page.waitForFunction(
          () => document.querySelector('[data-upstream="fx"] [data-testid="upstream-restarts"]')?.textContent === '1',
          null,
          { timeout: 5000 },
        );

        // The request log is written in batches: the detail shows what is
        // written when it opens, so open it once both calls are.
        const deadline = Date.now() + 10_000;
        for (;;) {
          const res = await fetch(`${server.baseUrl}/api/mcp/sessions/${c.sessionId}`, {
            headers: { authorization: `Bearer ${server.adminToken}` },
          });
          const { requests = [] } = await res.json();
          if (requests.filter((r) => r.method === 'tools/call').length === 2) break;
          assert.ok(Date.now() < deadline, `both calls logged: ${JSON.stringify(requests)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        await row(page, c.sessionId).waitFor({ timeout: 5000 });
        await row(page, c.sessionId).locator('[data-testid="row-client"]').click();
        await byTest(page, 'detail').waitFor({ state: 'visible' });
        await page.waitForFunction(
          () => [...document.querySelectorAll('[data-testid="detail-request"]')].filter((tr) => tr.textContent.includes('tools/call')).length === 2,
          null,
          { timeout: 5000 },
        );
        const upstreams = await page.$$eval('[data-testid="detail-request"]', (trs) =>
          trs
            .filter((tr) => tr.children[1].textContent === 'tools/call')
            .map((tr) => tr.querySelector('[data-testid="detail-request-upstream"]').textContent),
        );
        assert.deepEqual(upstreams, ['fx', 'fx']);
      } finally {
        await c.close();
      }
    },
    { server: { args: ['--stdio', `fx=python3 ${FIXTURE}`] } },
  ));

test('upstreams: hidden without any; the request log names the upstream of each row', () =>
  withDashboard(async ({ server, page }) => {
    const listed = page.waitForResponse((r) => /\/api\/mcp\/upstreams$/.test(r.url()));
    await signIn(page, server);
    await waitMode(page, 'live');
    const response = await listed;
    assert.deepEqual(await response.json(), { upstreams: [] });
    assert.equal(await byTest(page, 'upstreams-panel').isVisible(), false, 'no panel without upstreams');

    const c = await mcpClient(server, 'upstream-log-client', '1.0.0');
    try {
      await c.client.callTool({ name: 'echo', arguments: { text: 'relayed' } });
      // The real rows, with one marked as a gateway writes it for a relayed call.
      await page.route(new RegExp(`/api/mcp/sessions/${c.sessionId}$`), async (route) => {
        const real = await route.fetch();
        const body = await real.json();
        body.requests = body.requests.map((r) => (r.method === 'tools/call' ? { ...r, upstream: 'files' } : r));
        return route.fulfill({ response: real, json: body });
      });
      await row(page, c.sessionId).waitFor({ timeout: 3000 });
      await row(page, c.sessionId).locator('[data-testid="row-client"]').click();
      await byTest(page, 'detail').waitFor({ state: 'visible' });
      await page.waitForFunction(
        () => [...document.querySelectorAll('[data-testid="detail-request"]')].some((tr) => tr.textContent.includes('tools/call')),
        null,
        { timeout: 5000 },
      );
      const cells = await page.$$eval('[data-testid="detail-request"]', (trs) =>
        trs.map((tr) => [tr.children[1].textContent, tr.querySelector('[data-testid="detail-request-upstream"]').textContent]),
      );
      assert.deepEqual(
        cells.find(([method]) => method === 'tools/call'),
        ['tools/call', 'files'],
      );
      assert.deepEqual(
        cells.find(([method]) => method === 'initialize'),
        ['initialize', '–'],
        'a row the server answered itself names no upstream',
      );
      const headers = await page.$$eval('[data-testid="detail-requests"] th', (ths) => ths.map((th) => th.textContent));
      assert.ok(headers.includes('Upstream'), `${headers}`);
    } finally {
      await c.close();
    }
  }));

test('upstreams: name, transport, status badge, processes, restarts, sessions, latency and last error, patched live by upstream events', () =>
  withDashboard(async ({ server, page }) => {
    const list = [upstream('files'), upstream('search', SEARCH_DOWN)];
    await serveUpstreams(page, () => list);
    const sockets = [];
    await page.routeWebSocket(/\/api\/mcp\/ws\//, (ws) => {
      sockets.push(ws);
      ws.send(JSON.stringify({ type: 'snapshot', health: health(), sessions: [], total: 0, upstreams: list, timestamp: NOW }));
    });
    await signIn(page, server);
    await waitMode(page, 'live');
    await byTest(page, 'upstreams-panel').waitFor({ state: 'visible' });
    assert.deepEqual(
      await page.$$eval('[data-testid="upstream-row"]', (trs) => trs.map((tr) => tr.dataset.upstream)),
      ['files', 'search'],
      'in configuration order',
    );
    assert.equal(await cell(page, 'files', 'upstream-name').textContent(), 'files');
    assert.equal(await cell(page, 'files', 'upstream-transport').textContent(), 'stdio · per-session');
    assert.equal(await cell(page, 'files', 'upstream-status').textContent(), 'up');
    assert.equal(await cell(page, 'files', 'upstream-processes').textContent(), '3');
    assert.equal(await cell(page, 'files', 'upstream-restarts').textContent(), '2');
    assert.equal(await cell(page, 'files', 'upstream-sessions').textContent(), '3');
    assert.equal(await cell(page, 'files', 'upstream-latency').textContent(), '1.25 ms / 9.5 ms');
    assert.equal(await cell(page, 'files', 'upstream-error').isVisible(), false, 'no error, no text');
    assert.equal(await cell(page, 'search', 'upstream-transport').textContent(), 'streamable-http');
    assert.equal(await cell(page, 'search', 'upstream-status').textContent(), 'down');
    assert.equal(await cell(page, 'search', 'upstream-latency').textContent(), '– / –');
    assert.equal(await cell(page, 'search', 'upstream-error').textContent(), SEARCH_DOWN.last_error);
    assert.equal(await byTest(page, 'upstreams-summary').textContent(), '1 up · 0 degraded · 1 down');
    // The badges differ in colour, not only in words.
    const colours = await Promise.all(
      ['files', 'search'].map((n) => cell(page, n, 'upstream-status').evaluate((b) => getComputedStyle(b).color)),
    );
    assert.notEqual(colours[0], colours[1], 'up and down badges look different');

    const ws = sockets.at(-1);
    const crashed = upstream('files', {
      status: 'down',
      processes: 0,
      last_error: 'the child exited with status 1; last stderr line: Error: Cannot find module',
      last_error_at: NOW,
    });
    ws.send(JSON.stringify({ type: 'upstream_down', upstream: 'files', error: crashed.last_error, at: NOW, report: crashed, timestamp: NOW }));
    await waitStatus(page, 'files', 'down');
    assert.equal(await cell(page, 'files', 'upstream-error').textContent(), crashed.last_error);
    assert.equal(await cell(page, 'files', 'upstream-processes').textContent(), '0');
    assert.equal(await byTest(page, 'upstreams-summary').textContent(), '0 up · 0 degraded · 2 down');

    const restarted = upstream('files', { status: 'degraded', restarts: 3, last_error: crashed.last_error, last_error_at: NOW });
    ws.send(
      JSON.stringify({ type: 'upstream_restarted', upstream: 'files', session_id: 'a'.repeat(32), reason: 'the child exited', at: NOW, report: restarted, timestamp: NOW }),
    );
    await waitStatus(page, 'files', 'degraded');
    assert.equal(await cell(page, 'files', 'upstream-restarts').textContent(), '3');
    ws.send(JSON.stringify({ type: 'upstream_up', upstream: 'search', at: NOW, report: upstream('search', { ...SEARCH_DOWN, status: 'up' }), timestamp: NOW }));
    await waitStatus(page, 'search', 'up');
    await byTest(page, 'upstreams-table').scrollIntoViewIfNeeded();
    await page.screenshot({ path: artifact('upstreams-live.png') });

    // A snapshot after a lag replaces the panel: here, no upstreams at all.
    ws.send(JSON.stringify({ type: 'lagged', missed: 3 }));
    ws.send(JSON.stringify({ type: 'snapshot', health: health(), sessions: [], total: 0, upstreams: [], timestamp: NOW }));
    await byTest(page, 'upstreams-panel').waitFor({ state: 'hidden', timeout: 5000 });
  }));

test('upstreams on a phone, without the live socket: polled, on screen without sideways scroll', () =>
  withDashboard(
    async ({ server, page }) => {
      let list = [upstream('filesystem-with-a-long-name'), upstream('search', SEARCH_DOWN)];
      const fetched = await serveUpstreams(page, () => list);
      await page.routeWebSocket(/\/api\/mcp\/ws\//, (ws) => ws.close());
      await signIn(page, server);
      await waitMode(page, 'polling', 5000);
      await byTest(page, 'upstreams-panel').waitFor({ state: 'visible' });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no sideways page scroll (${overflow} px too wide)`);
      const wrap = page.locator('.upstreams .table-wrap');
      const [scroll, client] = await wrap.evaluate((n) => [n.scrollWidth, n.clientWidth]);
      assert.ok(scroll <= client, `the upstreams table fits its box (${scroll} px in ${client} px)`);
      const width = page.viewportSize().width;
      const shown = [
        ...['upstream-name', 'upstream-status', 'upstream-restarts'].flatMap((id) => [
          ['filesystem-with-a-long-name', id],
          ['search', id],
        ]),
        ['search', 'upstream-error'],
      ];
      for (const [name, id] of shown) {
        const box = await cell(page, name, id).boundingBox();
        assert.ok(box && box.width > 0 && box.x >= 0 && box.x + box.width <= width, `${name} ${id} is on screen (${JSON.stringify(box)})`);
      }
      await byTest(page, 'upstreams-table').scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifact('upstreams-phone.png') });

      // Without events, the next poll (every 10 s while visible) brings changes.
      const before = fetched();
      list = [upstream('filesystem-with-a-long-name', { status: 'degraded', restarts: 7 }), upstream('search', SEARCH_DOWN)];
      await waitStatus(page, 'filesystem-with-a-long-name', 'degraded', 15_000);
      assert.ok(fetched() > before, 'polled again');
      assert.equal(await cell(page, 'filesystem-with-a-long-name', 'upstream-restarts').textContent(), '7');
    },
    { page: PHONE },
  ));

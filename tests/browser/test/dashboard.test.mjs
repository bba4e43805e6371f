// The web dashboard in headless Chromium, against a private sessiongate per
// test, watched while a real MCP client (the TypeScript SDK) comes and goes.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { artifact, byTest, launch, mcpClient, openPage, PHONE, DESKTOP, row, signIn, waitMode } from '../lib/browser.mjs';
import { Server, tempDir } from '../lib/server.mjs';

let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Runs fn with a fresh server and page; prints the server log if it fails. */
async function withDashboard(fn, { server: serverOptions, page: pageOptions } = {}) {
  const server = await Server.start(serverOptions);
  const { context, page } = await openPage(browser, pageOptions);
  const clients = [];
  const connect = async (...args) => {
    const c = await mcpClient(server, ...args);
    clients.push(c);
    return c;
  };
  try {
    await fn({ server, page, context, connect });
    assert.deepEqual(page.problems, [], 'no page errors or CSP violations');
  } catch (e) {
    console.error(`--- sessiongate log (tail) ---\n${server.logTail()}`);
    throw e;
  } finally {
    for (const c of clients) await c.close();
    await context.close();
    await server.stop();
  }
}

test('a wrong token is refused with a clear message; the right one signs in; sign out forgets it', () =>
  withDashboard(async ({ server, page }) => {
    await page.goto(server.baseUrl + '/');
    await byTest(page, 'signin-token').fill('not-the-admin-token-at-all');
    await byTest(page, 'signin-submit').click();
    const error = byTest(page, 'signin-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), /refused.*401/i);
    await page.screenshot({ path: artifact('signin-refused.png') });
    assert.equal(await byTest(page, 'dashboard').isVisible(), false, 'dashboard stays hidden');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'nothing stored for a refused token');

    await byTest(page, 'signin-token').fill(server.adminToken);
    await byTest(page, 'signin-submit').click();
    await byTest(page, 'dashboard').waitFor({ state: 'visible' });
    assert.equal(await error.isVisible(), false);
    await waitMode(page, 'live');
    const stored = await page.evaluate(() => Object.values(sessionStorage));
    assert.deepEqual(stored, [server.adminToken], 'token kept in sessionStorage');

    // A reload keeps the tab signed in.
    await page.reload();
    await byTest(page, 'dashboard').waitFor({ state: 'visible' });
    await waitMode(page, 'live');

    await byTest(page, 'signout').click();
    await byTest(page, 'signin').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'sign out clears the token');
    assert.equal(await byTest(page, 'mode').isVisible(), false);

    // A stale token in the tab (e.g. the server's token changed) sends the page back to sign-in.
    await page.evaluate(() => sessionStorage.setItem('sessiongate.adminToken', 'stale-token-stale-token'));
    await page.reload();
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), /401/);
  }));

test('cards, idle ages and connection health show the health report', () =>
  withDashboard(async ({ server, page, connect }) => {
    const a = await connect('health-a', '1');
    await connect('health-b', '2');
    await a.transport.terminateSession();
    await signIn(page, server);
    await waitMode(page, 'live');
    const health = await server.health();
    const sb = health.status_breakdown;
    assert.deepEqual([sb.active, sb.disconnected, sb.total], [1, 1, 2]);
    await page.waitForFunction(() => document.querySelector('[data-testid="card-total"]').textContent === '2');
    assert.equal(await byTest(page, 'card-active').textContent(), '1');
    assert.equal(await byTest(page, 'card-disconnected').textContent(), '1');
    assert.equal(await byTest(page, 'card-active-percent').textContent(), '50 %');
    assert.match(await byTest(page, 'age-healthy').textContent(), /^1\b/);
    assert.equal(await byTest(page, 'conn-total').textContent(), '2');
    assert.equal(await byTest(page, 'conn-disconnect-rate').textContent(), '50 %');
    assert.equal(await page.locator('[data-testid="session-row"]').count(), 2);
  }));

test('a real MCP client: its session appears live within 1 s, echo updates its count, DELETE ends it', () =>
  withDashboard(async ({ server, page, connect }) => {
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.evaluate(() => (window.__noReload = true));

    const c = await connect('live-sdk-client', '9.9.9');
    const connectedAt = Date.now();
    const r = row(page, c.sessionId);
    await r.waitFor({ state: 'visible', timeout: 1000 });
    const appearedMs = Date.now() - connectedAt;
    console.log(`new session on page 1 after ${appearedMs} ms`);
    assert.ok(appearedMs <= 1000, `appeared after ${appearedMs} ms`);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no page reload');
    assert.equal(await r.locator('[data-testid="row-status"]').textContent(), 'active');
    assert.match(await r.locator('[data-testid="row-client"]').textContent(), /live-sdk-client\s+9\.9\.9/);
    assert.equal(await r.locator('[data-testid="row-protocol"]').textContent(), '2025-11-25');
    assert.equal(await r.locator('[data-testid="row-id"] button').getAttribute('title'), c.sessionId);
    // first page order: newest first
    assert.equal(await page.locator('[data-testid="session-row"]').first().getAttribute('data-session-id'), c.sessionId);

    const before = Number(await r.locator('[data-testid="row-requests"]').textContent());
    for (let i = 0; i < 3; i++) {
      const res = await c.client.callTool({ name: 'echo', arguments: { text: `hello ${i}` } });
      assert.equal(res.isError ?? false, false);
    }
    const expected = (await server.session(c.sessionId)).request_count;
    assert.ok(expected >= before + 3, `API count ${expected} after 3 echo calls (table had ${before})`);
    await page.waitForFunction(
      ([id, n]) => document.querySelector(`[data-testid="session-row"][data-session-id="${id}"] [data-testid="row-requests"]`)?.textContent === String(n),
      [c.sessionId, expected],
      { timeout: 5000 },
    );

    await c.transport.terminateSession();
    await page.waitForFunction(
      (id) => document.querySelector(`[data-session-id="${id}"] [data-testid="row-status"]`)?.textContent === 'disconnected',
      c.sessionId,
      { timeout: 3000 },
    );
    assert.equal(await r.locator('[data-testid="row-reason"]').textContent(), 'client_disconnect');
    assert.equal((await server.session(c.sessionId)).disconnect_reason, 'client_disconnect');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'still no page reload');
  }));

test('Chromium takes the live stream compressed (permessage-deflate) and inflates every event', () =>
  withDashboard(async ({ server, page, connect }) => {
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.evaluate(([url, token]) => {
      window.__probe = { extensions: null, types: [] };
      const ws = new WebSocket(url, ['sessiongate.v1', `bearer.${token}`]);
      ws.onopen = () => (window.__probe.extensions = ws.extensions);
      ws.onmessage = (e) => window.__probe.types.push(JSON.parse(e.data).type);
    }, [server.baseUrl.replace(/^http/, 'ws') + '/api/mcp/ws/sessions', server.adminToken]);
    await page.waitForFunction(() => window.__probe.types.includes('snapshot'));
    assert.equal(await page.evaluate(() => window.__probe.extensions), 'permessage-deflate');

    // Events in several batches, read in the one context the socket keeps.
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await connect(`deflate-client-${i}`, '1.0.0'));
    await clients[0].client.callTool({ name: 'echo', arguments: { text: 'x' } });
    for (const c of clients) await c.transport.terminateSession();
    await page.waitForFunction(
      () => window.__probe.types.filter((t) => t === 'session_disconnected').length === 3,
      null,
      { timeout: 5000 },
    );
    const types = await page.evaluate(() => window.__probe.types);
    assert.equal(types.filter((t) => t === 'session_created').length, 3, types.join(' '));
    // The dashboard's own socket read the same stream.
    for (const c of clients) {
      await page.waitForFunction(
        (id) => document.querySelector(`[data-session-id="${id}"] [data-testid="row-status"]`)?.textContent === 'disconnected',
        c.sessionId,
        { timeout: 3000 },
      );
    }
  }));

test('the detail view shows the session and its requests; Terminate ends it as admin_terminated', () =>
  withDashboard(async ({ server, page, connect }) => {
    await signIn(page, server);
    await waitMode(page, 'live');
    const c = await connect('detail-client', '3.1.4');
    await c.client.callTool({ name: 'echo', arguments: { text: 'for the log' } });
    const r = row(page, c.sessionId);
    await r.waitFor({ timeout: 2000 });
    await r.locator('[data-testid="row-client"]').click();

    const detail = byTest(page, 'detail');
    await detail.waitFor({ state: 'visible' });
    assert.equal(await byTest(page, 'detail-id').textContent(), c.sessionId);
    assert.equal(await byTest(page, 'detail-status').textContent(), 'active');
    assert.equal(await byTest(page, 'detail-client-name').textContent(), 'detail-client');
    assert.equal(await byTest(page, 'detail-client-version').textContent(), '3.1.4');
    assert.equal(await byTest(page, 'detail-reconnects').textContent(), '0');
    // the request log is written behind (≤ 100 ms); the detail refetches on the session's updates
    await page.waitForFunction(
      () => [...document.querySelectorAll('[data-testid="detail-request"]')].some((tr) => tr.textContent.includes('tools/call') && tr.textContent.includes('echo')),
      null,
      { timeout: 5000 },
    );
    const text = await byTest(page, 'detail-requests').textContent();
    assert.match(text, /initialize/);
    assert.match(text, /success/);

    // Dismissing the confirmation changes nothing.
    page.once('dialog', (d) => d.dismiss());
    await byTest(page, 'detail-terminate').click();
    await sleep(200);
    assert.equal((await server.session(c.sessionId)).status, 'active');

    page.once('dialog', (d) => {
      assert.match(d.message(), /Terminate session/);
      d.accept();
    });
    await byTest(page, 'detail-terminate').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="detail-status"]').textContent === 'disconnected', null, { timeout: 3000 });
    assert.equal(await byTest(page, 'detail-reason').textContent(), 'admin_terminated');
    assert.equal(await byTest(page, 'detail-terminate').isDisabled(), true);
    const record = await server.session(c.sessionId);
    assert.equal(record.status, 'disconnected');
    assert.equal(record.disconnect_reason, 'admin_terminated');
    await page.screenshot({ path: artifact('detail-terminated.png') });

    await byTest(page, 'detail-close').click();
    await detail.waitFor({ state: 'hidden' });
    await page.waitForFunction(
      (id) => document.querySelector(`[data-session-id="${id}"] [data-testid="row-reason"]`)?.textContent === 'admin_terminated',
      c.sessionId,
      { timeout: 3000 },
    );
    await assert.rejects(c.client.callTool({ name: 'echo', arguments: { text: 'gone' } }), 'the client is cut off');
  }));

test('keyboard: a row opens with Enter, Escape closes and gives focus back; the theme toggle cycles auto, light, dark', () =>
  withDashboard(async ({ server, page, connect }) => {
    const c = await connect('keyboard-client', '1');
    await signIn(page, server);
    await waitMode(page, 'live');
    const open = row(page, c.sessionId).locator('[data-testid="row-open"]');
    await open.focus();
    await page.keyboard.press('Enter');
    await byTest(page, 'detail').waitFor({ state: 'visible' });
    await page.keyboard.press('Escape');
    await byTest(page, 'detail').waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'row-open');

    const theme = () => page.evaluate(() => document.documentElement.dataset.theme ?? 'auto');
    assert.equal(await theme(), 'auto');
    await byTest(page, 'theme-toggle').click();
    assert.equal(await theme(), 'light');
    await byTest(page, 'theme-toggle').click();
    assert.equal(await theme(), 'dark');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(15, 18, 22)');
    await page.reload();
    await byTest(page, 'dashboard').waitFor({ state: 'visible' });
    assert.equal(await theme(), 'dark', 'the choice is remembered');
    await byTest(page, 'theme-toggle').click();
    assert.equal(await theme(), 'auto');
  }));

test('filters and paging go to the server', () =>
  withDashboard(async ({ server, page, connect }) => {
    const clients = [];
    for (let i = 0; i < 6; i++) clients.push(await connect(`pager-${i % 2 ? 'odd' : 'even'}`, String(i)));
    await clients[0].transport.terminateSession();
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 6);

    await byTest(page, 'filter-status').selectOption('disconnected');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 1);
    assert.equal(await page.locator('[data-testid="session-row"]').getAttribute('data-session-id'), clients[0].sessionId);

    await byTest(page, 'filter-status').selectOption('active');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 5);
    await byTest(page, 'filter-client').selectOption('pager-odd');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 3);

    await byTest(page, 'filter-client').selectOption('');
    await byTest(page, 'filter-status').selectOption('');
    await byTest(page, 'filter-limit').selectOption('25');
    await byTest(page, 'filter-search').fill(clients[3].sessionId.slice(0, 10));
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="session-row"]')].filter((r) => !r.hidden).length === 1);
    await byTest(page, 'filter-search').fill('');
    assert.match(await byTest(page, 'page-info').textContent(), /Page 1 of 1/);
    assert.equal(await byTest(page, 'page-next').isDisabled(), true);
  }));

test('with the WebSocket blocked the page polls, and says so', () =>
  withDashboard(async ({ server, page, connect }) => {
    let attempts = 0;
    await page.routeWebSocket(/\/api\/mcp\/ws\//, (ws) => {
      attempts += 1;
      ws.close();
    });
    const early = await connect('before-signin', '1');
    await signIn(page, server);
    await row(page, early.sessionId).waitFor({ timeout: 3000 });
    await waitMode(page, 'polling', 3000);
    await sleep(2500); // the socket is retried (with backoff) and fails again
    assert.equal(await byTest(page, 'mode').textContent(), 'polling');
    assert.ok(attempts >= 2, `socket retried (${attempts} attempts)`);

    // A session opened now shows up at the next poll (10 s while visible).
    const late = await connect('after-signin', '1');
    await row(page, late.sessionId).waitFor({ timeout: 12_000 });
    assert.equal(await byTest(page, 'mode').textContent(), 'polling');
  }));

test('live protocol: events patch rows in place; lagged is followed by a snapshot that replaces the page', () =>
  withDashboard(async ({ server, page }) => {
    const now = new Date().toISOString();
    const fake = (n, extra = {}) => ({
      session_id: n.repeat(32),
      client_type: 'Cursor',
      client_name: 'cursor-vscode',
      client_version: '1.7.0',
      client_capabilities: {},
      protocol_version: '2025-06-18',
      principal: null,
      remote_addr: '127.0.0.1:1',
      user_agent: 'x',
      connected_at: now,
      last_activity: now,
      status: 'active',
      disconnected_at: null,
      disconnect_reason: null,
      total_duration: null,
      request_count: 1,
      metadata: {},
      reconnect_count: 0,
      ...extra,
    });
    const health = (active, total) => ({
      status_breakdown: { active, disconnected: total - active, total },
      age_distribution: { healthy: active, aging: 0, stale: 0 },
      connection_health: { avg_duration_seconds: 1, sessions_per_hour: 0.1, disconnect_rate_percent: 0, total_sessions_24h: total },
      recent_activity: [],
      timestamp: now,
      stateless_clients: { active: 0, total_24h: 0 },
      session_timeout: 300,
    });
    const sockets = [];
    await page.routeWebSocket(/\/api\/mcp\/ws\//, (ws) => {
      sockets.push(ws);
      ws.send(JSON.stringify({ type: 'snapshot', health: health(2, 2), sessions: [fake('b'), fake('a')], total: 2, timestamp: now }));
    });
    await signIn(page, server);
    await waitMode(page, 'live');
    await row(page, 'a'.repeat(32)).waitFor();
    assert.equal(await page.locator('[data-testid="session-row"]').count(), 2);
    assert.equal(await byTest(page, 'card-active').textContent(), '2');
    const ws = sockets.at(-1);
    await page.evaluate(() => {
      window.__rowA = document.querySelector(`[data-session-id="${'a'.repeat(32)}"]`);
    });

    ws.send(JSON.stringify({ type: 'session_updated', session: fake('a', { request_count: 42 }), timestamp: now }));
    await page.waitForFunction((id) => document.querySelector(`[data-session-id="${id}"] [data-testid="row-requests"]`).textContent === '42', 'a'.repeat(32));
    assert.equal(await page.evaluate(() => window.__rowA.isConnected), true, 'the row was patched, not rebuilt');

    ws.send(JSON.stringify({ type: 'session_created', session: fake('c'), timestamp: now }));
    await page.waitForFunction(() => document.querySelector('[data-testid="session-row"]').dataset.sessionId === 'c'.repeat(32));
    ws.send(JSON.stringify({ type: 'session_disconnected', session: fake('b', { status: 'disconnected', disconnect_reason: 'timeout', disconnected_at: now, total_duration: 0 }), reason: 'timeout', timestamp: now }));
    await page.waitForFunction((id) => document.querySelector(`[data-session-id="${id}"] [data-testid="row-reason"]`).textContent === 'timeout', 'b'.repeat(32));
    ws.send(JSON.stringify({ type: 'client_activity', client: { client_key: 'k' }, timestamp: now }));
    ws.send(JSON.stringify({ type: 'health_update', data: health(9, 12) }));
    await page.waitForFunction(() => document.querySelector('[data-testid="card-active"]').textContent === '9');

    ws.send(JSON.stringify({ type: 'lagged', missed: 7 }));
    ws.send(JSON.stringify({ type: 'snapshot', health: health(1, 1), sessions: [fake('d')], total: 1, timestamp: now }));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 1);
    assert.equal(await page.locator('[data-testid="session-row"]').getAttribute('data-session-id'), 'd'.repeat(32));
    assert.equal(await byTest(page, 'mode').textContent(), 'live');

    // A session that ended before its creation was reported still shows up, in order.
    const later = new Date(Date.now() + 1000).toISOString();
    ws.send(JSON.stringify({ type: 'session_disconnected', session: fake('e', { connected_at: later, status: 'disconnected', disconnect_reason: 'client_disconnect', disconnected_at: later, total_duration: 0 }), reason: 'client_disconnect', timestamp: later }));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 2);
    assert.equal(await page.locator('[data-testid="session-row"]').first().getAttribute('data-session-id'), 'e'.repeat(32));
    assert.equal(await row(page, 'e'.repeat(32)).locator('[data-testid="row-status"]').textContent(), 'disconnected');

    // the socket closes: polling (the real, empty server), then live again on the retried socket
    ws.close();
    await waitMode(page, 'polling', 3000);
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 0);
    await waitMode(page, 'live', 5000);
    assert.ok(sockets.length >= 2, 'the socket was retried');
  }));

test('charts: sessions over time, requests per second, tool latency and requests by tool (or "no data")', () =>
  withDashboard(async ({ server, page, connect }) => {
    const c = await connect('chart-client', '1');
    for (let i = 0; i < 3; i++) await c.client.callTool({ name: 'echo', arguments: { text: `chart ${i}` } });
    const usage = await server.admin('/api/mcp/usage/summary?days=1');
    if (usage.status === 200) {
      // the request log is written behind; wait for the three calls
      const deadline = Date.now() + 5000;
      let u = usage.body;
      while ((u.by_tool?.echo?.count ?? 0) < 3 && Date.now() < deadline) {
        await sleep(100);
        u = (await server.admin('/api/mcp/usage/summary?days=1')).body;
      }
    }
    await signIn(page, server);
    await waitMode(page, 'live');
    const charts = ['chart-active', 'chart-rps', 'chart-latency', 'chart-tools'];
    await page.waitForFunction(
      (ids) => ids.every((id) => document.querySelector(`[data-testid="${id}"] svg, [data-testid="${id}"] .nodata`)),
      charts,
    );
    if (usage.status === 404) {
      // the server has no analytics yet: every chart says so
      for (const id of charts) assert.match(await byTest(page, id).textContent(), /No data/);
      return;
    }
    assert.equal(usage.status, 200, JSON.stringify(usage.body));
    for (const id of ['chart-active', 'chart-rps']) {
      assert.equal(await page.locator(`[data-testid="${id}"] svg path.line`).count() > 0, true, `${id} draws a line`);
    }
    assert.match(await page.locator('[data-testid="chart-tools"] svg').textContent(), /echo/);
    assert.match(await page.locator('[data-testid="chart-tools"] svg').getAttribute('aria-label'), /echo 3\b/);
    assert.match(await page.locator('[data-testid="chart-latency"] svg').getAttribute('aria-label'), /echo p50 .* p95 .* p99/);
    assert.match(await byTest(page, 'latency-overall').textContent(), /p50 .* p95 .* p99/);

    // the range switch asks for 24 hours
    const asked = page.waitForRequest((r) => r.url().includes('/api/mcp/sessions/timeline?hours=24'));
    await byTest(page, 'range-24h').click();
    await asked;
    assert.equal(await byTest(page, 'range-24h').getAttribute('aria-pressed'), 'true');
    assert.equal(await byTest(page, 'range-1h').getAttribute('aria-pressed'), 'false');
    await page.waitForFunction(() => document.querySelector('[data-testid="chart-active"] svg path.line'));
  }));

test('charts say "no data" while the server answers their endpoints with 404', () =>
  withDashboard(async ({ server, page }) => {
    await page.route(/\/api\/mcp\/(analytics|usage\/summary|sessions\/timeline)\b/, (route) =>
      route.fulfill({ status: 404, contentType: 'application/json', body: '{"detail":"Not Found"}' }),
    );
    await signIn(page, server);
    await waitMode(page, 'live');
    for (const id of ['chart-active', 'chart-rps', 'chart-latency', 'chart-tools']) {
      await page.locator(`[data-testid="${id}"] .nodata`).waitFor();
      assert.match(await byTest(page, id).textContent(), /No data/);
    }
    // the rest of the page works regardless
    assert.equal(await byTest(page, 'card-total').textContent(), '0');
    assert.equal(await byTest(page, 'mode').textContent(), 'live');
  }));

test('the badge says offline when the server goes away', () =>
  withDashboard(async ({ server, page }) => {
    await signIn(page, server);
    await waitMode(page, 'live');
    await server.stop();
    await waitMode(page, 'offline', 5000);
  }));

test('screenshots of the main view: light and dark, desktop and phone', async () => {
  const server = await Server.start();
  const clients = [];
  try {
    const names = [
      ['claude-code', '2.1.3'],
      ['cursor-vscode', '1.7.0'],
      ['windsurf-client', '1.12.4'],
      ['my-internal-agent', '1.0.0'],
    ];
    for (const [name, version] of names) {
      const c = await mcpClient(server, name, version);
      clients.push(c);
      await c.client.callTool({ name: 'echo', arguments: { text: name } });
    }
    await clients[3].transport.terminateSession();
    for (const [label, device] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ]) {
      for (const colorScheme of ['light', 'dark']) {
        const { context, page } = await openPage(browser, { ...device, colorScheme });
        try {
          await signIn(page, server);
          await waitMode(page, 'live');
          await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 4);
          await page.waitForFunction(() => document.querySelectorAll('.chart .nodata, .chart svg').length === 4);
          if (label === 'phone') {
            const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
            assert.ok(overflow <= 0, `no sideways page scroll on a phone (${overflow} px too wide)`);
          }
          const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
          const dark = bg.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0) < 200;
          assert.equal(dark, colorScheme === 'dark', `${colorScheme} theme (body ${bg})`);
          await page.screenshot({ path: artifact(`dashboard-${label}-${colorScheme}.png`), fullPage: true });
          assert.deepEqual(page.problems, []);
        } finally {
          await context.close();
        }
      }
    }
  } catch (e) {
    console.error(`--- sessiongate log (tail) ---\n${server.logTail()}`);
    throw e;
  } finally {
    for (const c of clients) await c.close();
    await server.stop();
  }
});

// ---------------------------------------------------------------- issue 18: what a newcomer tripped on

test('overview first: cards and charts come before the session table, on the first screen of a desktop', () =>
  withDashboard(async ({ server, page, connect }) => {
    await connect('overview-client', '1');
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.waitForFunction(() => document.querySelectorAll('.chart .nodata, .chart svg').length === 4);
    const top = (id) => byTest(page, id).evaluate((n) => n.getBoundingClientRect().top + window.scrollY);
    const viewport = page.viewportSize().height;
    const table = await top('sessions-table');
    for (const id of ['card-active', 'chart-active', 'chart-rps']) {
      const y = await top(id);
      assert.ok(y < table, `${id} (at ${y} px) comes before the session table (at ${table} px)`);
      assert.ok(y < viewport, `${id} (at ${y} px) is on the first screen (${viewport} px)`);
    }
    for (const id of ['chart-latency', 'chart-tools']) assert.ok((await top(id)) < table, `${id} comes before the session table`);
    await page.screenshot({ path: artifact('overview-desktop.png') });
  }));

test('phone: the session table shows client, status and idle without sideways scroll', () =>
  withDashboard(
    async ({ server, page, connect }) => {
      const a = await connect('a-rather-long-client-name-for-a-phone', '12.34.56');
      const b = await connect('phone-client', '1');
      await b.transport.terminateSession();
      await signIn(page, server);
      await waitMode(page, 'live');
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 2);
      const wrap = page.locator('.sessions .table-wrap');
      const [scroll, client] = await wrap.evaluate((n) => [n.scrollWidth, n.clientWidth]);
      assert.ok(scroll <= client, `the table fits its box (${scroll} px in ${client} px)`);
      const width = page.viewportSize().width;
      for (const id of [a.sessionId, b.sessionId]) {
        for (const cell of ['row-id', 'row-client', 'row-status', 'row-idle']) {
          const box = await row(page, id).locator(`[data-testid="${cell}"]`).boundingBox();
          assert.ok(box && box.width > 0 && box.x >= 0 && box.x + box.width <= width, `${cell} is on screen (${JSON.stringify(box)})`);
        }
      }
      assert.equal(await row(page, b.sessionId).locator('[data-testid="row-status"]').isVisible(), true);
      await row(page, a.sessionId).scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifact('sessions-phone.png') });
    },
    { page: PHONE },
  ));

test('connection lost: a banner says since when, numbers grey out and idle clocks stop; back to normal when the server returns', async () => {
  const dir = tempDir();
  const adminToken = `browser-test-stale-${Date.now()}`;
  let server = await Server.start({ dataDir: dir, adminToken });
  const { context, page } = await openPage(browser);
  let client;
  try {
    client = await mcpClient(server, 'stale-client', '1');
    await signIn(page, server);
    await waitMode(page, 'live');
    await row(page, client.sessionId).waitFor();
    assert.equal(await byTest(page, 'stale-banner').isVisible(), false);
    const liveAt = await page.evaluate(() => Date.now());

    const listen = new URL(server.baseUrl).host;
    await server.stop();
    await waitMode(page, 'offline', 15_000);
    const banner = byTest(page, 'stale-banner');
    await banner.waitFor({ state: 'visible' });
    const shownAt = await page.evaluate(() => Date.now());
    const text = await banner.textContent();
    assert.match(text, /^Connection lost — showing data from (.+)\. Retrying…$/);
    const since = text.match(/from (.+)\. Retrying/)[1];
    // the last answer came between the page going live and the banner showing
    const candidates = await page.evaluate(([from, to]) => {
      const f = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
      const out = [];
      for (let t = from - 1000; t <= to + 1000; t += 500) out.push(f.format(new Date(t)));
      return out;
    }, [liveAt, shownAt]);
    assert.ok(candidates.includes(since), `"${since}" is a time of day between going live and losing the server`);
    const opacity = await byTest(page, 'card-total').evaluate((n) => Number(getComputedStyle(n).opacity));
    assert.ok(opacity < 1, `numbers are greyed (opacity ${opacity})`);
    const idle = () => page.locator('[data-testid="row-idle"]').first().textContent();
    const uptimeBefore = await page.locator('[data-testid="row-uptime"]').first().textContent();
    const idleBefore = await idle();
    await sleep(2500);
    assert.equal(await idle(), idleBefore, 'the idle clock stands still');
    assert.equal(await page.locator('[data-testid="row-uptime"]').first().textContent(), uptimeBefore, 'the uptime clock stands still');
    await page.screenshot({ path: artifact('stale-desktop.png') });

    // the same server comes back where it was
    server = await Server.start({ dataDir: dir, adminToken, listen });
    await waitMode(page, 'live', 40_000);
    await banner.waitFor({ state: 'hidden' });
    assert.equal(await page.locator('main.stale').count(), 0, 'no longer greyed');
    assert.deepEqual(page.problems, []);
  } catch (e) {
    console.error(`--- sessiongate log (tail) ---\n${server.logTail()}`);
    throw e;
  } finally {
    await client?.close();
    await context.close();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('one time format in the reader\'s locale, and durations with their real precision', () =>
  withDashboard(
    async ({ server, page, connect }) => {
      const c = await connect('time-client', '1');
      await signIn(page, server);
      await waitMode(page, 'live');
      const real = await server.admin(`/api/mcp/sessions/${c.sessionId}`);
      const started = new Date(Date.now() - 60_000).toISOString();
      const requests = [0.0042, 0.4, 3.25, 250, 2500, 90_000].map((ms, i) => ({
        started_at: started,
        method: 'tools/call',
        tool_name: `t${i}`,
        duration_ms: ms,
        status: 'success',
      }));
      await page.route(new RegExp(`/api/mcp/sessions/${c.sessionId}$`), (route) =>
        route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ ...real.body, requests, summary: { errors: 0, avg_duration_ms: 0.4 } }) }),
      );
      await row(page, c.sessionId).locator('[data-testid="row-client"]').click();
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="detail-request"]').length === 6);
      const durations = await page.locator('[data-testid="detail-request-duration"]').allTextContents();
      assert.deepEqual(durations, ['4.2 µs', '400 µs', '3.25 ms', '250 ms', '2.5 s', '1.5 min']);
      assert.equal(await byTest(page, 'detail-avg').textContent(), '400 µs');

      const fmt = (iso) =>
        page.evaluate((t) => new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(t)), iso);
      const time = await page.locator('[data-testid="detail-request-time"]').first().textContent();
      assert.equal(time, await fmt(started));
      assert.match(time, /^\d{2}:\d{2}:\d{2} (AM|PM)$/, 'en-US shows a 12-hour clock');
      const connected = await byTest(page, 'detail-connected').textContent();
      assert.ok(connected.endsWith(await fmt(real.body.session.connected_at)), `same time format in "${connected}"`);
    },
    { page: { locale: 'en-US', timezoneId: 'UTC' } },
  ));

test('a favicon and no 404 while the page loads; the theme control says what it does', () =>
  withDashboard(async ({ server, page }) => {
    const missing = [];
    page.on('response', (r) => {
      if (r.status() === 404) missing.push(r.url());
    });
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.waitForFunction(() => document.querySelectorAll('.chart .nodata, .chart svg').length === 4);
    await sleep(300);
    assert.deepEqual(missing, [], 'nothing the page asked for is missing');
    const icon = await fetch(`${server.baseUrl}/favicon.ico`);
    assert.equal(icon.status, 200);
    assert.equal(icon.headers.get('content-type'), 'image/svg+xml');
    assert.match(await icon.text(), /^<svg/);
    assert.equal(await page.locator('link[rel="icon"]').getAttribute('href'), '/favicon.svg');

    const toggle = byTest(page, 'theme-toggle');
    assert.equal((await toggle.textContent()).trim(), 'Theme: auto (system)');
    assert.match(await toggle.getAttribute('title'), /follows the system/);
    assert.match(await toggle.getAttribute('aria-label'), /auto \(system\)\. Click for light/);
    await toggle.click();
    assert.equal((await toggle.textContent()).trim(), 'Theme: light');
    assert.match(await toggle.getAttribute('aria-label'), /Click for dark/);
  }));

test('after a Terminate the cards follow the table at once', () =>
  withDashboard(async ({ server, page, connect }) => {
    const c = await connect('terminate-cards', '1');
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.waitForFunction(() => document.querySelector('[data-testid="card-active"]').textContent === '1');
    await row(page, c.sessionId).locator('[data-testid="row-client"]').click();
    await byTest(page, 'detail').waitFor({ state: 'visible' });
    page.once('dialog', (d) => d.accept());
    const asked = [];
    page.on('request', (r) => asked.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await byTest(page, 'detail-terminate').click();
    await page.waitForFunction(
      () => document.querySelector('[data-testid="card-active"]').textContent === '0' && document.querySelector('[data-testid="card-disconnected"]').textContent === '1',
      null,
      { timeout: 1000 },
    );
    assert.equal(await row(page, c.sessionId).locator('[data-testid="row-status"]').textContent(), 'disconnected');
    // the health report was asked for right after the DELETE, not left to the next update
    const del = asked.indexOf(`DELETE /api/mcp/sessions/${c.sessionId}`);
    assert.ok(del >= 0 && asked.slice(del).includes('GET /api/mcp/sessions/health'), asked.join(', '));
  }));

/** Waits until the request log (written behind) holds `count` tools/call requests today. */
async function loggedCalls(server, count) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const { body } = await server.admin('/api/mcp/usage/summary?days=1');
    const calls = Object.values(body.by_tool ?? {}).reduce((n, t) => n + t.count, 0);
    if (calls >= count) return body;
    if (Date.now() > deadline) throw new Error(`the request log holds ${calls} calls, not ${count}: ${JSON.stringify(body)}`);
    await sleep(100);
  }
}

test('unknown tools that clients tried are listed apart, not charted as tools; errors are their own bars', () =>
  withDashboard(async ({ server, page, connect }) => {
    const c = await connect('unknown-tool-client', '1');
    for (let i = 0; i < 2; i++) await c.client.callTool({ name: 'echo', arguments: { text: 'ok' } });
    await c.client.callTool({ name: 'echo', arguments: {} }).catch(() => {});
    await c.client.callTool({ name: 'no_such_tool', arguments: {} }).catch(() => {});
    const usage = await loggedCalls(server, 4);
    assert.equal(usage.by_tool.no_such_tool.unknown, true, 'the API marks the name unknown');
    assert.equal(usage.by_tool.echo.unknown, undefined, 'and not a real tool');
    const echoErrors = usage.by_tool.echo.errors;

    await signIn(page, server);
    await waitMode(page, 'live');
    await page.locator('[data-testid="chart-tools"] svg').waitFor();
    const note = byTest(page, 'tools-unknown');
    await note.waitFor({ state: 'visible' });
    assert.equal(await note.textContent(), "Unknown tools tried (not in this server's catalog): no_such_tool ×1");
    assert.doesNotMatch(await byTest(page, 'chart-tools').textContent(), /no_such_tool/);
    assert.doesNotMatch(await page.locator('[data-testid="chart-latency"] svg').getAttribute('aria-label'), /no_such_tool/);
    assert.equal(
      await page.locator('[data-testid="chart-tools"] svg').getAttribute('aria-label'),
      `Requests by tool: echo ${usage.by_tool.echo.count} (${echoErrors} errors)`,
    );
    assert.equal(await page.locator('[data-testid="chart-tools"] rect.bar.s4').count(), 1, 'an errors bar');
    await byTest(page, 'chart-tools').scrollIntoViewIfNeeded();
    await page.screenshot({ path: artifact('tools-unknown-desktop.png') });
  }));

/** One stateless (2026-07-28) tools/call, as a client without a session makes it; its status and JSON body. */
async function statelessCall(server, tool, args, { name, version, capabilities = {} }) {
  const res = await fetch(server.mcpUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': tool,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: {
        name: tool,
        arguments: args,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': '2026-07-28',
          'io.modelcontextprotocol/clientInfo': { name, version },
          'io.modelcontextprotocol/clientCapabilities': capabilities,
        },
      },
    }),
  });
  return { status: res.status, body: await res.json() };
}

async function statelessEcho(server, name, version) {
  const { status, body } = await statelessCall(server, 'echo', { text: 'stateless' }, { name, version });
  assert.equal(status, 200, JSON.stringify(body));
}

test('stateless clients: a list with client, principal, requests, last seen and protocol, on desktop and phone', () =>
  withDashboard(async ({ server, page }) => {
    for (let i = 0; i < 3; i++) await statelessEcho(server, 'stateless-agent', '4.2');
    await statelessEcho(server, 'other-stateless-client', '1.0');
    await signIn(page, server);
    await waitMode(page, 'live');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="client-row"]').length === 2);
    const r = page.locator('[data-testid="client-row"][data-client-key="anonymous/stateless-agent/4.2"]');
    assert.match(await r.locator('[data-testid="client-name"]').textContent(), /stateless-agent\s+4\.2/);
    assert.equal(await r.locator('[data-testid="client-principal"]').textContent(), '–');
    assert.equal(await r.locator('[data-testid="client-requests"]').textContent(), '3');
    assert.equal(await r.locator('[data-testid="client-protocol"]').textContent(), '2026-07-28');
    const { body } = await server.admin('/api/mcp/clients');
    const seen = body.clients.find((c) => c.client_key === 'anonymous/stateless-agent/4.2').last_seen;
    const expected = await page.evaluate((t) => new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(t)), seen);
    assert.equal(await r.locator('[data-testid="client-last-seen"]').textContent(), expected);
    assert.equal(await byTest(page, 'clients-summary').textContent(), '2 clients · 4 requests');
    await byTest(page, 'clients-table').scrollIntoViewIfNeeded();
    await page.screenshot({ path: artifact('clients-desktop.png') });

    // a new stateless client shows up without a reload (the live stream's client_activity)
    await statelessEcho(server, 'late-stateless-client', '2');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="client-row"]').length === 3, null, { timeout: 5000 });

    const phone = await openPage(browser, PHONE);
    try {
      await signIn(phone.page, server);
      await waitMode(phone.page, 'live');
      await phone.page.waitForFunction(() => document.querySelectorAll('[data-testid="client-row"]').length === 3);
      const wrap = phone.page.locator('.clients .table-wrap');
      const [scroll, width] = await wrap.evaluate((n) => [n.scrollWidth, n.clientWidth]);
      assert.ok(scroll <= width, `the clients table fits a phone (${scroll} px in ${width} px)`);
      for (const cell of ['client-name', 'client-requests', 'client-last-seen']) {
        assert.equal(await phone.page.locator(`[data-testid="client-row"] [data-testid="${cell}"]`).first().isVisible(), true, `${cell} shown`);
      }
      await byTest(phone.page, 'clients-table').scrollIntoViewIfNeeded();
      await phone.page.screenshot({ path: artifact('clients-phone.png') });
      assert.deepEqual(phone.page.problems, []);
    } finally {
      await phone.context.close();
    }
  }));

// ---------------------------------------------------------------- tasks (the tasks extension)

/** A task-augmented tools/call by a stateless client that declares the tasks extension; the task's id. */
async function createTask(server, tool, args, name = 'task-client', version = '1.2') {
  const capabilities = { extensions: { 'io.modelcontextprotocol/tasks': {} } };
  const { status, body } = await statelessCall(server, tool, args, { name, version, capabilities });
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.result?.resultType, 'task', JSON.stringify(body));
  return body.result.taskId;
}

const taskRow = (page, id) => page.locator(`[data-testid="task-row"][data-task-id="${id}"]`);

/** Waits until the task's row shows `status`. */
function taskStatus(page, id, status, timeout) {
  return page.waitForFunction(
    ([i, s]) => document.querySelector(`[data-testid="task-row"][data-task-id="${i}"] [data-testid="task-status"]`)?.textContent === s,
    [id, status],
    { timeout },
  );
}

/** The API's task, once it has finished. */
async function finishedTask(server, id) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status, body } = await server.admin(`/api/mcp/tasks/${id}`);
    assert.equal(status, 200, JSON.stringify(body));
    if (!['working', 'input_required'].includes(body.status)) return body;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${body.status}`);
    await sleep(100);
  }
}

test('tasks: one created over MCP appears live, turns completed live, and a failed one shows its reason', () =>
  withDashboard(
    async ({ server, page }) => {
      await signIn(page, server);
      await waitMode(page, 'live');
      await page.waitForFunction(() => document.querySelector('[data-testid="task-count-completed"]').textContent === '0');
      assert.equal(await byTest(page, 'tasks-empty').isVisible(), true);
      // From here on the list cannot be fetched: whatever changes comes over the live stream.
      const fetched = [];
      await page.route(/\/api\/mcp\/tasks\b/, (route) => {
        fetched.push(route.request().url());
        return route.fulfill({ status: 500, contentType: 'application/json', body: '{"detail":"blocked by the test"}' });
      });
      await page.evaluate(() => (window.__noReload = true));

      const slow = await createTask(server, 'slow_compute', { seconds: 2, label: 'dash' });
      const createdAt = Date.now();
      const r = taskRow(page, slow);
      await r.waitFor({ state: 'visible', timeout: 1000 });
      console.log(`new task on the page after ${Date.now() - createdAt} ms`);
      assert.equal(await r.locator('[data-testid="task-status"]').textContent(), 'working');
      assert.match(await r.locator('[data-testid="task-client"]').textContent(), /^task-client\s+1\.2$/);
      assert.equal(await r.locator('[data-testid="task-tool"]').textContent(), 'slow_compute');
      assert.equal(await r.locator('[data-testid="task-id"]').getAttribute('title'), slow);
      assert.match(await r.locator('[data-testid="task-age"]').textContent(), /^\d(\.\d)?s$/);
      assert.equal(await byTest(page, 'task-count-working').textContent(), '1');
      assert.equal(await byTest(page, 'tasks-empty').isVisible(), false);

      await taskStatus(page, slow, 'completed', 5000);
      assert.equal((await finishedTask(server, slow)).status, 'completed');
      assert.equal(await r.locator('[data-testid="task-reason"]').isVisible(), false, 'no reason for a completed task');
      assert.equal(await byTest(page, 'task-count-working').textContent(), '0');
      assert.equal(await byTest(page, 'task-count-completed').textContent(), '1');

      const failing = await createTask(server, 'protocol_error_job', {}, 'other-task-client', '3');
      await taskStatus(page, failing, 'failed', 5000);
      const failed = await finishedTask(server, failing);
      assert.equal(failed.status, 'failed');
      assert.ok(failed.status_message, JSON.stringify(failed));
      const reason = taskRow(page, failing).locator('[data-testid="task-reason"]');
      assert.equal(await reason.isVisible(), true);
      assert.equal(await reason.textContent(), failed.status_message);
      assert.equal(await byTest(page, 'task-count-failed').textContent(), '1');
      // Newest first.
      assert.equal(await page.locator('[data-testid="task-row"]').first().getAttribute('data-task-id'), failing);
      assert.equal(await page.evaluate(() => window.__noReload), true, 'no page reload');
      await byTest(page, 'tasks-table').scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifact('tasks-desktop.png') });

      // Fetched again, the list and the counts are what the live stream made of them.
      await page.unroute(/\/api\/mcp\/tasks\b/);
      const { body } = await server.admin('/api/mcp/tasks');
      assert.deepEqual(
        [body.counts.working, body.counts.completed, body.counts.failed],
        [0, 1, 1],
      );
      await byTest(page, 'task-filter-status').selectOption('failed');
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="task-row"]').length === 1);
      assert.equal(await page.locator('[data-testid="task-row"]').getAttribute('data-task-id'), failing);
      assert.equal(await byTest(page, 'task-count-completed').textContent(), '1');
    },
    { server: { args: ['--conformance'] } },
  ));

test('tasks on a phone: client, tool, status with the reason, and age, without sideways scroll', () =>
  withDashboard(
    async ({ server, page }) => {
      const done = await createTask(server, 'slow_compute', { seconds: 0, label: 'phone' }, 'a-rather-long-task-client-name', '12.34.56');
      const failing = await createTask(server, 'protocol_error_job', {});
      await finishedTask(server, done);
      const failed = await finishedTask(server, failing);
      await signIn(page, server);
      await waitMode(page, 'live');
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="task-row"]').length === 2);
      await taskStatus(page, failing, 'failed', 1000);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no sideways page scroll (${overflow} px too wide)`);
      const wrap = page.locator('.tasks .table-wrap');
      const [scroll, client] = await wrap.evaluate((n) => [n.scrollWidth, n.clientWidth]);
      assert.ok(scroll <= client, `the tasks table fits its box (${scroll} px in ${client} px)`);
      const width = page.viewportSize().width;
      for (const id of [done, failing]) {
        for (const cell of ['task-client', 'task-tool', 'task-status', 'task-age']) {
          const box = await taskRow(page, id).locator(`[data-testid="${cell}"]`).boundingBox();
          assert.ok(box && box.width > 0 && box.x >= 0 && box.x + box.width <= width, `${cell} is on screen (${JSON.stringify(box)})`);
        }
      }
      const reason = taskRow(page, failing).locator('[data-testid="task-reason"]');
      assert.equal(await reason.textContent(), failed.status_message);
      const box = await reason.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= width, `the reason wraps on screen (${JSON.stringify(box)})`);
      for (const s of ['completed', 'failed']) assert.equal(await byTest(page, `task-count-${s}`).textContent(), '1');
      await byTest(page, 'tasks-table').scrollIntoViewIfNeeded();
      await page.screenshot({ path: artifact('tasks-phone.png') });
    },
    { server: { args: ['--conformance'] }, page: PHONE },
  ));

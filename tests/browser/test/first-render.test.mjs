// First render with 100,000 stored sessions: the time from navigation (the
// token already in the tab's sessionStorage) until the status cards and the
// first page of the table have been painted, as the page itself marks it:
// performance.now() (milliseconds since navigation start) in the animation
// frame after the one that put both in the DOM. Median of 3 loads; must be
// ≤ 1000 ms.

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { artifact, byTest, launch, openPage } from '../lib/browser.mjs';
import { seed, Server, tempDir } from '../lib/server.mjs';

const ROWS = 100_000;
const ACTIVE_PERCENT = 5;
const LOADS = 3;
const BUDGET_MS = 1000;

let browser;
let server;
let dir;

before(async () => {
  dir = tempDir('sessiongate-browser-100k-');
  const db = path.join(dir, 'seeded.db');
  const started = Date.now();
  const summary = await seed(db, { rows: ROWS, activePercent: ACTIVE_PERCENT });
  console.log(`${summary} (${Date.now() - started} ms with startup)`);
  // A long idle timeout keeps the seeded active rows (idle up to 15 min) active.
  server = await Server.start({ dataDir: dir, databaseUrl: `sqlite://${db}`, idleTimeout: '1h' });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
});

test(`first render with ${ROWS.toLocaleString("en-US")} sessions: cards and first page within ${BUDGET_MS} ms (median of ${LOADS}); paging and filters as quick`, async () => {
  const health = await server.health();
  assert.equal(health.status_breakdown.total, ROWS, 'the seeded rows are there');

  const { context, page } = await openPage(browser);
  try {
    // Sign in once; later loads find the token in sessionStorage.
    await page.goto(server.baseUrl + '/');
    await byTest(page, 'signin-token').fill(server.adminToken);
    await byTest(page, 'signin-submit').click();
    await byTest(page, 'dashboard').waitFor({ state: 'visible' });

    const figures = [];
    for (let i = 0; i < LOADS; i++) {
      const t0 = Date.now();
      await page.goto(server.baseUrl + '/');
      await page.waitForFunction(() => document.documentElement.dataset.firstRenderMs !== undefined, null, { timeout: 10_000 });
      const wall = Date.now() - t0;
      const ms = Number(await page.evaluate(() => document.documentElement.dataset.firstRenderMs));
      const shown = await page.evaluate(() => ({
        total: document.querySelector('[data-testid="card-total"]').textContent,
        active: document.querySelector('[data-testid="card-active"]').textContent,
        rows: document.querySelectorAll('[data-testid="session-row"]').length,
        nav: Math.round(performance.getEntriesByType('navigation')[0]?.responseEnd ?? -1),
      }));
      assert.equal(shown.total, ROWS.toLocaleString('en-US'));
      assert.ok(shown.rows > 0 && shown.rows <= 200, `first page rendered (${shown.rows} rows)`);
      console.log(`load ${i + 1}: first render ${ms} ms after navigation start (page HTML in at ${shown.nav} ms; ${wall} ms wall clock in the test; ${shown.rows} rows, ${shown.active} active)`);
      figures.push(ms);
    }
    await page.screenshot({ path: artifact('dashboard-100k.png') });
    const median = [...figures].sort((a, b) => a - b)[Math.floor(figures.length / 2)];
    console.log(`first render with ${ROWS.toLocaleString('en-US')} sessions: median ${median} ms (loads: ${figures.join(', ')} ms)`);
    assert.ok(median <= BUDGET_MS, `median first render ${median} ms > ${BUDGET_MS} ms`);

    // Paging and filters stay quick over the 100,000 rows (server-side).
    const firstIds = () => page.evaluate(() => [...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.sessionId).join());
    const timed = async (label, act, check) => {
      const before = await firstIds();
      const t0 = Date.now();
      await act();
      await page.waitForFunction(([prev]) => {
        const now = [...document.querySelectorAll('[data-testid="session-row"]')].map((r) => r.dataset.sessionId).join();
        return now !== '' && now !== prev;
      }, [before]);
      const ms = Date.now() - t0;
      console.log(`${label}: ${ms} ms`);
      if (check) await check();
      assert.ok(ms <= BUDGET_MS, `${label} took ${ms} ms`);
    };
    await timed('next page', () => byTest(page, 'page-next').click(), async () =>
      assert.match(await byTest(page, 'page-info').textContent(), /^Page 2 of 2,000$/),
    );
    await timed('status=active', () => byTest(page, 'filter-status').selectOption('active'), async () => {
      assert.match(await byTest(page, 'page-info').textContent(), /^Page 1 of /);
      const statuses = await page.locator('[data-testid="row-status"]').allTextContents();
      assert.ok(statuses.every((s) => s === 'active'), statuses.join());
    });
    await timed('client_type=Cursor', () => byTest(page, 'filter-client').selectOption('Cursor'), async () => {
      const clients = await page.locator('[data-testid="row-client"] .client-type').allTextContents();
      assert.ok(clients.every((s) => s === 'Cursor'), clients.join());
    });
    // Two changes, two reloads: the step ends with the second one's page
    // (all 2,000 pages; active sessions alone fill far fewer), so the next
    // step's clicks are not answered by this one's late reload.
    await timed('no filters', async () => {
      await byTest(page, 'filter-client').selectOption('');
      await byTest(page, 'filter-status').selectOption('');
    }, () => page.waitForFunction(() =>
      document.querySelector('[data-testid="page-info"]').textContent === 'Page 1 of 2,000'));
    await timed('last page (offset 99,950)', () => byTest(page, 'page-last').click(), async () => {
      assert.match(await byTest(page, 'page-info').textContent(), /^Page 2,000 of 2,000$/);
      assert.equal(await page.locator('[data-testid="session-row"]').count(), 50);
    });
    assert.deepEqual(page.problems, []);
  } catch (e) {
    console.error(`--- sessiongate log (tail) ---\n${server.logTail()}`);
    throw e;
  } finally {
    await context.close();
  }
});

// Shared helpers: start/stop the sessiongate binary, talk to its admin API, and
// record what an SDK transport puts on the wire (through its `fetch` option).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const STARTUP_TIMEOUT_MS = 60_000;

export const BUILTIN_TOOLS = ['echo', 'session_info', 'health_check', 'list_sessions'];

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export class SessiongateServer {
  constructor({ baseUrl, adminToken, logPath, dataDir, child }) {
    Object.assign(this, { baseUrl, adminToken, logPath, dataDir, child });
    this.mcpUrl = `${baseUrl}/mcp`;
  }

  /** Starts the binary; `extra` are further `serve` flags (e.g. `--conformance`). */
  static async start({ extra = [] } = {}) {
    const bin = process.env.SESSIONGATE_BIN || path.join(REPO, 'target', 'debug', 'sessiongate');
    if (!fs.existsSync(bin)) {
      throw new Error(`sessiongate binary not found at ${bin} (build it or set SESSIONGATE_BIN)`);
    }
    let lastError;
    for (let attempt = 0; attempt < 3; attempt++) {
      // a free port can be taken between probe and bind
      try {
        return await SessiongateServer.#startOnce(bin, extra);
      } catch (e) {
        lastError = e;
      }
    }
    throw lastError;
  }

  static async #startOnce(bin, extra) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiongate-node-'));
    const logPath = path.join(dataDir, 'server.log');
    const adminToken = `node-test-${randomBytes(16).toString('hex')}`;
    const port = await freePort();
    // Hermetic: no SESSIONGATE_* setting from the caller's environment leaks in.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGATE_')));
    const log = fs.openSync(logPath, 'w');
    const child = spawn(
      bin,
      [
        'serve',
        '--listen',
        `127.0.0.1:${port}`,
        '--data-dir',
        path.join(dataDir, 'data'),
        '--admin-token',
        adminToken,
        ...extra,
      ],
      { env, stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const server = new SessiongateServer({ baseUrl: `http://127.0.0.1:${port}`, adminToken, logPath, dataDir, child });
    let exited = null;
    child.on('exit', (code, signal) => (exited = { code, signal }));
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited) {
        const message = `sessiongate exited at startup (${JSON.stringify(exited)}):\n${server.logTail()}`;
        await server.stop();
        throw new Error(message);
      }
      try {
        const res = await fetch(`${server.baseUrl}/api/health`);
        await res.body?.cancel();
        if (res.ok) return server;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    const message = `sessiongate did not answer /api/health in ${STARTUP_TIMEOUT_MS} ms:\n${server.logTail()}`;
    await server.stop();
    throw new Error(message);
  }

  logTail(maxChars = 8000) {
    try {
      return fs.readFileSync(this.logPath, 'utf8').slice(-maxChars);
    } catch (e) {
      return `<cannot read ${this.logPath}: ${e}>`;
    }
  }

  async stop({ keepLog = false } = {}) {
    const { child } = this;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timedOut = await Promise.race([exited.then(() => false), sleep(15_000, undefined, { ref: false }).then(() => true)]);
      if (timedOut) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    if (!keepLog) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }

  async adminGet(p) {
    const res = await fetch(`${this.baseUrl}${p}`, {
      headers: { authorization: `Bearer ${this.adminToken}`, accept: 'application/json' },
    });
    const text = await res.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep text
    }
    return { status: res.status, body };
  }

  async adminSession(id) {
    const { status, body } = await this.adminGet(`/api/mcp/sessions/${id}`);
    if (status !== 200) throw new Error(`GET /api/mcp/sessions/${id} -> ${status}: ${JSON.stringify(body)}`);
    return body.session;
  }

  /** The session's admin record once it is no longer `active` (or the last one seen). */
  async waitDisconnected(id, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    let record = await this.adminSession(id);
    while (record.status === 'active' && Date.now() < deadline) {
      await sleep(100);
      record = await this.adminSession(id);
    }
    return record;
  }
}

/** A `fetch` for the SDK transports that records every request/response pair. */
export class Wire {
  constructor() {
    this.exchanges = [];
    this.fetch = async (input, init = {}) => {
      const request = input instanceof Request ? input : null;
      const method = (init.method ?? request?.method ?? 'GET').toUpperCase();
      const headers = Object.fromEntries(new Headers(init.headers ?? request?.headers ?? {}));
      let body = null;
      if (typeof init.body === 'string') {
        try {
          body = JSON.parse(init.body);
        } catch {
          body = init.body;
        }
      }
      const response = await fetch(input, init);
      this.exchanges.push({
        method,
        url: String(request?.url ?? input),
        requestHeaders: headers, // lower-cased by Headers
        body,
        status: response.status,
        responseHeaders: Object.fromEntries(response.headers),
        get rpcMethod() {
          return body && typeof body === 'object' ? body.method : undefined;
        },
      });
      return response;
    };
  }

  posts() {
    return this.exchanges.filter((e) => e.method === 'POST');
  }

  byRpc(method) {
    return this.posts().filter((e) => e.rpcMethod === method);
  }

  /** POSTs carrying a JSON-RPC request (id and method). */
  rpcRequests() {
    return this.posts().filter((e) => e.body && typeof e.body === 'object' && 'id' in e.body && 'method' in e.body);
  }

  mintedSessionIds() {
    return [...new Set(this.exchanges.map((e) => e.responseHeaders['mcp-session-id']).filter(Boolean))];
  }

  describe() {
    return this.exchanges
      .map((e) => `${e.method} ${e.rpcMethod ?? ''} -> ${e.status} ${JSON.stringify(e.requestHeaders)}`)
      .join('\n');
  }
}

/**
 * Starts sessiongate (with `options`, as `SessiongateServer.start`) before this file's tests
 * and stops it after them. `fixture.server` is the running server; a test wrapped in
 * `fixture.guarded` that fails has the server's log tail printed at the end.
 */
export function serverForTests(options = {}) {
  const fixture = {
    server: undefined,
    failed: false,
    async guarded(fn) {
      try {
        await fn();
      } catch (e) {
        fixture.failed = true;
        throw e;
      }
    },
  };
  before(async () => {
    fixture.server = await SessiongateServer.start(options);
  });
  after(async () => {
    if (fixture.failed) console.error(`--- sessiongate log (tail) ---\n${fixture.server?.logTail()}`);
    await fixture.server?.stop();
  });
  return fixture;
}

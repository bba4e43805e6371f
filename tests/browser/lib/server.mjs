// Starts and stops a private `sessiongate serve` for one test: an ephemeral
// port (--listen 127.0.0.1:0, the port read from the startup banner), a temp
// data directory and a known admin token.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const STARTUP_TIMEOUT_MS = 60_000;

export function sessiongateBin() {
  return process.env.SESSIONGATE_BIN || path.join(REPO, 'target', 'debug', 'sessiongate');
}

export function benchSeedBin() {
  return process.env.BENCH_SEED_BIN || path.join(REPO, 'target', 'debug', 'bench-seed');
}

/** A fresh temp directory, removed by the returned function. */
export function tempDir(prefix = 'sessiongate-browser-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Runs bench-seed on an SQLite file; returns its summary line. */
export async function seed(dbPath, { rows, activePercent }) {
  const bin = benchSeedBin();
  if (!fs.existsSync(bin)) throw new Error(`bench-seed not found at ${bin} (cargo build -p bench-seed, or set BENCH_SEED_BIN)`);
  const { stdout } = await promisify(execFile)(bin, [dbPath, '--rows', String(rows), '--active-percent', String(activePercent)], {
    env: hermeticEnv(),
    maxBuffer: 1 << 20,
  });
  return stdout.trim();
}

function hermeticEnv() {
  // No SESSIONGATE_* setting from the caller's environment leaks in.
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SESSIONGATE_')));
}

export class Server {
  constructor(fields) {
    Object.assign(this, fields);
  }

  /**
   * options: idleTimeout ("1h"), databaseUrl, dataDir (kept if given), args (extra flags),
   * listen (default 127.0.0.1:0; a fixed address to restart a server where it was),
   * adminToken (default a fresh one)
   */
  static async start(options = {}) {
    const bin = sessiongateBin();
    if (!fs.existsSync(bin)) throw new Error(`sessiongate binary not found at ${bin} (build it or set SESSIONGATE_BIN)`);
    const ownDir = !options.dataDir;
    const dir = options.dataDir || tempDir();
    const logPath = path.join(dir, 'server.log');
    const adminToken = options.adminToken || `browser-test-${randomBytes(16).toString('hex')}`;
    const args = ['serve', '--listen', options.listen || '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--admin-token', adminToken];
    if (options.databaseUrl) args.push('--database-url', options.databaseUrl);
    if (options.idleTimeout) args.push('--idle-timeout', options.idleTimeout);
    if (options.args) args.push(...options.args);
    const log = fs.openSync(logPath, 'a');
    const child = spawn(bin, args, { env: hermeticEnv(), stdio: ['ignore', log, log] });
    fs.closeSync(log);
    const server = new Server({ dir, ownDir, logPath, adminToken, child, baseUrl: null });
    let exited = null;
    child.on('exit', (code, signal) => (exited = { code, signal }));
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited) {
        const message = `sessiongate exited at startup (${JSON.stringify(exited)}):\n${server.logTail()}`;
        await server.stop();
        throw new Error(message);
      }
      if (!server.baseUrl) {
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(server.log());
        if (m) server.baseUrl = m[1];
      }
      if (server.baseUrl) {
        try {
          const res = await fetch(`${server.baseUrl}/api/health`);
          await res.body?.cancel();
          if (res.ok) {
            server.mcpUrl = `${server.baseUrl}/mcp`;
            return server;
          }
        } catch {
          // not answering yet
        }
      }
      await sleep(50);
    }
    const message = `sessiongate did not start in ${STARTUP_TIMEOUT_MS} ms:\n${server.logTail()}`;
    await server.stop();
    throw new Error(message);
  }

  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  logTail(maxChars = 6000) {
    return this.log().slice(-maxChars);
  }

  async stop() {
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
    if (this.ownDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  async admin(p, { method = 'GET' } = {}) {
    const res = await fetch(`${this.baseUrl}${p}`, {
      method,
      headers: { authorization: `Bearer ${this.adminToken}`, accept: 'application/json' },
    });
    const text = await res.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // keep the text
    }
    return { status: res.status, body };
  }

  async session(id) {
    const { status, body } = await this.admin(`/api/mcp/sessions/${id}`);
    if (status !== 200) throw new Error(`GET /api/mcp/sessions/${id} -> ${status}: ${JSON.stringify(body)}`);
    return body.session;
  }

  async health() {
    const { status, body } = await this.admin('/api/mcp/sessions/health');
    if (status !== 200) throw new Error(`GET /api/mcp/sessions/health -> ${status}: ${JSON.stringify(body)}`);
    return body;
  }
}

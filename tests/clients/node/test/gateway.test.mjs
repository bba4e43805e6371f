// sessiongate as a gateway in front of a server nobody on this project wrote: the MCP reference
// server `everything` (@modelcontextprotocol/server-everything, pinned in package.json), once as
// a stdio child per session and once over Streamable HTTP. Driven by the official TypeScript SDK
// clients: `@modelcontextprotocol/sdk` 1.32.2 on the sessionful 2025-11-25 revision and
// `@modelcontextprotocol/client` 2.4.0 pinned to 2026-07-28.
//
// Everything the upstream offers must pass through under its namespaced names (`everything__…`,
// since the built-in `echo` would collide): tools, prompts, resources and their subscriptions,
// logging, progress, and the upstream's own requests to the client (sampling, elicitation,
// roots), which reach the client on its session — or, on 2026-07-28, as input-required results
// the client answers on a retry.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client';

import { SessiongateServer } from '../lib/helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const EVERYTHING = path.resolve(
  HERE,
  '..',
  'node_modules',
  '@modelcontextprotocol',
  'server-everything',
  'dist',
  'index.js',
);
const NS = 'everything__';

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

/** server-everything over Streamable HTTP on a free port, until `stop`. */
async function startEverythingHttp() {
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING, 'streamableHttp'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server-everything exited: ${stderr}`);
    const open = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (open) return { url: `http://127.0.0.1:${port}/mcp`, stop: () => child.kill('SIGKILL') };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`server-everything did not listen on ${port}: ${stderr}`);
}

/** A sessionful SDK 1.x client that can answer everything the upstream may ask. */
async function connectSessionful(server, seen) {
  const client = new Client(
    { name: 'gateway-node-sdk', version: '1.32.2-test' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
    seen.sampling.push(request.params);
    return { role: 'assistant', content: { type: 'text', text: 'sampled by the test client' }, model: 'test-model' };
  });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    seen.elicitation.push(request.params);
    return { action: 'accept', content: { name: 'Ada Lovelace', check: true, email: 'ada@example.org' } };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    seen.roots += 1;
    return { roots: [{ uri: 'file:///work/ada', name: 'ada' }] };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => seen.logs.push(n.params));
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => seen.updates.push(n.params.uri));
  const transport = new StreamableHTTPClientTransport(new URL(server.mcpUrl));
  await client.connect(transport);
  return { client, transport };
}

function freshSeen() {
  return { sampling: [], elicitation: [], roots: 0, logs: [], updates: [] };
}

async function waitFor(what, predicate, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const text = (result) => result.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');

/** The same checks over whichever upstream the server was started with. */
function relaySuite(label, startServer) {
  describe(`through the gateway to server-everything over ${label}`, () => {
    let server;
    let failed = false;
    const guarded = async (fn) => {
      try {
        await fn();
      } catch (e) {
        failed = true;
        throw e;
      }
    };
    before(async () => {
      server = await startServer();
    });
    after(async () => {
      if (failed) console.error(`--- sessiongate log (tail) ---\n${server?.logTail()}`);
      await server?.stop();
    });

    test('tools: listed under the namespace beside the built-ins, called, structured content kept', () =>
      guarded(async () => {
        const { client } = await connectSessionful(server, freshSeen());
        try {
          const { tools } = await client.listTools();
          const names = tools.map((t) => t.name);
          for (const name of ['echo', `${NS}echo`, `${NS}get-sum`, `${NS}trigger-long-running-operation`]) {
            assert.ok(names.includes(name), `${name} in ${names}`);
          }
          const sum = await client.callTool({ name: `${NS}get-sum`, arguments: { a: 19, b: 23 } });
          assert.match(text(sum), /42/);
          const echoed = await client.callTool({ name: `${NS}echo`, arguments: { message: 'through' } });
          assert.match(text(echoed), /through/);
          const structured = await client.callTool({
            name: `${NS}get-structured-content`,
            arguments: { location: 'New York' },
          });
          assert.ok(structured.structuredContent, JSON.stringify(structured));
          const builtin = await client.callTool({ name: 'echo', arguments: { text: 'built-in' } });
          assert.notEqual(builtin.isError, true);
          assert.match(text(builtin), /built-in/);
        } finally {
          await client.close();
        }
      }));

    test('progress notifications reach the caller', () =>
      guarded(async () => {
        const { client } = await connectSessionful(server, freshSeen());
        try {
          const progress = [];
          const result = await client.callTool(
            { name: `${NS}trigger-long-running-operation`, arguments: { duration: 0.3, steps: 3 } },
            undefined,
            { onprogress: (p) => progress.push(p) },
          );
          assert.match(text(result), /Long running operation completed/);
          assert.deepEqual(
            progress.map((p) => [p.progress, p.total]),
            [
              [1, 3],
              [2, 3],
              [3, 3],
            ],
          );
        } finally {
          await client.close();
        }
      }));

    test("the upstream's sampling, elicitation and roots requests reach this client and its answers go back", () =>
      guarded(async () => {
        const seen = freshSeen();
        const { client } = await connectSessionful(server, seen);
        try {
          const sampled = await client.callTool({
            name: `${NS}trigger-sampling-request`,
            arguments: { prompt: 'say hi', maxTokens: 20 },
          });
          assert.match(JSON.stringify(sampled), /sampled by the test client/);
          assert.equal(seen.sampling.length, 1);

          const elicited = await client.callTool({ name: `${NS}trigger-elicitation-request`, arguments: {} });
          assert.match(JSON.stringify(elicited), /Ada Lovelace/);
          assert.equal(seen.elicitation.length, 1);

          const roots = await client.callTool({ name: `${NS}get-roots-list`, arguments: {} });
          assert.match(JSON.stringify(roots), /file:\/\/\/work\/ada/);
          assert.ok(seen.roots >= 1);
        } finally {
          await client.close();
        }
      }));

    test('prompts and resources: listed, read, subscribed, updated', () =>
      guarded(async () => {
        const seen = freshSeen();
        const { client } = await connectSessionful(server, seen);
        try {
          const { prompts } = await client.listPrompts();
          assert.ok(prompts.some((p) => p.name === `${NS}simple-prompt`), JSON.stringify(prompts));
          const prompt = await client.getPrompt({ name: `${NS}args-prompt`, arguments: { city: 'Paris' } });
          assert.match(JSON.stringify(prompt.messages), /Paris/);

          const { resources } = await client.listResources();
          const resource = resources.find((r) => r.uri.startsWith('demo://resource/static/'));
          assert.ok(resource, JSON.stringify(resources.map((r) => r.uri)));
          const read = await client.readResource({ uri: resource.uri });
          assert.equal(read.contents[0].uri, resource.uri);

          const { resourceTemplates } = await client.listResourceTemplates();
          assert.ok(resourceTemplates.some((t) => t.uriTemplate.startsWith('demo://resource/dynamic/')));
          const dynamic = await client.readResource({ uri: 'demo://resource/dynamic/text/7' });
          assert.equal(dynamic.contents[0].uri, 'demo://resource/dynamic/text/7');

          await client.subscribeResource({ uri: resource.uri });
          await client.callTool({ name: `${NS}toggle-subscriber-updates`, arguments: {} });
          await waitFor(`an update of ${resource.uri}`, () => seen.updates.includes(resource.uri));
          await client.callTool({ name: `${NS}toggle-subscriber-updates`, arguments: {} });
        } finally {
          await client.close();
        }
      }));

    test('logging: the level set reaches the upstream and its log messages reach the client', () =>
      guarded(async () => {
        const seen = freshSeen();
        const { client } = await connectSessionful(server, seen);
        try {
          // The upstream logs at a random level at once and every 5 s after;
          // at `debug` every message passes, so the first comes at once.
          await client.setLoggingLevel('debug');
          await client.callTool({ name: `${NS}toggle-simulated-logging`, arguments: {} });
          await waitFor('a log message', () => seen.logs.length > 0);
          // Between calls too, on the session's standalone stream.
          await waitFor('a log message between calls', () => seen.logs.length > 1, 20_000);
          await client.callTool({ name: `${NS}toggle-simulated-logging`, arguments: {} });
          // Its messages read `Debug-level message`, ... and `Alert level-message`.
          assert.match(JSON.stringify(seen.logs), /level[ -]message/);
        } finally {
          await client.close();
        }
      }));

    test('2026-07-28 client (SDK 2.x pinned): tools, progress, prompts, resources, and elicitation and sampling as input-required', () =>
      guarded(async () => {
        const client = new Client2(
          { name: 'gateway-node-client2', version: '2.4.0-test' },
          { capabilities: { elicitation: {}, sampling: {} }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
        );
        const asked = [];
        client.setRequestHandler('elicitation/create', async (request) => {
          asked.push(request.params);
          return { action: 'accept', content: { name: 'Grace Hopper', check: true, email: 'grace@example.org' } };
        });
        const sampled = [];
        client.setRequestHandler('sampling/createMessage', async (request) => {
          sampled.push(request.params);
          return { role: 'assistant', content: { type: 'text', text: 'sampled by the 2026 client' }, model: 'test-model' };
        });
        await client.connect(new Transport2(new URL(server.mcpUrl)));
        try {
          assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28');
          const { tools } = await client.listTools();
          assert.ok(tools.some((t) => t.name === `${NS}get-sum`));
          const sum = await client.callTool({ name: `${NS}get-sum`, arguments: { a: 2, b: 3 } });
          assert.match(text(sum), /5/);
          const elicited = await client.callTool({ name: `${NS}trigger-elicitation-request`, arguments: {} });
          assert.match(JSON.stringify(elicited), /Grace Hopper/);
          assert.equal(asked.length, 1);
          const sample = await client.callTool({
            name: `${NS}trigger-sampling-request`,
            arguments: { prompt: 'say hi', maxTokens: 20 },
          });
          assert.match(JSON.stringify(sample), /sampled by the 2026 client/);
          assert.equal(sampled.length, 1);

          const progress = [];
          const long = await client.callTool(
            { name: `${NS}trigger-long-running-operation`, arguments: { duration: 0.3, steps: 3 } },
            { onprogress: (p) => progress.push([p.progress, p.total]) },
          );
          assert.match(text(long), /Long running operation completed/);
          assert.deepEqual(progress, [
            [1, 3],
            [2, 3],
            [3, 3],
          ]);

          const { prompts } = await client.listPrompts();
          assert.ok(prompts.some((p) => p.name === `${NS}simple-prompt`), JSON.stringify(prompts));
          const prompt = await client.getPrompt({ name: `${NS}args-prompt`, arguments: { city: 'Lyon' } });
          assert.match(JSON.stringify(prompt.messages), /Lyon/);
          const { resources } = await client.listResources();
          const resource = resources.find((r) => r.uri.startsWith('demo://resource/static/'));
          assert.ok(resource, JSON.stringify(resources.map((r) => r.uri)));
          const read = await client.readResource({ uri: resource.uri });
          assert.equal(read.contents[0].uri, resource.uri);
          const dynamic = await client.readResource({ uri: 'demo://resource/dynamic/text/3' });
          assert.equal(dynamic.contents[0].uri, 'demo://resource/dynamic/text/3');
        } finally {
          await client.close();
        }
      }));
  });
}

relaySuite('stdio (a child per session)', () =>
  SessiongateServer.start({ extra: ['--stdio', `everything=${process.execPath} ${EVERYTHING} stdio`] }),
);

let upstream;
relaySuite('Streamable HTTP', async () => {
  upstream = await startEverythingHttp();
  const server = await SessiongateServer.start({ extra: ['--upstream', `everything=${upstream.url}`] });
  const stop = server.stop.bind(server);
  server.stop = async (options) => {
    await stop(options);
    upstream.stop();
  };
  return server;
});

// The tasks extension (SEP-2663) from the TypeScript SDK, against `serve --conformance`.
//
// `@modelcontextprotocol/client` 2.4.0 alone cannot drive a task: it declares the extension when
// told to, but throws UNSUPPORTED_RESULT_TYPE on the `CreateTaskResult` (`resultType: "task"`)
// of `tools/call`, and refuses to send `tasks/get` toward a 2026-07-28 peer at all
// (METHOD_NOT_SUPPORTED_BY_PROTOCOL_VERSION, raised locally). The extension's own client package,
// `@modelcontextprotocol/ext-tasks` 0.2.2, does it on top of that Client: it sends `tools/call`,
// polls `tasks/get` at the task's `pollIntervalMs`, answers `inputRequests` with `tasks/update`
// through the application's handler, and decodes the inlined result. For 2026-07-28 task traffic
// it needs a host-owned raw request path (the Client's codecs reject it) and the request framing
// the Client was set up with; `rawDispatch` below is that path, a plain POST per request.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  createApplicationInputHandler,
  createTaskSessionFromClient,
  resultFromTaskOutcome,
  taskViewFromExecutionEvent,
} from '@modelcontextprotocol/ext-tasks/client';

import { serverForTests, Wire } from '../lib/helpers.mjs';

const MODERN = '2026-07-28';
const TASKS = 'io.modelcontextprotocol/tasks';
const CLIENT_INFO = { name: 'sessiongate-node-tasks', version: '0.2.2-test' };
const CAPABILITIES = { elicitation: {}, extensions: { [TASKS]: {} } };

const fixture = serverForTests({ extra: ['--conformance'] });
const { guarded } = fixture;

/** A connected Client pinned to 2026-07-28, declaring the tasks extension. */
async function connect(wire) {
  const client = new Client(CLIENT_INFO, {
    capabilities: CAPABILITIES,
    versionNegotiation: { mode: { pin: MODERN } },
  });
  await client.connect(new StreamableHTTPClientTransport(new URL(fixture.server.mcpUrl), { fetch: wire.fetch }));
  assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
  return client;
}

/** The JSON-RPC response to `id` in a reply, JSON or an SSE stream. */
async function responseTo(res, id) {
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return JSON.parse(text);
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trimStart())
      .join('\n');
    if (!data) continue;
    const message = JSON.parse(data);
    if (message.id === id && ('result' in message || 'error' in message)) return message;
  }
  throw new Error(`no response to ${id} in the stream: ${text}`);
}

/**
 * The host request path ext-tasks requires for 2026-07-28 task traffic: each framed request
 * POSTed on its own through `fetch`, with the headers a transport sets (SEP-2243: `Mcp-Method`,
 * and `Mcp-Name` naming the tool of a `tools/call`) under those ext-tasks asks for (it sets
 * `Mcp-Name` to the task id on `tasks/*` itself).
 */
function rawDispatch(fetch) {
  let next = 0;
  return async (request, options = {}) => {
    const id = `raw-${++next}`;
    const headers = new Headers({
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': request.method,
    });
    if (request.method === 'tools/call') headers.set('mcp-name', request.params.name);
    for (const [name, value] of Object.entries(options.context?.headers ?? {})) headers.set(name, value);
    const res = await fetch(fixture.server.mcpUrl, {
      method: 'POST',
      headers,
      body: JSON.stringify({ ...request, jsonrpc: '2.0', id }),
      signal: options.signal,
    });
    const reply = await responseTo(res, id);
    return 'error' in reply ? { kind: 'error', error: reply.error } : { kind: 'result', result: reply.result };
  };
}

/** A task session over `client`; elicitations are answered by `elicit`. */
function taskSession(client, wire, elicit = async () => ({ action: 'decline' })) {
  return createTaskSessionFromClient(client, {
    endpointId: 'sessiongate-node-tasks',
    rawDispatch: rawDispatch(wire.fetch),
    v2RequestFraming: { protocolVersion: MODERN, clientInfo: CLIENT_INFO, clientCapabilities: CAPABILITIES },
    onInputRequest: createApplicationInputHandler({
      elicitation: elicit,
      sampling: async () => {
        throw new Error('no sampling here');
      },
      roots: async () => ({ roots: [] }),
    }),
  });
}

/** Runs `execution` to its end; the outcome and the statuses seen on the way. */
async function settle(execution) {
  const statuses = [];
  const { outcome } = await execution.settle({
    onEvent: (event) => {
      const task = taskViewFromExecutionEvent(event);
      if (task && statuses.at(-1) !== task.status) statuses.push(task.status);
    },
  });
  return { outcome, statuses };
}

test('the SDK client alone stops at the task handle', () =>
  guarded(async () => {
    const wire = new Wire();
    const client = await connect(wire);
    try {
      await assert.rejects(client.callTool({ name: 'slow_compute', arguments: { seconds: 0.1 } }), {
        code: 'UNSUPPORTED_RESULT_TYPE',
      });
      // The server did create the task: the SDK has no way to poll it.
      const [call] = wire.byRpc('tools/call');
      assert.deepEqual(call.body.params._meta['io.modelcontextprotocol/clientCapabilities'].extensions, {
        [TASKS]: {},
      });
      await assert.rejects(async () => client.request({ method: 'tasks/get', params: { taskId: 'any' } }), {
        code: 'METHOD_NOT_SUPPORTED_BY_PROTOCOL_VERSION',
      });
      assert.equal(wire.byRpc('tasks/get').length, 0, 'refused before it reached the wire');
    } finally {
      await client.close().catch(() => {});
    }
  }));

test('ext-tasks polls a slow_compute task to its result', () =>
  guarded(async () => {
    const wire = new Wire();
    const client = await connect(wire);
    const session = taskSession(client, wire);
    try {
      const execution = await session.callTool('slow_compute', { seconds: 1, label: 'node' });
      assert.equal(execution.kind, 'task');
      const taskId = execution.handle.taskId;
      const { outcome, statuses } = await settle(execution);
      assert.equal(outcome.status, 'completed', `${JSON.stringify(outcome)}\n${wire.describe()}`);
      assert.deepEqual(resultFromTaskOutcome(outcome).content, [{ type: 'text', text: 'Computed "node" after 1 s' }]);
      assert.deepEqual(statuses, ['working', 'completed']);

      const polls = wire.byRpc('tasks/get');
      assert.ok(polls.length >= 2, wire.describe());
      for (const poll of polls) {
        assert.equal(poll.status, 200);
        assert.equal(poll.body.params.taskId, taskId);
        assert.equal(poll.requestHeaders['mcp-name'], taskId);
        assert.deepEqual(poll.body.params._meta['io.modelcontextprotocol/clientInfo'], CLIENT_INFO);
      }
      // Polled no faster than the server asked (pollIntervalMs), and no session was made.
      const interval = outcome.task?.suggestedPollIntervalMs ?? 0;
      assert.ok(interval > 0, JSON.stringify(outcome.task));
      assert.ok(polls.length <= Math.ceil(1000 / interval) + 2, `${polls.length} polls at ${interval} ms`);
      assert.deepEqual(wire.mintedSessionIds(), []);
    } finally {
      await session.close();
      await client.close().catch(() => {});
    }
  }));

test('ext-tasks answers what a confirm_delete task asks with tasks/update', () =>
  guarded(async () => {
    const wire = new Wire();
    const client = await connect(wire);
    const asked = [];
    const session = taskSession(client, wire, async (request, context) => {
      asked.push({ message: request.params.message, scope: context.scope, delivery: context.delivery });
      return { action: 'accept', content: { confirm: true } };
    });
    try {
      const execution = await session.callTool('confirm_delete', { filename: 'notes.txt' });
      assert.equal(execution.kind, 'task');
      const { outcome, statuses } = await settle(execution);
      assert.equal(outcome.status, 'completed', `${JSON.stringify(outcome)}\n${wire.describe()}`);
      assert.deepEqual(resultFromTaskOutcome(outcome).content, [{ type: 'text', text: 'Deleted notes.txt' }]);
      assert.deepEqual(asked, [{ message: 'Delete notes.txt?', scope: 'task', delivery: 'task-update' }]);
      assert.ok(statuses.includes('input_required'), JSON.stringify(statuses));
      assert.equal(statuses.at(-1), 'completed');

      const [update, ...more] = wire.byRpc('tasks/update');
      assert.equal(more.length, 0, wire.describe());
      assert.equal(update.status, 200);
      assert.equal(update.requestHeaders['mcp-name'], execution.handle.taskId);
      assert.deepEqual(Object.values(update.body.params.inputResponses), [
        { action: 'accept', content: { confirm: true } },
      ]);
    } finally {
      await session.close();
      await client.close().catch(() => {});
    }
  }));

// Conformance of perplexity-sim's Agent API with the official TypeScript SDK: the SDK's own
// responses.create / retrieve / cancel, pointed at the simulator, must decode what the simulator sends and
// see the statuses, errors and items the wire contract describes.
//
//   node agent_sdk.mjs --base-url URL --api-key KEY
// Trust comes from NODE_EXTRA_CA_CERTS (the simulator's ca.pem), which Node reads only at start-up.
// Prints one line per check and exits 1 at the first failure.
import Perplexity from '@perplexity-ai/perplexity_ai';
import assert from 'node:assert/strict';
import process from 'node:process';

function parseCommandLine(argv) {
  const settings = { baseUrl: '', apiKey: '' };
  for (let i = 0; i < argv.length; ++i) {
    const flag = argv[i];
    if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
    if (flag === '--base-url') settings.baseUrl = argv[++i];
    else if (flag === '--api-key') settings.apiKey = argv[++i];
    else throw new Error(`unknown argument: ${flag}`);
  }
  if (!settings.baseUrl || !settings.apiKey) throw new Error('--base-url and --api-key are required');
  return settings;
}

const running = new Set(['queued', 'in_progress']);

// Retrieves until the response leaves queued/in_progress; the simulator moves on with each retrieve.
async function runToEnd(client, id, limit = 20) {
  for (let i = 0; i < limit; ++i) {
    const response = await client.responses.retrieve(id);
    if (!running.has(response.status)) return response;
  }
  throw new Error(`response ${id} still running after ${limit} retrieves`);
}

// Runs `call`, which must reject with an instance of `kind`; returns the error.
async function expectError(kind, call) {
  try {
    await call();
  } catch (error) {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${error?.constructor?.name}: ${error?.message}`);
    return error;
  }
  assert.fail(`expected ${kind.name}, but the call succeeded`);
}

// The API's error envelope inside an SDK error: APIError.error holds the parsed body.
function envelopeOf(error) {
  const body = error.error;
  return body && typeof body === 'object' && body.error ? body.error : body;
}

const checks = [];
function check(name, body) {
  checks.push({ name, body });
}

check('a background create is queued with a resp_ id', async (client, state) => {
  const created = await client.responses.create({
    background: true,
    preset: 'medium',
    input: 'How many moons has Mars?',
    tools: [{ type: 'web_search' }],
  });
  assert.equal(created.object, 'response');
  assert.equal(created.status, 'queued');
  assert.match(created.id, /^resp_[0-9a-f]+$/);
  assert.equal(created.background, true);
  assert.equal(typeof created.created_at, 'number');
  assert.equal(typeof created.model, 'string');
  state.firstId = created.id;
});

check('retrieves run it to completed, with an answer, search results and usage', async (client, state) => {
  const done = await runToEnd(client, state.firstId);
  assert.equal(done.status, 'completed');
  assert.equal(done.id, state.firstId);
  const message = done.output.find((item) => item.type === 'message');
  assert.ok(message, 'a message output item');
  assert.equal(message.role, 'assistant');
  const text = message.content
    .filter((part) => part.type === 'output_text')
    .map((part) => part.text)
    .join('');
  assert.ok(text.length > 0, 'non-empty output_text');
  assert.ok(text.includes('How many moons has Mars?'), 'the answer echoes the question');
  // The SDK's convenience: the concatenated output_text parts.
  assert.equal(done.output_text, text);
  const search = done.output.find((item) => item.type === 'search_results');
  assert.ok(search && search.results.length > 0, 'a search_results item');
  assert.ok(done.usage, 'usage');
  assert.equal(done.usage.total_tokens, done.usage.input_tokens + done.usage.output_tokens);
  assert.equal(done.usage.cost.currency, 'USD');
  assert.equal(done.error ?? null, null);
  state.completedId = done.id;
});

check('a [[fail]] input ends failed, as a 200 with an error', async (client) => {
  const created = await client.responses.create({ background: true, preset: 'fast', input: 'please [[fail]]' });
  const failed = await runToEnd(client, created.id);
  assert.equal(failed.status, 'failed');
  assert.equal(typeof failed.error.message, 'string');
  assert.ok(failed.error.message.length > 0);
});

check('cancel of a running response is acknowledged, and a retrieve then shows cancelled', async (client) => {
  const created = await client.responses.create({ background: true, preset: 'medium', input: 'a long run' });
  const running_ = await client.responses.retrieve(created.id);
  assert.ok(running.has(running_.status));
  const acknowledged = await client.responses.cancel(created.id);
  assert.equal(acknowledged.status, 'cancelling');
  assert.equal(acknowledged.response_id, created.id);
  const cancelled = await client.responses.retrieve(created.id);
  assert.equal(cancelled.status, 'cancelled');
  assert.equal(typeof cancelled.error?.message, 'string');
});

check('cancel of a completed response is a BadRequestError', async (client, state) => {
  const error = await expectError(Perplexity.BadRequestError, () => client.responses.cancel(state.completedId));
  assert.equal(error.status, 400);
  assert.match(envelopeOf(error).message, /already completed/);
});

check('cancel and retrieve of an unknown id are NotFoundErrors', async (client) => {
  const cancelError = await expectError(Perplexity.NotFoundError, () => client.responses.cancel('resp_unknown'));
  assert.equal(cancelError.status, 404);
  const getError = await expectError(Perplexity.NotFoundError, () => client.responses.retrieve('resp_unknown'));
  assert.equal(envelopeOf(getError).type, 'not_found');
});

check('an unknown field is a 400 naming it in param', async (client) => {
  const body = /** @type {any} */ ({ background: true, preset: 'fast', input: 'x', bogus_field: 1 });
  const error = await expectError(Perplexity.BadRequestError, () => client.responses.create(body));
  const envelope = envelopeOf(error);
  assert.equal(envelope.param, 'bogus_field');
  assert.equal(envelope.type, 'invalid_request');
  assert.equal(envelope.message, 'invalid request body: json: unknown field "bogus_field"');
});

check('an unknown nested field is refused too', async (client) => {
  const body = /** @type {any} */ ({
    preset: 'fast',
    input: 'x',
    tools: [{ type: 'web_search', filters: { search_domain_filter: ['example.org'], nope: true } }],
  });
  const error = await expectError(Perplexity.BadRequestError, () => client.responses.create(body));
  assert.equal(envelopeOf(error).param, 'nope');
});

check('a function tool ends in requires_action; its output completes the next turn', async (client) => {
  const tools = [
    {
      type: 'function',
      name: 'get_weather',
      description: 'Current weather of a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  ];
  const created = await client.responses.create({
    background: true,
    preset: 'fast',
    input: 'Weather in Paris?',
    tools,
  });
  const waiting = await runToEnd(client, created.id);
  assert.equal(waiting.status, 'requires_action');
  const call = waiting.output.find((item) => item.type === 'function_call');
  assert.ok(call, 'a function_call output item');
  assert.equal(call.name, 'get_weather');
  assert.equal(typeof call.call_id, 'string');
  assert.equal(typeof JSON.parse(call.arguments), 'object');

  const next = await client.responses.create({
    background: true,
    preset: 'fast',
    previous_response_id: created.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: '{"celsius": 21}' }],
    tools,
  });
  assert.equal(next.previous_response_id, created.id);
  const done = await runToEnd(client, next.id);
  assert.equal(done.status, 'completed');
  assert.ok(done.output_text.length > 0);
});

check('a response created with store: false cannot be retrieved', async (client) => {
  const created = await client.responses.create({ background: true, preset: 'fast', input: 'x', store: false });
  assert.equal(created.status, 'queued');
  await expectError(Perplexity.NotFoundError, () => client.responses.retrieve(created.id));
});

check('an unknown status is passed through as it is', async (client) => {
  const created = await client.responses.create({ background: true, preset: 'fast', input: 'x [[status:paused]]' });
  const odd = await runToEnd(client, created.id);
  assert.equal(odd.status, 'paused');
});

async function main() {
  let settings;
  try {
    settings = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`agent_sdk.mjs: ${error.message}\n`);
    return 2;
  }
  const client = new Perplexity({ apiKey: settings.apiKey, baseURL: settings.baseUrl, maxRetries: 0, timeout: 20000 });
  const state = {};
  for (const { name, body } of checks) {
    try {
      await body(client, state);
    } catch (error) {
      process.stdout.write(`FAILED: ${name}\n${error?.stack ?? error}\n`);
      return 1;
    }
    process.stdout.write(`ok: ${name}\n`);
  }
  process.stdout.write(`${checks.length} passed\n`);
  return 0;
}

process.exitCode = await main();

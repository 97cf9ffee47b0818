// Contender 3 of bench/run: the official TypeScript SDK doing the workload every contender does.
//
// Same command line and same closing JSON line as the native contenders (see bench/raw_beast_bench.cpp):
//   node bench.mjs --base-url URL --ca-file FILE --api-key KEY [--jobs N] [--polls K] [--connections C]
// C workers share the N jobs; each creates a job, then polls it without sleeping until it is COMPLETED or
// FAILED, then takes the next one. The SDK has no poll helper, so this loop is what its users write.
//
// Trust: Node reads extra CAs only at start-up, from NODE_EXTRA_CA_CERTS, so bench/run sets that variable
// to the simulator's ca.pem; --ca-file is accepted for the shared interface and checked to be that file.
//
// Connections: the SDK calls the global fetch (Node's bundled undici), whose default dispatcher opens as
// many connections per origin as there are requests in flight. The SDK passes `fetchOptions` through to
// fetch, so an undici Agent capped at C connections is handed over as the dispatcher; the `undici` package
// is pinned to the version bundled with the Node in use, so the Agent and fetch speak the same internals.
import Perplexity from '@perplexity-ai/perplexity_ai';
import { Agent } from 'undici';
import { realpathSync } from 'node:fs';
import process from 'node:process';

const usage =
  'usage: node bench.mjs --base-url URL --ca-file FILE --api-key KEY\n' +
  '                      [--jobs N] [--polls K] [--connections C]\n';

function parseCommandLine(argv) {
  const settings = { baseUrl: '', caFile: '', apiKey: '', jobs: 2000, polls: 5, connections: 32 };
  const counts = { '--jobs': 'jobs', '--polls': 'polls', '--connections': 'connections' };
  const texts = { '--base-url': 'baseUrl', '--ca-file': 'caFile', '--api-key': 'apiKey' };
  for (let i = 0; i < argv.length; ++i) {
    let flag = argv[i];
    let attached;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq >= 0) {
      attached = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    }
    if (flag === '--help' || flag === '-h') return null;
    const value = () => {
      if (attached !== undefined) return attached;
      if (i + 1 >= argv.length) throw new Error(`${flag} needs a value`);
      return argv[++i];
    };
    if (flag in texts) {
      settings[texts[flag]] = value();
    } else if (flag in counts) {
      const text = value();
      if (!/^[0-9]+$/.test(text)) throw new Error(`${flag}: not a count: '${text}'`);
      settings[counts[flag]] = Number(text);
    } else {
      throw new Error(`unknown argument: ${flag}`);
    }
  }
  if (!settings.baseUrl || !settings.caFile || !settings.apiKey) {
    throw new Error('--base-url, --ca-file and --api-key are required');
  }
  if (settings.connections < 1) throw new Error('--connections must be at least 1');
  return settings;
}

function checkTrust(caFile) {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra || realpathSync(extra) !== realpathSync(caFile)) {
    throw new Error('set NODE_EXTRA_CA_CERTS to the --ca-file before starting node (Node reads it only then)');
  }
}

async function main() {
  let settings;
  try {
    settings = parseCommandLine(process.argv.slice(2));
    if (settings === null) {
      process.stdout.write(usage);
      return 0;
    }
    checkTrust(settings.caFile);
  } catch (error) {
    process.stderr.write(`bench.mjs: ${error.message}\n\n${usage}`);
    return 2;
  }

  const started = process.hrtime.bigint();
  const connections = Math.min(settings.connections, settings.jobs);
  const dispatcher = new Agent({ connections, pipelining: 1 });
  let requests = 0;
  const client = new Perplexity({
    apiKey: settings.apiKey,
    baseURL: settings.baseUrl,
    fetchOptions: { dispatcher },
    // Counted here rather than per SDK call, so requests the SDK retries on its own are counted too.
    fetch: (url, init) => {
      ++requests;
      return fetch(url, init);
    },
  });
  const completions = client.async.chat.completions;
  const request = {
    model: 'sonar-deep-research',
    messages: [{ role: 'user', content: 'How many stars are in the Milky Way?' }],
  };

  let claimed = 0;
  let completed = 0;
  let failed = 0;
  const worker = async () => {
    while (claimed < settings.jobs) {
      ++claimed;
      const created = await completions.create({ request });
      for (;;) {
        const job = await completions.get(created.id);
        if (job.status === 'COMPLETED') {
          ++completed;
          break;
        }
        if (job.status === 'FAILED') {
          ++failed;
          break;
        }
      }
    }
  };

  const outcomes = await Promise.allSettled(Array.from({ length: connections }, worker));
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  await dispatcher.close();
  const rejected = outcomes.find((outcome) => outcome.status === 'rejected');
  if (rejected) process.stderr.write(`bench.mjs: a worker stopped: ${rejected.reason}\n`);

  const line = {
    name: 'ts-sdk',
    jobs: settings.jobs,
    polls: settings.polls,
    connections,
    requests,
    completed,
    failed,
    elapsed_s: Number(elapsed.toFixed(3)),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  return completed === settings.jobs ? 0 : 1;
}

process.exitCode = await main();

// Shared pieces of bolt_peer.js and dubbo_peer.js: flag parsing, the client's load loop
// and its one-line JSON report, the server's stats and signal handling.
'use strict';

function usage(text) {
  process.stderr.write(text.trim() + '\n');
  process.exit(2);
}

// Parses "--name value" and boolean "--flag" options. `spec` maps each allowed option to
// 'string' | 'int' | 'bool' | 'list' (repeatable, collected into an array).
function parseFlags(argv, spec, defaults, usageText) {
  const out = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) usage(`unexpected argument ${a}\n${usageText}`);
    let name = a.slice(2);
    let value = null;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const kind = spec[name];
    if (!kind) usage(`unknown option --${name}\n${usageText}`);
    const key = name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (kind === 'bool') {
      out[key] = value === null ? true : value !== 'false' && value !== '0';
      continue;
    }
    if (value === null) {
      if (i + 1 >= argv.length) usage(`--${name} needs a value\n${usageText}`);
      value = argv[++i];
    }
    if (kind === 'int') {
      if (!/^-?\d+$/.test(value)) usage(`--${name} needs an integer, got ${value}\n${usageText}`);
      out[key] = Number(value);
    } else if (kind === 'list') {
      out[key] = (out[key] || []).concat([value]);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function percentile(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

// Drives the calls. `conns` is an array of objects with
//   call(index) -> Promise<string answer> (rejects with an Error on failure)
// `expected(index)` gives the payload (after "NAME:") a call's answer must carry
// (null: any "NAME:..." answer is fine).
// For one-way calls, call() resolves (with null) once the request was written.
// Returns the report object.
async function runLoad(conns, {requests, concurrency, expected, oneway}) {
  const report = {ok: 0, errors: 0, error_samples: [], answers: {}};
  const latencies = [];
  const sampleErr = (msg) => {
    report.errors++;
    if (report.error_samples.length < 5 && !report.error_samples.includes(msg)) report.error_samples.push(msg);
  };
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async (conn) => {
    for (;;) {
      const i = next++;
      if (i >= requests) return;
      const t0 = process.hrtime.bigint();
      let answer;
      try {
        answer = await conn.call(i);
      } catch (e) {
        sampleErr(String((e && e.message) || e));
        continue;
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (oneway) {
        report.ok++;
        continue;
      }
      // Answers are "<server name>:<payload>"; the payload must be the one this call expects.
      const want = expected(i);
      const colon = typeof answer === 'string' ? answer.indexOf(':') : -1;
      if (colon < 0 || (want !== null && answer.slice(colon + 1) !== want)) {
        sampleErr('mismatch');
        if (!report.mismatch_samples) report.mismatch_samples = [];
        if (report.mismatch_samples.length < 5) report.mismatch_samples.push({call: i, want, got: answer});
        continue;
      }
      report.ok++;
      const who = answer.slice(0, colon);
      report.answers[who] = (report.answers[who] || 0) + 1;
    }
  };
  const workers = [];
  for (const conn of conns) for (let k = 0; k < concurrency; k++) workers.push(worker(conn));
  await Promise.all(workers);
  const elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  latencies.sort((a, b) => a - b);
  report.elapsed_ms = Math.round(elapsedMs);
  report.calls_per_sec = elapsedMs > 0 ? Math.round((report.ok + report.errors) * 1000 / elapsedMs) : 0;
  report.latency_ms = {
    p50: Number(percentile(latencies, 0.5).toFixed(2)),
    p99: Number(percentile(latencies, 0.99).toFixed(2)),
    max: Number((latencies.length ? latencies[latencies.length - 1] : 0).toFixed(2)),
  };
  return report;
}

// Writes one JSON line and exits with `code` once stdout has taken it.
function printAndExit(obj, code = 0) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}

// A logger for the libraries: warnings and errors to stderr, the rest only with --verbose.
function makeLogger(verbose) {
  const write = (level) => (...args) => {
    const util = require('util');
    process.stderr.write(`[${level}] ${util.format(...args)}\n`);
  };
  const quiet = () => {};
  return {
    debug: verbose ? write('debug') : quiet,
    info: verbose ? write('info') : quiet,
    warn: write('warn'),
    error: write('error'),
  };
}

// Server side: counts what was served; prints "stats {json}" on SIGUSR2 and before exiting
// on SIGTERM/SIGINT.
function serverStats() {
  const stats = {requests: 0, oneway: 0, heartbeats: 0, errors: 0, by_method: {}, by_service: {}};
  const print = () => process.stdout.write('stats ' + JSON.stringify(stats) + '\n');
  const exit = () => process.stdout.write('stats ' + JSON.stringify(stats) + '\n', () => process.exit(0));
  process.on('SIGTERM', exit);
  process.on('SIGINT', exit);
  process.on('SIGUSR2', print);
  return {
    stats,
    request(service, method, oneway) {
      stats.requests++;
      if (oneway) stats.oneway++;
      stats.by_method[method] = (stats.by_method[method] || 0) + 1;
      stats.by_service[service] = (stats.by_service[service] || 0) + 1;
    },
  };
}

module.exports = {parseFlags, runLoad, printAndExit, makeLogger, serverStats, usage};

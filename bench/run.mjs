// `npm run bench`: the whole comparison, side by side, in one run.
//
// Each scenario runs against the peer servers its `peers` list names
// (bench/peers): hyper-sse, the seed's plain Node http + res.write loop,
// better-sse, a pure-Rust axum server with a tokio broadcast channel, and the
// "in Express" peers: hyper-sse taking requests from an Express 5 app with
// sse.handle(req, res) (native on http, bridged over https) and better-sse in
// the same kind of app. Each run starts a fresh server pinned
// to CPU 0 and the load generator (bench/loadgen, Rust) pinned to CPU 1, on
// loopback only; every run is bounded in time and the server is stopped by
// its PID afterwards. Results: a table on the terminal, bench/results/latest.json
// and bench/results/chart.svg. The last rows run hyper-sse alone across
// instances: two instances sharing a redis-server (events sent on one, clients
// on the other) against one instance.
//
//   npm run bench              # full suite (about 20 minutes on 2 cores)
//   npm run bench -- --quick   # one repetition, smaller scenarios (a smoke test)
//   npm run bench -- --only=burst-1k,idle,sendcost   # some rows (scenario ids)
//   npm run bench -- --only=burst-1k --peers='hyper-sse,better-sse in Express'
//   npm run bench -- --only=... --out=handle   # results/handle.json, handle.svg
//
// A quick or partial run never overwrites results/latest.json and chart.svg:
// it writes results/partial.json and partial.svg, or the name --out gives.

import { spawn, execFileSync } from 'node:child_process'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const bench = path.join(root, 'bench')
const quick = process.argv.includes('--quick')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const onlyPeers = process.argv.find((a) => a.startsWith('--peers='))?.slice(8).split(',')
const outName = process.argv.find((a) => a.startsWith('--out='))?.slice(6)
if (outName !== undefined && !/^[\w.-]+$/.test(outName)) throw new Error(`--out=${outName}: a file name without a directory or extension`)
if (['latest', 'chart'].includes(outName) && (quick || only || onlyPeers)) throw new Error(`--out=${outName}: the full results' name, for full runs only`)
const REPEAT = quick ? 1 : 3
const MAX_CLIENTS = 19_000 // the open-file limit here is 20,000 per process
// Idle rows read RSS twice: 2 s after the last connection, and again this
// long after (V8 frees the connection storm's garbage only after some idle
// seconds; the second reading is what a long-lived idle server holds).
const SETTLE_S = quick ? 5 : 30

const loadgenBin = path.join(bench, 'loadgen', 'target', 'release', 'sse-loadgen')
const axumBin = path.join(bench, 'peers', 'axum', 'target', 'release', 'axum-sse-peer')

const node = (file) => ({ cmd: process.execPath, args: [path.join(bench, 'peers', file)] })
// Table and chart columns in this order. `tls: true`: the peer always runs
// over TLS (the runner's certificate, TLS_CERT/TLS_KEY; the load generator
// with --tls). `transport`: what every stream of the peer must be carried as
// (its GET /transports is checked after each run; a run that measured
// anything else is an error, not a row).
const HYPER = 'hyper-sse'
const EXPRESS = 'hyper-sse in Express (native)'
const BRIDGED = 'hyper-sse in Express over https (bridged)'
const AXUM = 'axum (Rust)'
const BETTER = 'better-sse'
const BETTER_EXPRESS = 'better-sse in Express'
const SEED = 'seed loop'
const peers = [
  { name: HYPER, ...node('hyper-sse.mjs') },
  { name: EXPRESS, ...node('hyper-sse-express.mjs'), transport: 'native' },
  { name: BRIDGED, ...node('hyper-sse-express.mjs'), transport: 'bridged', tls: true },
  { name: AXUM, cmd: axumBin, args: [] },
  { name: BETTER, ...node('better-sse.mjs') },
  { name: BETTER_EXPRESS, ...node('better-sse-express.mjs') },
  { name: SEED, ...node('seed.mjs') },
]
const NAME_W = Math.max(...peers.map((p) => p.name.length)) // console column
if (onlyPeers) for (const n of onlyPeers) if (!peers.some((p) => p.name === n)) throw new Error(`--peers: no peer named ${JSON.stringify(n)}`)

const s = (n) => (quick ? Math.max(1, Math.round(n / 10)) : n)
// The four original peers run every plaintext row; hyper-sse in Express
// (native) runs the bursts and the idle row beside them, better-sse in
// Express the bursts.
const classic = [HYPER, AXUM, BETTER, SEED]
const bursts = [...classic, EXPRESS, BETTER_EXPRESS]
// The TLS and HTTP/2 rows run hyper-sse alone (HTTPS, ALPN), except the
// HTTP/1.1 burst, which also runs through Express's https server (bridged);
// the plaintext HTTP/1.1 rows above them are the comparison.
const secure = { peers: [HYPER], tls: true }
const scenarios = [
  { id: 'burst-1k', title: '1,000 clients × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT, peers: bursts },
  { id: 'burst-10k', title: '10,000 clients × 200 events × 128 B', kind: 'burst', clients: s(10_000), count: s(200), size: 128, repeat: REPEAT, peers: bursts },
  { id: 'burst-100', title: '100 clients × 50,000 events × 64 B', kind: 'burst', clients: 100, count: s(50_000), size: 64, repeat: REPEAT, peers: bursts },
  { id: 'rate-10k', title: '10,000 clients × 20 events/s × 10 s', kind: 'rate', clients: s(10_000), rate: 20, seconds: quick ? 3 : 10, size: 128, repeat: 1, peers: classic },
  { id: 'idle', title: `${MAX_CLIENTS.toLocaleString('en')} idle connections`, kind: 'idle', clients: quick ? 2000 : MAX_CLIENTS, repeat: 1, peers: [...classic, EXPRESS] },
  { id: 'burst-1k-tls', title: 'TLS, HTTP/1.1: 1,000 clients × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT, ...secure, peers: [HYPER, BRIDGED] },
  { id: 'burst-1k-h2', title: 'TLS, HTTP/2: 1,000 streams on 10 connections × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT, ...secure, h2: 100 },
  { id: 'idle-tls', title: 'TLS, HTTP/1.1: 10,000 idle connections', kind: 'idle', clients: quick ? 1000 : 10_000, repeat: 1, ...secure },
  { id: 'idle-h2', title: 'TLS, HTTP/2: 10,000 idle streams on 100 connections', kind: 'idle', clients: quick ? 1000 : 10_000, repeat: 1, ...secure, h2: 100 },
]
const sendcostClients = quick ? [1, 1000] : [1, 1000, 10_000, MAX_CLIENTS]
// The bridged peer's clients connect over TLS: 10,000 at most, as the
// other TLS rows (its send() is the same call; the res.write calls it causes
// come afterwards, one per client per batch).
const sendcostPeers = [HYPER, EXPRESS, BRIDGED]
const sendcostFor = (peer) => (peer.tls ? sendcostClients.filter((n) => n <= 10_000) : sendcostClients)
// Across instances (hyper-sse alone): the same load on one instance, and on
// two instances sharing a Redis backplane with the events sent on A and the
// clients on B. Servers and redis-server all on CPU 0.
const backplaneRows = [
  { id: 'x-rate', title: '1,000 clients × 100 events/s × 10 s', kind: 'rate', clients: s(1000), rate: 100, seconds: quick ? 3 : 10, size: 128, repeat: 1 },
  { id: 'x-burst', title: '100 clients × 20,000 events × 128 B', kind: 'burst', clients: 100, count: s(20_000), size: 128, repeat: REPEAT },
]
const backplaneSetups = [
  { name: 'one instance', redis: false },
  { name: '2 instances + Redis (send on A, clients on B)', redis: true },
]

// What history costs per stored event (hyper-sse alone): 100,000 events of
// 100 B in many channels, at the default history and at a short one.
const historyRows = [
  { title: '100 channels × history 1,000 (default)', channels: 100, count: 1000, size: 100, options: {} },
  { title: '1,000 channels × history 100', channels: 1000, count: 100, size: 100, options: { history: 100 } },
]

/** One history row: a fresh hyper-sse peer, filled through its /history route. */
async function historyCost(h) {
  const server = await startServer(peers[0], { PEER_OPTIONS: JSON.stringify(h.options) })
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/history?channels=${h.channels}&count=${h.count}&size=${h.size}`, { method: 'POST' })
    if (!res.ok) return { error: `${res.status} ${await res.text()}` }
    return await res.json()
  } catch (e) {
    return { error: e.message }
  } finally {
    await stopServer(server)
  }
}

function build() {
  const cargo = (manifest) =>
    execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest], { stdio: 'inherit' })
  console.log('building the load generator and the axum peer (release)…')
  cargo(path.join(bench, 'loadgen', 'Cargo.toml'))
  cargo(path.join(bench, 'peers', 'axum', 'Cargo.toml'))
}

let nextPort = 21_000 // below the ephemeral range (32768+), so no client socket holds it
let certFiles
/** A throwaway self-signed certificate for the TLS rows (openssl). */
function cert() {
  if (!certFiles) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-bench-'))
    certFiles = { TLS_CERT: path.join(dir, 'cert.pem'), TLS_KEY: path.join(dir, 'key.pem') }
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', certFiles.TLS_KEY, '-out', certFiles.TLS_CERT, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  }
  return certFiles
}

function startServer(peer, extraEnv = {}) {
  const port = nextPort++
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', '0', peer.cmd, ...peer.args], {
      env: { ...process.env, ...extraEnv, PORT: String(port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${peer.name} did not start: ${out}`))
    }, 20_000)
    const onData = (d) => {
      out += d
      if (/listening \d+/.test(out)) {
        clearTimeout(timer)
        resolve({ child, port })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', (d) => (out += d))
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${peer.name} exited (${code}) before listening: ${out}`))
    })
  })
}

function stopServer({ child }) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    const timer = setTimeout(() => {
      // A server that ignores SIGTERM for 3 s is a finding, not just a chore.
      console.error(`\n  warning: pid ${child.pid} did not exit within 3 s of SIGTERM; killed`)
      child.kill('SIGKILL')
    }, 3000)
    child.once('exit', () => {
      clearTimeout(timer)
      resolve()
    })
    child.kill('SIGTERM')
  })
}

function loadgen(args, timeoutS) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', '1', loadgenBin, ...args, '--timeout-s', String(timeoutS)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    const killer = setTimeout(() => child.kill('SIGKILL'), (timeoutS + 60) * 1000)
    child.on('exit', () => {
      clearTimeout(killer)
      try {
        resolve(JSON.parse(out))
      } catch {
        resolve({ error: (err || out).slice(-400) })
      }
    })
  })
}

/** A redis-server for the cross-instance rows, pinned to CPU 0 like the servers; no persistence. */
async function startRedis() {
  const port = nextPort++
  const child = spawn('taskset', ['-c', '0', 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const deadline = Date.now() + 10_000
  for (;;) {
    const up = await new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1', () => sock.end(() => resolve(true)))
      sock.on('error', () => resolve(false))
    })
    if (up) return { child, port }
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('redis-server did not start (is it installed?)')
    await new Promise((r) => setTimeout(r, 20))
  }
}

let prefixes = 0
/** One backplane row on one setup: fresh redis-server and instances per run. */
async function runBackplane(setup, sc) {
  const hyper = peers[0]
  if (!setup.redis) return runOnce(hyper, sc)
  const redis = await startRedis()
  const env = { REDIS_URL: `redis://127.0.0.1:${redis.port}`, REDIS_PREFIX: `bench${prefixes++}` }
  const started = []
  try {
    const a = await startServer(hyper, env)
    started.push(a)
    const b = await startServer(hyper, env)
    started.push(b)
    return await runOnce(hyper, sc, { streams: b, control: a })
  } finally {
    for (const server of started) await stopServer(server)
    await stopServer(redis)
  }
}

/** GET `path` from a peer (over TLS when `tls`, any certificate), as JSON. */
function getJson(port, urlPath, tls) {
  return new Promise((resolve, reject) => {
    const get = tls ? https.get : http.get
    const req = get({ host: '127.0.0.1', port, path: urlPath, rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => {
        try {
          resolve(JSON.parse(body))
        } catch {
          reject(new Error(`${urlPath}: ${res.statusCode} ${body.slice(0, 200)}`))
        }
      })
    })
    req.on('timeout', () => req.destroy(new Error(`${urlPath}: timed out`)))
    req.on('error', reject)
  })
}

/**
 * For a peer with a `transport`: an error when any stream it handed over
 * was carried otherwise (or answered without a stream), so that a column
 * never reports a transport it did not measure.
 */
async function checkTransport(peer, server, tls, r) {
  if (!peer.transport || r.error) return r
  try {
    const counts = await getJson(server.port, '/transports', tls)
    const other = Object.entries(counts).filter(([k, n]) => k !== peer.transport && n > 0)
    if (other.length || !counts[peer.transport]) return { ...r, transports: counts, error: `expected every stream ${peer.transport}, got ${JSON.stringify(counts)}` }
    return { ...r, transports: counts }
  } catch (e) {
    return { ...r, error: `transport check: ${e.message}` }
  }
}

async function runOnce(peer, sc, across) {
  const tls = Boolean(sc.tls || peer.tls)
  const server = across?.streams ?? (await startServer(peer, tls ? cert() : {}))
  try {
    const args = ['--port', String(server.port), '--clients', String(sc.clients), '--scenario', sc.kind, '--sources', '32']
    if (across) args.push('--control-port', String(across.control.port))
    if (tls) args.push('--tls')
    if (sc.h2) args.push('--h2', '--streams-per-conn', String(sc.h2))
    if (sc.kind === 'burst') args.push('--count', String(sc.count), '--size', String(sc.size))
    if (sc.kind === 'rate') args.push('--rate', String(sc.rate), '--seconds', String(sc.seconds), '--size', String(sc.size))
    if (sc.kind === 'idle' && sc.sendcost) args.push('--sendcost', String(sc.sendcost), '--size', '64')
    else if (sc.kind === 'idle') args.push('--settle-s', String(SETTLE_S))
    const r = await loadgen(args, sc.kind === 'rate' ? sc.seconds + 60 : 120 + SETTLE_S)
    return await checkTransport(peer, server, tls, r)
  } finally {
    if (!across) await stopServer(server)
  }
}

const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return NaN
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}

function machine() {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: os.release(),
    date: new Date().toISOString(),
  }
}

/** Whether --peers (if given) selects this peer. */
const selected = (peer) => !onlyPeers || onlyPeers.includes(peer.name)

async function main() {
  build()
  const started = Date.now()
  const results = { machine: machine(), quick, only: only ?? null, peers: onlyPeers ?? null, scenarios: [], sendcost: [] }
  for (const sc of scenarios) {
    if (only && !only.includes(sc.id)) continue
    const row = { ...sc, peers: {} }
    for (const peer of peers.filter((p) => selected(p) && (!sc.peers || sc.peers.includes(p.name)))) {
      const runs = []
      for (let i = 0; i < sc.repeat; i++) {
        process.stdout.write(`  ${sc.id.padEnd(12)} ${peer.name.padEnd(NAME_W)} run ${i + 1}/${sc.repeat} … `)
        const r = await runOnce(peer, sc)
        runs.push(r)
        console.log(r.error ? `error: ${r.error}` : summary(sc, r))
      }
      row.peers[peer.name] = aggregate(sc, runs)
    }
    if (Object.keys(row.peers).length) results.scenarios.push(row)
  }
  if (!only || only.includes('sendcost')) {
    for (const peer of peers.filter((p) => selected(p) && sendcostPeers.includes(p.name))) {
      for (const clients of sendcostFor(peer)) {
        process.stdout.write(`  ${'sendcost'.padEnd(12)} ${peer.name.padEnd(NAME_W)} ${String(clients).padStart(6)} clients … `)
        const r = await runOnce(peer, { kind: 'idle', clients, sendcost: quick ? 100_000 : 1_000_000 })
        const ns = r.error ? undefined : r.sendcost?.nsPerCall
        const cpuNs = r.error ? undefined : r.sendcost?.cpuNsPerCall
        console.log(ns ? `${(ns / 1000).toFixed(2)} µs per send() wall, ${(cpuNs / 1000).toFixed(2)} µs JS-thread CPU` : `error: ${r.error ?? 'no answer'}`)
        results.sendcost.push({ peer: peer.name, clients, connected: r.connected ?? null, nsPerCall: ns ?? null, cpuNsPerCall: cpuNs ?? null, ...(r.error ? { error: r.error } : {}) })
      }
    }
  }
  results.history = []
  if ((!only || only.includes('history')) && selected(peers[0])) {
    for (const h of historyRows) {
      process.stdout.write(`  history    ${h.title} … `)
      const r = await historyCost(h)
      console.log(r.error ? `error: ${r.error}` : `${fmt(r.rssPerEvent)} B of RSS per stored event, ${fmt(r.encodedPerEvent)} B encoded`)
      results.history.push({ ...h, ...r })
    }
  }
  results.backplane = []
  for (const sc of backplaneRows) {
    if ((only && !only.includes(sc.id)) || !selected(peers[0])) continue
    const row = { ...sc, setups: {} }
    for (const setup of backplaneSetups) {
      const runs = []
      for (let i = 0; i < sc.repeat; i++) {
        process.stdout.write(`  ${sc.id.padEnd(10)} ${setup.redis ? '2 + Redis' : 'one'}  run ${i + 1}/${sc.repeat} … `)
        const r = await runBackplane(setup, sc)
        runs.push(r)
        console.log(r.error ? `error: ${r.error}` : summary(sc, r))
      }
      row.setups[setup.name] = aggregate(sc, runs)
    }
    results.backplane.push(row)
  }
  results.elapsedS = Math.round((Date.now() - started) / 1000)
  const dir = path.join(bench, 'results')
  fs.mkdirSync(dir, { recursive: true })
  // A partial or quick run never overwrites the full results.
  const name = outName ?? (quick || only || onlyPeers ? 'partial' : 'latest')
  const chartName = name === 'latest' ? 'chart.svg' : `${name}.svg`
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(results, null, 2) + '\n')
  fs.writeFileSync(path.join(dir, chartName), chart(results))
  console.log('\n' + table(results))
  console.log(`\nwrote bench/results/${name}.json and bench/results/${chartName} in ${results.elapsedS} s`)
}

function summary(sc, r) {
  if (sc.kind === 'idle') return `${r.connected} connected, RSS ${(r.rssPerConn / 1024).toFixed(2)} KiB/conn (${(r.rssSettledPerConn / 1024).toFixed(2)} after ${SETTLE_S} s idle), kernel ${(r.kernelPerConn / 1024).toFixed(2)} KiB/conn`
  const lat = `p50 ${(r.latencyUs.p50 / 1000).toFixed(1)} ms, p99 ${(r.latencyUs.p99 / 1000).toFixed(1)} ms`
  return `${r.complete ? 'complete' : `INCOMPLETE ${r.delivered}/${r.expected}`}, ${Math.round(r.deliveriesPerSec).toLocaleString('en')} deliveries/s, ${lat}`
}

function aggregate(sc, runs) {
  const ok = runs.filter((r) => !r.error)
  const pick = (f) => median(ok.map(f))
  return {
    runs: runs.length,
    errors: runs.filter((r) => r.error).map((r) => r.error),
    complete: ok.length > 0 && ok.every((r) => r.complete || sc.kind === 'idle'),
    completeness: pick((r) => (r.expected ? r.delivered / r.expected : NaN)),
    deliveriesPerSec: pick((r) => r.deliveriesPerSec),
    p50Ms: pick((r) => r.latencyUs.p50 / 1000),
    p99Ms: pick((r) => r.latencyUs.p99 / 1000),
    maxMs: pick((r) => r.latencyUs.max / 1000),
    connected: pick((r) => r.connected),
    rssPerConnKiB: pick((r) => r.rssPerConn / 1024),
    rssSettledPerConnKiB: pick((r) => (r.rssSettledPerConn ? r.rssSettledPerConn / 1024 : NaN)),
    kernelPerConnKiB: pick((r) => r.kernelPerConn / 1024),
    loopMs: pick((r) => r.server?.loopMs),
    eldP99Ms: pick((r) => r.server?.eld?.p99),
    eldMaxMs: pick((r) => r.server?.eld?.max),
    ...(ok.some((r) => r.transports) ? { transports: ok.map((r) => r.transports) } : {}),
  }
}

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—')

/** The peers, in column order, that have a result in any of `rows`. */
const present = (rows) => peers.map((p) => p.name).filter((n) => rows.some((row) => row.peers[n]))

function table(results) {
  const lines = []
  const names = present(results.scenarios)
  lines.push(`Machine: ${results.machine.cpu}, ${results.machine.cores} cores, ${results.machine.memoryGiB} GiB, Node ${results.machine.node}; server on CPU 0, load generator on CPU 1; medians of ${REPEAT} runs (bursts).`)
  lines.push('')
  if (results.scenarios.length) {
    lines.push(`| scenario | metric | ${names.join(' | ')} |`)
    lines.push(`|---|---|${names.map(() => '---:').join('|')}|`)
  }
  for (const row of results.scenarios) {
    const cell = (f) => names.map((n) => (row.peers[n] ? f(row.peers[n]) : '—')).join(' | ')
    if (row.kind === 'burst') {
      lines.push(`| ${row.title} | deliveries/s | ${cell((p) => fmt(p.deliveriesPerSec) + (p.complete ? '' : ' (incomplete)'))} |`)
      lines.push(`| | p99 latency ms | ${cell((p) => fmt(p.p99Ms, 1))} |`)
      lines.push(`| | event-loop delay p99 / max ms | ${cell((p) => (Number.isFinite(p.eldP99Ms) ? `${fmt(p.eldP99Ms, 1)} / ${fmt(p.eldMaxMs, 1)}` : 'n/a'))} |`)
    } else if (row.kind === 'rate') {
      lines.push(`| ${row.title} | p50 / p99 latency ms | ${cell((p) => `${fmt(p.p50Ms, 1)} / ${fmt(p.p99Ms, 1)}`)} |`)
      lines.push(`| | complete | ${cell((p) => (p.complete ? 'yes' : `no (${fmt(100 * p.completeness, 2)} %)`))} |`)
    } else {
      lines.push(`| ${row.title} | RSS KiB per connection (2 s after connecting) | ${cell((p) => fmt(p.rssPerConnKiB, 2))} |`)
      lines.push(`| | RSS KiB per connection, after ${SETTLE_S} s more idle | ${cell((p) => fmt(p.rssSettledPerConnKiB, 2))} |`)
      lines.push(`| | kernel socket KiB per conn | ${cell((p) => fmt(p.kernelPerConnKiB, 2))} |`)
    }
  }
  if (results.sendcost.length) {
    const sendcostNames = peers.map((p) => p.name).filter((n) => results.sendcost.some((c) => c.peer === n))
    const cols = [...new Set(results.sendcost.map((c) => c.clients))].sort((a, b) => a - b)
    const at = (n, clients, f) => {
      const c = results.sendcost.find((c) => c.peer === n && c.clients === clients)
      return c && f(c) != null ? fmt(f(c) / 1000, 2) : '—'
    }
    lines.push('')
    lines.push(`| hyper-sse send() on the JS thread | ${cols.map((c) => `${fmt(c)} clients`).join(' | ')} |`)
    lines.push(`|---|${cols.map(() => '---:').join('|')}|`)
    for (const n of sendcostNames) {
      const who = sendcostNames.length > 1 || n !== HYPER ? `${n}: ` : ''
      lines.push(`| ${who}µs per call, JS-thread CPU time | ${cols.map((c) => at(n, c, (x) => x.cpuNsPerCall)).join(' | ')} |`)
      lines.push(`| ${who}µs per call, wall clock (one CPU shared with the engine's threads) | ${cols.map((c) => at(n, c, (x) => x.nsPerCall)).join(' | ')} |`)
    }
  }
  if (results.history?.length) {
    lines.push('')
    lines.push('| hyper-sse history: 100,000 stored events of 100 B | RSS B per stored event | encoded B per event | overhead B |')
    lines.push('|---|---:|---:|---:|')
    for (const h of results.history) {
      lines.push(`| ${h.title} | ${fmt(h.rssPerEvent)} | ${fmt(h.encodedPerEvent)} | ${fmt(h.rssPerEvent - h.encodedPerEvent)} |`)
    }
  }
  if (results.backplane?.length) {
    const setups = backplaneSetups.map((s) => s.name)
    lines.push('')
    lines.push(`| hyper-sse across instances | metric | ${setups.join(' | ')} |`)
    lines.push(`|---|---|${setups.map(() => '---:').join('|')}|`)
    for (const row of results.backplane) {
      const cell = (f) => setups.map((n) => (row.setups[n] ? f(row.setups[n]) : '—')).join(' | ')
      if (row.kind === 'rate') {
        lines.push(`| ${row.title} | p50 / p99 latency ms | ${cell((p) => `${fmt(p.p50Ms, 1)} / ${fmt(p.p99Ms, 1)}`)} |`)
        lines.push(`| | complete | ${cell((p) => (p.complete ? 'yes' : `no (${fmt(100 * p.completeness, 2)} %)`))} |`)
      } else {
        lines.push(`| ${row.title} | events/s | ${cell((p) => fmt(p.deliveriesPerSec / row.clients) + (p.complete ? '' : ' (incomplete)'))} |`)
        lines.push(`| | deliveries/s | ${cell((p) => fmt(p.deliveriesPerSec))} |`)
        lines.push(`| | p50 / p99 latency ms | ${cell((p) => `${fmt(p.p50Ms, 1)} / ${fmt(p.p99Ms, 1)}`)} |`)
      }
    }
  }
  return lines.join('\n')
}

function chart(results) {
  const colors = ['#d9480f', '#f08c00', '#e8590c', '#1c7ed6', '#2f9e44', '#74b816', '#868e96']
  const color = (n) => colors[peers.findIndex((p) => p.name === n) % colors.length]
  const panels = []
  for (const row of results.scenarios) {
    if (row.tls) continue // the TLS/HTTP2 rows: in the table only
    const names = present([row])
    const values = names.map((n) => row.peers[n])
    if (row.kind === 'burst') panels.push({ title: `${row.title}: deliveries/s`, names, values: values.map((p) => p.deliveriesPerSec), fmt: (v) => `${(v / 1e6).toFixed(2)} M` })
    if (row.kind === 'rate') panels.push({ title: `${row.title}: p99 latency (ms, lower is better)`, names, values: values.map((p) => p.p99Ms), fmt: (v) => v.toFixed(1) })
    if (row.kind === 'idle') panels.push({ title: `${row.title}: RSS KiB per connection (lower is better)`, names, values: values.map((p) => p.rssPerConnKiB), fmt: (v) => v.toFixed(2) })
  }
  const W = 760
  const barX = 220 // room for the longest label
  const barW = 440
  const panelH = (p) => 40 + p.names.length * 26
  const H = 50 + panels.reduce((h, p) => h + panelH(p), 0) + 30
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="100%" height="100%" fill="white"/>`]
  out.push(`<text x="20" y="24" font-size="15" font-weight="bold">hyper-sse benchmark (${results.machine.cores} cores, ${esc(results.machine.cpu)})</text>`)
  let y0 = 40
  for (const p of panels) {
    out.push(`<text x="20" y="${y0 + 20}" font-weight="bold">${esc(p.title)}</text>`)
    const max = Math.max(...p.values.filter(Number.isFinite), 1e-9)
    p.values.forEach((v, i) => {
      const y = y0 + 30 + i * 26
      const w = Number.isFinite(v) ? Math.max(1, (v / max) * barW) : 0
      out.push(`<text x="20" y="${y + 14}">${esc(p.names[i])}</text>`)
      out.push(`<rect x="${barX}" y="${y}" width="${w.toFixed(1)}" height="20" fill="${color(p.names[i])}"/>`)
      out.push(`<text x="${barX + 6 + w}" y="${y + 14}">${Number.isFinite(v) ? p.fmt(v) : 'n/a'}</text>`)
    })
    y0 += panelH(p)
  }
  out.push(`<text x="20" y="${H - 10}" fill="#555">${esc(results.machine.date)} · Node ${esc(results.machine.node)} · server pinned to CPU 0, load generator to CPU 1 · loopback</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

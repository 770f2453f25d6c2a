// `npm run bench`: the whole comparison, side by side, in one run.
//
// Every scenario runs against every peer server (bench/peers): hyper-sse, the
// seed's plain Node http + res.write loop, better-sse, and a pure-Rust axum
// server with a tokio broadcast channel. Each run starts a fresh server pinned
// to CPU 0 and the load generator (bench/loadgen, Rust) pinned to CPU 1, on
// loopback only; every run is bounded in time and the server is stopped by
// its PID afterwards. Results: a table on the terminal, bench/results/latest.json
// and bench/results/chart.svg. The last rows run hyper-sse alone across
// instances: two instances sharing a redis-server (events sent on one, clients
// on the other) against one instance.
//
//   npm run bench              # full suite (about 10-14 minutes on 2 cores)
//   npm run bench -- --quick   # one repetition, smaller scenarios (a smoke test)

import { spawn, execFileSync } from 'node:child_process'
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const bench = path.join(root, 'bench')
const quick = process.argv.includes('--quick')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',')
const REPEAT = quick ? 1 : 3
const MAX_CLIENTS = 19_000 // the open-file limit here is 20,000 per process

const loadgenBin = path.join(bench, 'loadgen', 'target', 'release', 'sse-loadgen')
const axumBin = path.join(bench, 'peers', 'axum', 'target', 'release', 'axum-sse-peer')

const peers = [
  { name: 'hyper-sse', cmd: process.execPath, args: [path.join(bench, 'peers', 'hyper-sse.mjs')] },
  { name: 'axum (Rust)', cmd: axumBin, args: [] },
  { name: 'better-sse', cmd: process.execPath, args: [path.join(bench, 'peers', 'better-sse.mjs')] },
  { name: 'seed loop', cmd: process.execPath, args: [path.join(bench, 'peers', 'seed.mjs')] },
]

const s = (n) => (quick ? Math.max(1, Math.round(n / 10)) : n)
// The TLS and HTTP/2 rows run hyper-sse alone (HTTPS, ALPN); the plaintext
// HTTP/1.1 rows above them are the comparison.
const secure = { peers: ['hyper-sse'], tls: true }
const scenarios = [
  { id: 'burst-1k', title: '1,000 clients × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT },
  { id: 'burst-10k', title: '10,000 clients × 200 events × 128 B', kind: 'burst', clients: s(10_000), count: s(200), size: 128, repeat: REPEAT },
  { id: 'burst-100', title: '100 clients × 50,000 events × 64 B', kind: 'burst', clients: 100, count: s(50_000), size: 64, repeat: REPEAT },
  { id: 'rate-10k', title: '10,000 clients × 20 events/s × 10 s', kind: 'rate', clients: s(10_000), rate: 20, seconds: quick ? 3 : 10, size: 128, repeat: 1 },
  { id: 'idle', title: `${MAX_CLIENTS.toLocaleString('en')} idle connections`, kind: 'idle', clients: quick ? 2000 : MAX_CLIENTS, repeat: 1 },
  { id: 'burst-1k-tls', title: 'TLS, HTTP/1.1: 1,000 clients × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT, ...secure },
  { id: 'burst-1k-h2', title: 'TLS, HTTP/2: 1,000 streams on 10 connections × 2,000 events × 128 B', kind: 'burst', clients: s(1000), count: s(2000), size: 128, repeat: REPEAT, ...secure, h2: 100 },
  { id: 'idle-tls', title: 'TLS, HTTP/1.1: 10,000 idle connections', kind: 'idle', clients: quick ? 1000 : 10_000, repeat: 1, ...secure },
  { id: 'idle-h2', title: 'TLS, HTTP/2: 10,000 idle streams on 100 connections', kind: 'idle', clients: quick ? 1000 : 10_000, repeat: 1, ...secure, h2: 100 },
]
const sendcostClients = quick ? [1, 1000] : [1, 1000, 10_000, MAX_CLIENTS]
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

async function runOnce(peer, sc, across) {
  const server = across?.streams ?? (await startServer(peer, sc.tls ? cert() : {}))
  try {
    const args = ['--port', String(server.port), '--clients', String(sc.clients), '--scenario', sc.kind, '--sources', '32']
    if (across) args.push('--control-port', String(across.control.port))
    if (sc.tls) args.push('--tls')
    if (sc.h2) args.push('--h2', '--streams-per-conn', String(sc.h2))
    if (sc.kind === 'burst') args.push('--count', String(sc.count), '--size', String(sc.size))
    if (sc.kind === 'rate') args.push('--rate', String(sc.rate), '--seconds', String(sc.seconds), '--size', String(sc.size))
    if (sc.kind === 'idle' && sc.sendcost) args.push('--sendcost', String(sc.sendcost), '--size', '64')
    return await loadgen(args, sc.kind === 'rate' ? sc.seconds + 60 : 120)
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

async function main() {
  build()
  const started = Date.now()
  const results = { machine: machine(), quick, scenarios: [], sendcost: [] }
  for (const sc of scenarios) {
    if (only && !only.includes(sc.id)) continue
    const row = { ...sc, peers: {} }
    for (const peer of peers.filter((p) => !sc.peers || sc.peers.includes(p.name))) {
      const runs = []
      for (let i = 0; i < sc.repeat; i++) {
        process.stdout.write(`  ${sc.id.padEnd(10)} ${peer.name.padEnd(12)} run ${i + 1}/${sc.repeat} … `)
        const r = await runOnce(peer, sc)
        runs.push(r)
        console.log(r.error ? `error: ${r.error}` : summary(sc, r))
      }
      row.peers[peer.name] = aggregate(sc, runs)
    }
    results.scenarios.push(row)
  }
  if (!only || only.includes('sendcost')) {
    const hyper = peers[0]
    for (const clients of sendcostClients) {
      process.stdout.write(`  sendcost   ${String(clients).padStart(6)} clients … `)
      const r = await runOnce(hyper, { kind: 'idle', clients, sendcost: quick ? 100_000 : 1_000_000 })
      const ns = r.sendcost?.nsPerCall
      const cpuNs = r.sendcost?.cpuNsPerCall
      console.log(ns ? `${(ns / 1000).toFixed(2)} µs per send() wall, ${(cpuNs / 1000).toFixed(2)} µs JS-thread CPU` : `error: ${r.error ?? 'no answer'}`)
      results.sendcost.push({ clients: r.connected ?? clients, nsPerCall: ns ?? null, cpuNsPerCall: cpuNs ?? null })
    }
  }
  results.history = []
  if (!only || only.includes('history')) {
    for (const h of historyRows) {
      process.stdout.write(`  history    ${h.title} … `)
      const r = await historyCost(h)
      console.log(r.error ? `error: ${r.error}` : `${fmt(r.rssPerEvent)} B of RSS per stored event, ${fmt(r.encodedPerEvent)} B encoded`)
      results.history.push({ ...h, ...r })
    }
  }
  results.backplane = []
  for (const sc of backplaneRows) {
    if (only && !only.includes(sc.id)) continue
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
  const name = quick || only ? 'partial' : 'latest'
  const chartName = quick || only ? 'partial.svg' : 'chart.svg'
  fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(results, null, 2) + '\n')
  fs.writeFileSync(path.join(dir, chartName), chart(results))
  console.log('\n' + table(results))
  console.log(`\nwrote bench/results/${name}.json and bench/results/${chartName} in ${results.elapsedS} s`)
}

function summary(sc, r) {
  if (sc.kind === 'idle') return `${r.connected} connected, RSS ${(r.rssPerConn / 1024).toFixed(2)} KiB/conn, kernel ${(r.kernelPerConn / 1024).toFixed(2)} KiB/conn`
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
    kernelPerConnKiB: pick((r) => r.kernelPerConn / 1024),
    loopMs: pick((r) => r.server?.loopMs),
    eldP99Ms: pick((r) => r.server?.eld?.p99),
    eldMaxMs: pick((r) => r.server?.eld?.max),
  }
}

const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '—')

function table(results) {
  const lines = []
  const names = peers.map((p) => p.name)
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
      lines.push(`| ${row.title} | RSS KiB per connection | ${cell((p) => fmt(p.rssPerConnKiB, 2))} |`)
      lines.push(`| | kernel socket KiB per conn | ${cell((p) => fmt(p.kernelPerConnKiB, 2))} |`)
    }
  }
  if (results.sendcost.length) {
    lines.push('')
    lines.push(`| hyper-sse send() on the JS thread | ${results.sendcost.map((c) => `${fmt(c.clients)} clients`).join(' | ')} |`)
    lines.push(`|---|${results.sendcost.map(() => '---:').join('|')}|`)
    lines.push(`| µs per call, JS-thread CPU time | ${results.sendcost.map((c) => fmt(c.cpuNsPerCall / 1000, 2)).join(' | ')} |`)
    lines.push(`| µs per call, wall clock (one CPU shared with the engine's threads) | ${results.sendcost.map((c) => fmt(c.nsPerCall / 1000, 2)).join(' | ')} |`)
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
  const names = peers.map((p) => p.name)
  const colors = ['#d9480f', '#1c7ed6', '#2f9e44', '#868e96']
  const panels = []
  for (const row of results.scenarios) {
    if (row.tls) continue // the TLS/HTTP2 rows are hyper-sse alone: in the table only
    if (row.kind === 'burst') panels.push({ title: `${row.title}: deliveries/s`, values: names.map((n) => row.peers[n]?.deliveriesPerSec), fmt: (v) => `${(v / 1e6).toFixed(2)} M` })
    if (row.kind === 'rate') panels.push({ title: `${row.title}: p99 latency (ms, lower is better)`, values: names.map((n) => row.peers[n]?.p99Ms), fmt: (v) => v.toFixed(1) })
    if (row.kind === 'idle') panels.push({ title: `${row.title}: RSS KiB per connection (lower is better)`, values: names.map((n) => row.peers[n]?.rssPerConnKiB), fmt: (v) => v.toFixed(2) })
  }
  const W = 760
  const panelH = 150
  const H = 60 + panels.length * panelH + 30
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`, `<rect width="100%" height="100%" fill="white"/>`]
  out.push(`<text x="20" y="24" font-size="15" font-weight="bold">hyper-sse benchmark (${results.machine.cores} cores, ${esc(results.machine.cpu)})</text>`)
  names.forEach((n, i) => {
    out.push(`<rect x="${20 + i * 150}" y="36" width="12" height="12" fill="${colors[i]}"/><text x="${36 + i * 150}" y="46">${esc(n)}</text>`)
  })
  panels.forEach((p, k) => {
    const y0 = 60 + k * panelH
    out.push(`<text x="20" y="${y0 + 20}" font-weight="bold">${esc(p.title)}</text>`)
    const max = Math.max(...p.values.filter(Number.isFinite), 1e-9)
    p.values.forEach((v, i) => {
      const y = y0 + 30 + i * 26
      const w = Number.isFinite(v) ? Math.max(1, (v / max) * 520) : 0
      out.push(`<text x="20" y="${y + 14}">${esc(names[i])}</text>`)
      out.push(`<rect x="120" y="${y}" width="${w.toFixed(1)}" height="20" fill="${colors[i]}"/>`)
      out.push(`<text x="${126 + w}" y="${y + 14}">${Number.isFinite(v) ? p.fmt(v) : 'n/a'}</text>`)
    })
  })
  out.push(`<text x="20" y="${H - 10}" fill="#555">${esc(results.machine.date)} · Node ${esc(results.machine.node)} · server pinned to CPU 0, load generator to CPU 1 · loopback</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

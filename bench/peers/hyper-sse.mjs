import { readFileSync } from 'node:fs'
// Benchmark peer "hyper-sse": the benchmark scenario served by this package.
// The streams are the engine's (createServer({ path: '/events' })); the
// control routes are plain routes answered by onRequest on the same port.
//
//   PORT=39003 node bench/peers/hyper-sse.mjs    (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// Options, so the stream matches the other peers:
//   history: 0                      no replay log, so no automatic `id:` lines
//   keepAlive: 0                    no heartbeat
//   maxBufferedBytes: 64 MiB        a benchmark burst never evicts a client
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { createServer } from 'hyper-sse'

const port = Number(process.env.PORT ?? 0)
const host = process.env.HOST || '127.0.0.1'
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT: ${process.env.PORT}`)
  process.exit(2)
}

const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000)

/** Returns a function making `${ts} ${pad}`, exactly `size` bytes (unless ts alone is longer). */
function dataMaker(size) {
  let padFor = -1
  let pad = ''
  return () => {
    const ts = String(nowMicros())
    if (ts.length !== padFor) {
      padFor = ts.length
      pad = 'x'.repeat(Math.max(0, size - ts.length - 1))
    }
    return ts + ' ' + pad
  }
}

/**
 * Enables an event-loop-delay histogram and resolves once it is recording.
 * The histogram's timer only records from its second tick on (the first one
 * just notes the time), so a loop started right after enable() that blocks
 * the thread would not be recorded at all.
 */
async function startEld() {
  const eld = monitorEventLoopDelay({ resolution: 1 })
  eld.enable()
  for (let i = 0; i < 50 && eld.count === 0; i++) await new Promise((resolve) => setTimeout(resolve, 1))
  return eld
}

/** Non-negative integer query parameter, or null. */
function intParam(query, name) {
  const v = query[name]
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return null
  return Number(v)
}

const notFound = { status: 404, body: 'not found\n' }
const badRequest = (what) => ({ status: 400, body: `missing or invalid ${what}\n` })
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function onBurst(query) {
  const count = intParam(query, 'count')
  const size = intParam(query, 'size')
  if (count === null) return badRequest('count')
  if (size === null) return badRequest('size')
  const eld = await startEld()
  const make = dataMaker(size)
  const t0 = performance.now()
  for (let i = 0; i < count; i++) server.send(make())
  const loopMs = performance.now() - t0
  await sleep(500)
  eld.disable()
  const ms = (ns) => ns / 1e6
  return {
    body: {
      count,
      loopMs,
      eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
    },
  }
}

function onRate(query) {
  const rate = intParam(query, 'rate')
  const seconds = intParam(query, 'seconds')
  const size = intParam(query, 'size')
  if (rate === null || rate === 0) return badRequest('rate')
  if (seconds === null) return badRequest('seconds')
  if (size === null) return badRequest('size')
  const total = rate * seconds
  if (total > 0) {
    const make = dataMaker(size)
    let sent = 0
    const timer = setInterval(() => {
      server.send(make())
      if (++sent >= total) clearInterval(timer)
    }, 1000 / rate)
  }
  return { body: { ok: true } }
}

/** The JS-thread cost of one send(): N calls of the same data, timed as a whole. */
function onSendcost(query) {
  const count = intParam(query, 'count')
  const size = intParam(query, 'size')
  if (count === null || count === 0) return badRequest('count')
  if (size === null) return badRequest('size')
  const data = dataMaker(size)()
  // Wall time, and the JS thread's own CPU time (first field of
  // /proc/thread-self/schedstat, in ns): with the server pinned to one CPU,
  // wall time also counts the engine's threads taking that CPU away.
  const cpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0])
  const c0 = cpu()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < count; i++) server.send(data)
  const ns = process.hrtime.bigint() - t0
  const cpuNs = cpu() - c0
  return { body: { count, nsPerCall: Number(ns) / count, cpuNsPerCall: cpuNs / count } }
}

function onRequest(req) {
  switch (`${req.method} ${req.path}`) {
    case 'POST /burst':
      return onBurst(req.query)
    case 'POST /rate':
      return onRate(req.query)
    case 'POST /sendcost':
      return onSendcost(req.query)
    case 'GET /stats':
      return { body: { rss: process.memoryUsage().rss, connections: server.stats().connections } }
    default:
      return notFound
  }
}

// TLS_CERT and TLS_KEY (PEM file paths) turn on HTTPS with ALPN h2/http1.1,
// for the benchmark's TLS and HTTP/2 rows.
const tls = process.env.TLS_CERT
  ? { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
  : undefined

const server = createServer({
  path: '/events',
  history: 0,
  keepAlive: 0,
  maxBufferedBytes: 64 * 1024 * 1024,
  onRequest,
  ...(tls ? { tls } : {}),
})

let bound
try {
  bound = await server.listen(port, host)
} catch (err) {
  console.error(`hyper-sse peer: cannot listen on ${host}:${port}: ${err?.message ?? err}`)
  process.exit(1)
}
console.log(`listening ${bound.port}`)

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))

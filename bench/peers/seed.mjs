// Benchmark peer "seed": the classic hand-written SSE server the project
// started from — Node's http module, one res.write per event per client.
//
//   PORT=39001 node bench/peers/seed.mjs        (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// Differences from the seed demo, all needed to measure it fairly:
//   - the response head is flushed at once (res.flushHeaders()), so a client
//     sees the 200 before the first event;
//   - no per-response setInterval: events are written by /burst and /rate,
//     in a loop over every open response (a Set; removed on 'close', so a
//     client that leaves is not written to again and is not leaked);
//   - res.write's return value is ignored, like the seed: no backpressure.
import http from 'node:http'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

const port = Number(process.env.PORT ?? 0)
const host = process.env.HOST || '127.0.0.1'
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT: ${process.env.PORT}`)
  process.exit(2)
}

/** Every open /events response. */
const clients = new Set()

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
function intParam(url, name) {
  const v = url.searchParams.get(name)
  if (v === null || !/^\d+$/.test(v)) return null
  return Number(v)
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function notFound(res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' })
  res.end('not found\n')
}

function badRequest(res, what) {
  res.writeHead(400, { 'Content-Type': 'text/plain' })
  res.end(`missing or invalid ${what}\n`)
}

/** Writes one event to every open response: the seed's res.write, per client. */
function broadcast(data) {
  for (const res of clients) res.write('data: ' + data + '\n\n')
}

function onEvents(req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  })
  res.flushHeaders()
  clients.add(res)
  res.on('close', () => clients.delete(res))
}

async function onBurst(url, res) {
  const count = intParam(url, 'count')
  const size = intParam(url, 'size')
  if (count === null) return badRequest(res, 'count')
  if (size === null) return badRequest(res, 'size')
  const eld = await startEld()
  const make = dataMaker(size)
  const t0 = performance.now()
  for (let i = 0; i < count; i++) broadcast(make())
  const loopMs = performance.now() - t0
  setTimeout(() => {
    eld.disable()
    const ms = (ns) => ns / 1e6
    sendJson(res, 200, {
      count,
      loopMs,
      eld: { p50: ms(eld.percentile(50)), p99: ms(eld.percentile(99)), max: ms(eld.max) },
    })
  }, 500)
}

function onRate(url, res) {
  const rate = intParam(url, 'rate')
  const seconds = intParam(url, 'seconds')
  const size = intParam(url, 'size')
  if (rate === null || rate === 0) return badRequest(res, 'rate')
  if (seconds === null) return badRequest(res, 'seconds')
  if (size === null) return badRequest(res, 'size')
  sendJson(res, 200, { ok: true })
  const total = rate * seconds
  if (total === 0) return
  const make = dataMaker(size)
  let sent = 0
  const timer = setInterval(() => {
    broadcast(make())
    if (++sent >= total) clearInterval(timer)
  }, 1000 / rate)
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost')
  const route = `${req.method} ${url.pathname}`
  switch (route) {
    case 'GET /events':
      return onEvents(req, res)
    case 'POST /burst':
      return void onBurst(url, res)
    case 'POST /rate':
      return onRate(url, res)
    case 'GET /stats':
      return sendJson(res, 200, { rss: process.memoryUsage().rss, connections: clients.size })
    default:
      return notFound(res)
  }
})

server.on('error', (err) => {
  console.error(`seed peer: ${err.message}`)
  process.exit(1)
})
// Same accept backlog as hyper-sse (the kernel caps it at somaxconn).
server.listen({ port, host, backlog: 4096 }, () => {
  console.log(`listening ${server.address().port}`)
})

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))

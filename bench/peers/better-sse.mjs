// Benchmark peer "better-sse": the benchmark scenario served with the
// better-sse npm package (v0.16) on Node's http module, the way its README
// shows: createSession(req, res) per client, registered with one channel
// created by createChannel(), and channel.broadcast(data) per event.
//
//   PORT=39002 node bench/peers/better-sse.mjs   (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// Session options, so the stream matches the other peers as far as the
// library allows:
//   keepAlive: null        no heartbeat (default: a `:` comment every 10 s)
//   retry: null            no `retry:` line at the start (default: 2000)
//   serializer: identity   the data goes out as is (default: JSON.stringify,
//                          which would add quotes and break "exactly S bytes")
// What cannot be turned off: channel.broadcast() always writes `event:message`
// and `id:<one random UUID per broadcast>` before `data:` (and no space after
// the colons), so every event is 53 bytes longer on the wire than with
// the other peers, and each broadcast calls crypto.randomUUID() once. The
// default sanitizer (two regex replaces per field per session) is kept.
import http from 'node:http'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { createChannel, createSession } from 'better-sse'

const port = Number(process.env.PORT ?? 0)
const host = process.env.HOST || '127.0.0.1'
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT: ${process.env.PORT}`)
  process.exit(2)
}

const channel = createChannel()
const sessionOptions = {
  keepAlive: null,
  retry: null,
  serializer: (data) => data,
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

async function onEvents(req, res) {
  // Sends 200 + headers (Content-Type: text/event-stream, Cache-Control:
  // private, no-cache, ...) on the next setImmediate, then resolves.
  const session = await createSession(req, res, sessionOptions)
  // A client that hung up before the session connected: better-sse would
  // still mark the session connected (and never disconnect it), so do not
  // register it.
  if (req.socket.destroyed || res.destroyed) return
  // Deregistered by the channel itself when the session disconnects.
  channel.register(session)
}

async function onBurst(url, res) {
  const count = intParam(url, 'count')
  const size = intParam(url, 'size')
  if (count === null) return badRequest(res, 'count')
  if (size === null) return badRequest(res, 'size')
  const eld = await startEld()
  const make = dataMaker(size)
  const t0 = performance.now()
  for (let i = 0; i < count; i++) channel.broadcast(make())
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
    channel.broadcast(make())
    if (++sent >= total) clearInterval(timer)
  }, 1000 / rate)
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost')
  const route = `${req.method} ${url.pathname}`
  switch (route) {
    case 'GET /events':
      return void onEvents(req, res).catch((err) => {
        console.error(`better-sse peer: ${err.message}`)
        res.destroy()
      })
    case 'POST /burst':
      return void onBurst(url, res)
    case 'POST /rate':
      return onRate(url, res)
    case 'GET /stats':
      return sendJson(res, 200, { rss: process.memoryUsage().rss, connections: channel.sessionCount })
    default:
      return notFound(res)
  }
})

server.on('error', (err) => {
  console.error(`better-sse peer: ${err.message}`)
  process.exit(1)
})
// Same accept backlog as hyper-sse (the kernel caps it at somaxconn).
server.listen({ port, host, backlog: 4096 }, () => {
  console.log(`listening ${server.address().port}`)
})

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))

import { readFileSync } from 'node:fs'
// Benchmark peer "hyper-sse": the benchmark scenario served by this package.
// The streams are the engine's (createServer({ path: '/events' })); the
// control routes are plain routes answered by onRequest on the same port.
//
//   PORT=39003 node bench/peers/hyper-sse.mjs    (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// hyper-sse runs at its defaults, as users run it: history 1000 (every
// event carries an automatic `id:` line the other peers do not send), a
// heartbeat after 15 s of silence, the default slow-client policy.
// PEER_OPTIONS (JSON) adds createServer options for a row labelled as tuned.
import { address, burst, dataMaker, intValue, notFound, rate } from './common.mjs'
import { createServer } from 'hyper-sse'

const { port, host } = address()
const badRequest = (what) => ({ status: 400, body: `missing or invalid ${what}\n` })

/** The JS-thread cost of one send(): N calls of the same data, timed as a whole. */
function onSendcost(query) {
  const count = intValue(query.count)
  const size = intValue(query.size)
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

/**
 * What history costs: fills `channels` channels with `count` events of
 * `size` bytes each, twice (two sets of channels), and reports the RSS the
 * second fill added per stored event, beside the event's encoded size (its
 * `data:` line and automatic `id:`). The first fill brings the JavaScript
 * heap and the allocator to their working size, so what the second one adds
 * is the history alone.
 */
async function onHistory(query) {
  const channels = intValue(query.channels)
  const count = intValue(query.count)
  const size = intValue(query.size)
  if (!channels) return badRequest('channels')
  if (!count) return badRequest('count')
  if (size === null) return badRequest('size')
  const data = 'x'.repeat(size)
  const settle = () => new Promise((resolve) => setTimeout(resolve, 300))
  const fill = (set) => {
    const targets = Array.from({ length: channels }, (_, c) => ({ channel: `h${set}-${c}` }))
    for (let i = 0; i < count; i++) for (const target of targets) server.send(data, target)
  }
  fill(0)
  await settle()
  const before = process.memoryUsage().rss
  const first = server.stats().eventsSent + 1
  fill(1)
  await settle()
  const grown = process.memoryUsage().rss - before
  const stored = Object.entries(server.stats().channels)
    .filter(([name]) => name.startsWith('h1-'))
    .reduce((sum, [, c]) => sum + c.history, 0)
  // `id: <epoch>-<n>\ndata: <data>\n\n`; the epoch is the start time in base 36.
  const epoch = Date.now().toString(36).length
  let encoded = 0
  for (let n = first; n < first + stored; n++) encoded += 4 + epoch + 1 + String(n).length + 1 + 6 + size + 2
  return { body: { stored, rssPerEvent: grown / stored, encodedPerEvent: encoded / stored } }
}

function onRequest(req) {
  switch (`${req.method} ${req.path}`) {
    case 'POST /burst':
      return burst((n) => req.query[n], (data) => server.send(data))
    case 'POST /rate':
      return rate((n) => req.query[n], (data) => server.send(data))
    case 'POST /sendcost':
      return onSendcost(req.query)
    case 'POST /history':
      return onHistory(req.query)
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

// REDIS_URL (and REDIS_PREFIX) run this instance on the Redis backplane,
// for the benchmark's cross-instance rows.
const redis = process.env.REDIS_URL ? { url: process.env.REDIS_URL, prefix: process.env.REDIS_PREFIX || 'bench' } : undefined

const tuned = process.env.PEER_OPTIONS ? JSON.parse(process.env.PEER_OPTIONS) : {}

const server = createServer({
  path: '/events',
  ...tuned,
  onRequest,
  ...(tls ? { tls } : {}),
  ...(redis ? { redis, onError: (e, where) => console.error(`hyper-sse peer: ${where}: ${e.message}`) } : {}),
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

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
import { readFileSync } from 'node:fs'
import { address, controlRoutes, notFound } from './common.mjs'
import { hyperControl } from './hyper-sse-control.mjs'
import { createServer } from 'hyper-sse'

const { port, host } = address()

// The control protocol (hyper-sse-control.mjs), answered by onRequest
// (`routes` is set right after createServer, before any request arrives).
function onRequest(req) {
  const route = routes[`${req.method} ${req.path}`]
  return route ? route((n) => req.query[n]) : notFound
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
const routes = controlRoutes(hyperControl(server))

let bound
try {
  bound = await server.listen(port, host)
} catch (err) {
  console.error(`hyper-sse peer: cannot listen on ${host}:${port}: ${err?.message ?? err}`)
  process.exit(1)
}
console.log(`listening ${bound.port}`)

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))

// What every Node peer shares: the PORT/HOST settings, the event payload
// (`${ts} ${pad}`, see README.md), the event-loop-delay probe, and query
// parameter parsing. (The axum peer does the same in Rust.)
import http from 'node:http'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'

/** PORT (0 = any) and HOST (default 127.0.0.1) from the environment; exits on a bad PORT. */
export function address() {
  const port = Number(process.env.PORT ?? 0)
  const host = process.env.HOST || '127.0.0.1'
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`invalid PORT: ${process.env.PORT}`)
    process.exit(2)
  }
  return { port, host }
}

const nowMicros = () => Math.round((performance.timeOrigin + performance.now()) * 1000)

/** Returns a function making `${ts} ${pad}`, exactly `size` bytes (unless ts alone is longer). */
export function dataMaker(size) {
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
export async function startEld() {
  const eld = monitorEventLoopDelay({ resolution: 1 })
  eld.enable()
  for (let i = 0; i < 50 && eld.count === 0; i++) await new Promise((resolve) => setTimeout(resolve, 1))
  return eld
}

/** Stops the histogram and reports it in milliseconds. */
export function eldReport(eld) {
  eld.disable()
  return { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 }
}

/** A non-negative integer from a query parameter's raw value, or null. */
export function intValue(v) {
  if (typeof v !== 'string' || !/^\d+$/.test(v)) return null
  return Number(v)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const invalid = (what) => ({ status: 400, body: `missing or invalid ${what}\n` })

/**
 * POST /burst: `count` events of `size` bytes through `send`, in one
 * synchronous loop; answers after a further 500 ms of event-loop-delay
 * measurement. `param(name)` reads a query parameter's raw value.
 */
export async function burst(param, send) {
  const count = intValue(param('count'))
  const size = intValue(param('size'))
  if (count === null) return invalid('count')
  if (size === null) return invalid('size')
  const eld = await startEld()
  const make = dataMaker(size)
  const t0 = performance.now()
  for (let i = 0; i < count; i++) send(make())
  const loopMs = performance.now() - t0
  await sleep(500)
  return { status: 200, body: { count, loopMs, eld: eldReport(eld) } }
}

/** POST /rate: answers at once, then `rate` events per second for `seconds`. */
export function rate(param, send) {
  const perSecond = intValue(param('rate'))
  const seconds = intValue(param('seconds'))
  const size = intValue(param('size'))
  if (perSecond === null || perSecond === 0) return invalid('rate')
  if (seconds === null) return invalid('seconds')
  if (size === null) return invalid('size')
  const total = perSecond * seconds
  if (total > 0) {
    const make = dataMaker(size)
    let sent = 0
    const timer = setInterval(() => {
      send(make())
      if (++sent >= total) clearInterval(timer)
    }, 1000 / perSecond)
  }
  return { status: 200, body: { ok: true } }
}

/** 404 for everything else. */
export const notFound = { status: 404, body: 'not found\n' }

/**
 * The control protocol as one table, `'METHOD /path'` → `(param) => reply`
 * (a reply is `{ status?, body }`, or a promise of one; `param(name)` reads
 * a query parameter's raw value): /burst and /rate through `broadcast`,
 * /stats with `connections()`, and a peer's own routes in `more`. Every
 * Node peer routes through it, whatever server it runs on.
 */
export function controlRoutes({ broadcast, connections, more = {} }) {
  return {
    'POST /burst': (param) => burst(param, broadcast),
    'POST /rate': (param) => rate(param, broadcast),
    'GET /stats': () => ({ status: 200, body: { rss: process.memoryUsage().rss, connections: connections() } }),
    ...more,
  }
}

/** Answers a Node response with `{ status, body }` (text or JSON). */
export function reply(res, { status = 200, body }) {
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  const type = typeof body === 'string' ? 'text/plain' : 'application/json'
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * Listens with a Node `http`/`https` server (plain, or an application's
 * such as Express's) the way every Node peer does: the same accept backlog
 * as hyper-sse (the kernel caps it at somaxconn), `listening <port>` on
 * stdout once ready, exit on SIGINT/SIGTERM or a listen error.
 */
export function listenNode(name, server) {
  const { port, host } = address()
  server.on('error', (err) => {
    console.error(`${name} peer: ${err.message}`)
    process.exit(1)
  })
  server.listen({ port, host, backlog: 4096 }, () => console.log(`listening ${server.address().port}`))
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0))
}

/**
 * A peer on Node's http module (seed, better-sse): `onEvents(req, res)` for
 * `GET /events`, the control protocol (`controlRoutes(control)`) for the
 * rest.
 */
export function serveHttp(name, { onEvents, ...control }) {
  const routes = controlRoutes(control)
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost')
    const key = `${req.method} ${url.pathname}`
    if (key === 'GET /events') return onEvents(req, res)
    const route = routes[key]
    if (!route) return reply(res, notFound)
    Promise.resolve(route((n) => url.searchParams.get(n) ?? undefined)).then((r) => reply(res, r))
  })
  listenNode(name, server)
}

// The control routes of a hyper-sse peer, shared by the standalone peer
// (hyper-sse.mjs, answered by onRequest) and the Express peer
// (hyper-sse-express.mjs, Express routes): the common protocol through
// server.send(), plus POST /sendcost and POST /history. See README.md.
import { readFileSync } from 'node:fs'
import { dataMaker, intValue } from './common.mjs'

const badRequest = (what) => ({ status: 400, body: `missing or invalid ${what}\n` })

/** The JS-thread cost of one send(): N calls of the same data, timed as a whole. */
function onSendcost(server, param) {
  const count = intValue(param('count'))
  const size = intValue(param('size'))
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
async function onHistory(server, param) {
  const channels = intValue(param('channels'))
  const count = intValue(param('count'))
  const size = intValue(param('size'))
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

/**
 * What `controlRoutes()` (common.mjs) needs for a hyper-sse `server`:
 * events go out with `server.send(data)`, `connections` is
 * `server.stats().connections`; `more` adds a peer's own routes.
 */
export function hyperControl(server, more = {}) {
  return {
    broadcast: (data) => server.send(data),
    connections: () => server.stats().connections,
    more: {
      'POST /sendcost': (param) => onSendcost(server, param),
      'POST /history': (param) => onHistory(server, param),
      ...more,
    },
  }
}

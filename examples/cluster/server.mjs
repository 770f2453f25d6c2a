// The clock demo on several instances that act as one through Redis.
// Start one process per instance; the one with SEND=1 ticks, and a browser on
// any instance sees the same events (and resumes on any of them):
//
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3001 SEND=1 node examples/cluster/server.mjs
//   REDIS_URL=redis://127.0.0.1:6379 PORT=3002        node examples/cluster/server.mjs
//   open http://127.0.0.1:3001/ and http://127.0.0.1:3002/
//
// Behind a load balancer every instance would get the same PORT on its own
// machine; the page is the clock demo's (examples/clock/index.html).
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'hyper-sse'

const clockPage = join(dirname(fileURLToPath(import.meta.url)), '..', 'clock')
const port = Number(process.env.PORT ?? 3001)
const host = process.env.HOST || '127.0.0.1'
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379'
const prefix = process.env.REDIS_PREFIX || 'clock-demo'
const intervalMs = Number(process.env.INTERVAL_MS ?? 1000)
const sending = process.env.SEND === '1'

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT: ${process.env.PORT}`)
  process.exit(2)
}
if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
  console.error(`invalid INTERVAL_MS: ${process.env.INTERVAL_MS}`)
  process.exit(2)
}

const server = createServer({
  path: '/sendMessage',
  static: clockPage,
  redis: { url, prefix },
  onError: (err, where) => console.error(`hyper-sse cluster demo: ${where}: ${err.message}`),
})

let bound
try {
  bound = await server.listen(port, host)
} catch (err) {
  console.error(`hyper-sse cluster demo: cannot start on ${host}:${port}: ${err?.message ?? err}`)
  process.exit(1)
}
console.log(`hyper-sse cluster demo (${sending ? 'sending' : 'relaying'}) listening on http://${host}:${bound.port}/`)

const timer = sending
  ? setInterval(() => {
      server.send(new Date().toLocaleTimeString())
      server.comment("'这是注释！'")
      server.send({ event: 'myEvent', data: new Date().toLocaleString() })
    }, intervalMs)
  : undefined

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    clearInterval(timer)
    await server.close() // what was sent reaches Redis and this instance's clients first
    process.exit(0)
  })
}

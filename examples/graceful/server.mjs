// Graceful shutdown under systemd, PM2, Docker or Kubernetes: all of them stop
// a service with SIGTERM, then SIGKILL after a grace period. On SIGTERM the
// server stops accepting, ends every stream cleanly after the events already
// sent (EventSource clients reconnect, to another instance if there is one),
// and the process exits 0 once every socket is closed.
//
//   PORT=3000 HOST=127.0.0.1 node examples/graceful/server.mjs
//
// hyper-sse.service (systemd) and ecosystem.config.cjs (PM2) beside this file
// run it. __test__/shutdown.spec.mjs sends it SIGTERM with a client connected.
import { createServer } from 'hyper-sse'

const server = createServer({ path: '/events' })
const timer = setInterval(() => server.send(new Date().toISOString()), 1000)

async function shutdown() {
  clearInterval(timer)
  await server.close() // every stream ends cleanly; a client that does not read is dropped after 5 s
  process.exit(0)
}
// Before anything says "listening": a SIGTERM that comes before the handler
// is in place gets the default action (the process dies at once, unclean).
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)

const { port } = await server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1')
console.log(`listening on ${port}`)

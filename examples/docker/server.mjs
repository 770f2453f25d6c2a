// The application the Dockerfile beside this file runs: an event stream on
// /events, a health check on /health for HEALTHCHECK and orchestrators, and a
// clean exit on SIGTERM (`docker stop`). HOST and PORT come from the image.
import { createServer } from 'hyper-sse'

const server = createServer({
  path: '/events',
  onRequest: (req) => (req.path === '/health' ? { body: { ok: true, connections: server.stats().connections } } : undefined),
})
const { port } = await server.listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '0.0.0.0')
console.log(`listening on ${port}`)

const timer = setInterval(() => server.send({ event: 'tick', data: { at: new Date().toISOString() } }), 1000)

async function shutdown() {
  clearInterval(timer)
  await server.close()
  process.exit(0)
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)

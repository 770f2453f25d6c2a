// hyper-sse clock demo: the classic EventSource example, served by the native engine.
//
//   npm start                      # http://127.0.0.1:3000/
//   PORT=0 HOST=127.0.0.1 INTERVAL_MS=200 node examples/clock/server.mjs
//
// Every INTERVAL_MS (default 1000) ms every connected browser receives
//   data: <time>                   -> evtSource.onmessage
//   : '这是注释！'                  -> a comment, ignored by EventSource
//   event: myEvent / data: <date>  -> evtSource.addEventListener('myEvent', ...)
// Any other path is served from this directory (GET / -> index.html).
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
// The package imports itself by name (package.json "exports"), so this line
// is exactly what an application that installed hyper-sse writes.
import { createServer } from 'hyper-sse'

const here = dirname(fileURLToPath(import.meta.url))
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST || '127.0.0.1' // loopback by default: this is a demo
const intervalMs = Number(process.env.INTERVAL_MS ?? 1000)

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`invalid PORT: ${process.env.PORT}`)
  process.exit(2)
}
if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
  console.error(`invalid INTERVAL_MS: ${process.env.INTERVAL_MS}`)
  process.exit(2)
}

const server = createServer({ path: '/sendMessage', static: here })

let bound
try {
  bound = await server.listen(port, host)
} catch (err) {
  console.error(`hyper-sse clock demo: cannot listen on ${host}:${port}: ${err?.message ?? err}`)
  process.exit(1)
}

const shownHost = String(bound.host).includes(':') ? `[${bound.host}]` : bound.host
console.log(`hyper-sse clock demo listening on http://${shownHost}:${bound.port}/`)

const timer = setInterval(function () {
  // 事件一
  server.send(new Date().toLocaleTimeString())
  // 注释
  server.comment("'这是注释！'")
  // 事件二
  server.send({ event: 'myEvent', data: new Date().toLocaleString() })
}, intervalMs)

let closing = false
async function shutdown(signal) {
  if (closing) return
  closing = true
  clearInterval(timer)
  // Do not hang forever if close() never settles.
  setTimeout(() => {
    console.error('hyper-sse clock demo: close() timed out, exiting')
    process.exit(1)
  }, 5000).unref()
  try {
    await server.close()
    console.log(`hyper-sse clock demo: closed (${signal})`)
    process.exit(0)
  } catch (err) {
    console.error(`hyper-sse clock demo: close failed: ${err?.message ?? err}`)
    process.exit(1)
  }
}
process.on('SIGINT', () => shutdown('SIGINT'))
process.on('SIGTERM', () => shutdown('SIGTERM'))

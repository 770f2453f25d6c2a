// The seed's own server, kept as it was, with its per-response setInterval
// loop replaced by send(): Node's http server still answers every request
// and serves the page; hyper-sse takes over /sendMessage, on the same port.
//
//   node examples/node-http/server.mjs          # http://127.0.0.1:3000/
//   PORT=0 INTERVAL_MS=200 node examples/node-http/server.mjs
import http from 'node:http'
import fs from 'node:fs'
import { createServer } from 'hyper-sse'

const port = Number(process.env.PORT ?? 3000)
const intervalMs = Number(process.env.INTERVAL_MS ?? 1000)
const page = fs.readFileSync(new URL('../clock/index.html', import.meta.url))

const sse = createServer() // never listens: it streams what Node hands it

const server = http.createServer(function (req, res) {
  if (req.url === '/sendMessage') {
    // was: res.writeHead(200, { 'Content-Type': 'text/event-stream' }) and a setInterval per client
    sse.handle(req, res).catch((err) => console.error('handle():', err.message))
  } else {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
    res.end(page)
  }
})

// One timer for every client, instead of one per response.
const timer = setInterval(function () {
  sse.send(new Date().toLocaleTimeString())                         // data:<time>   -> onmessage
  sse.comment("'这是注释！'")                                         // : comment     -> ignored
  sse.send({ event: 'myEvent', data: new Date().toLocaleString() }) // event: myEvent -> addEventListener
}, intervalMs)

server.listen(port, process.env.HOST || '127.0.0.1', () => {
  console.log(`node:http + hyper-sse listening on http://127.0.0.1:${server.address().port}/`)
})

async function shutdown() {
  clearInterval(timer)
  // hyper-sse first: it ends every stream it carries (Node no longer owns
  // their sockets, so its close() would not wait for them); then Node's.
  await sse.close()
  server.close()
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)

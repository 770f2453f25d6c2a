// Benchmark peer "hyper-sse in Express": an Express 5 app whose `/events`
// route hands each request to hyper-sse with `sse.handle(req, res)`, where
// `sse = createServer()` at its defaults and never listens; the control
// routes (hyper-sse-control.mjs) are Express routes on the same app.
//
//   PORT=39005 node bench/peers/hyper-sse-express.mjs
//   PORT=39006 TLS_CERT=cert.pem TLS_KEY=key.pem node bench/peers/hyper-sse-express.mjs
//
// On plain HTTP/1.1 the engine takes each stream's socket from Node
// (transport 'native'); over https (TLS_CERT/TLS_KEY: https.createServer)
// every batch goes through res.write ('bridged'). `GET /transports` counts
// the streams handed over by transport, so the runner can check that a row
// measured the transport its column names.
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
import { createServer } from 'hyper-sse'
import { serveExpress } from './express.mjs'
import { hyperControl } from './hyper-sse-control.mjs'

const sse = createServer()
const transports = { native: 0, bridged: 0, none: 0 }

function onEvents(req, res) {
  sse.handle(req, res).then(
    (client) => void transports[client ? client.transport : 'none']++,
    (err) => {
      console.error(`hyper-sse in Express peer: ${err.message}`)
      res.destroy()
    },
  )
}

serveExpress('hyper-sse in Express', {
  onEvents,
  ...hyperControl(sse, { 'GET /transports': () => ({ body: transports }) }),
})

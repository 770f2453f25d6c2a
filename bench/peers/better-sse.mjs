// Benchmark peer "better-sse": the benchmark scenario served with the
// better-sse npm package (v0.16) on Node's http module, the way its README
// shows: createSession(req, res) per client, registered with one channel
// created by createChannel(), and channel.broadcast(data) per event.
//
//   PORT=39002 node bench/peers/better-sse.mjs   (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// Session options, so the stream matches the other peers as far as the
// library allows:
//   keepAlive: null        no heartbeat (default: a `:` comment every 10 s)
//   retry: null            no `retry:` line at the start (default: 2000)
//   serializer: identity   the data goes out as is (default: JSON.stringify,
//                          which would add quotes and break "exactly S bytes")
// What cannot be turned off: channel.broadcast() always writes `event:message`
// and `id:<one random UUID per broadcast>` before `data:` (and no space after
// the colons), so every event is 53 bytes longer on the wire than with
// the other peers, and each broadcast calls crypto.randomUUID() once. The
// default sanitizer (two regex replaces per field per session) is kept.
import { createChannel, createSession } from 'better-sse'
import { serveHttp } from './common.mjs'

const channel = createChannel()
const sessionOptions = {
  keepAlive: null,
  retry: null,
  serializer: (data) => data,
}

async function onEvents(req, res) {
  // Sends 200 + headers (Content-Type: text/event-stream, Cache-Control:
  // private, no-cache, ...) on the next setImmediate, then resolves.
  const session = await createSession(req, res, sessionOptions)
  // A client that hung up before the session connected: better-sse would
  // still mark the session connected (and never disconnect it), so do not
  // register it.
  if (req.socket.destroyed || res.destroyed) return
  // Deregistered by the channel itself when the session disconnects.
  channel.register(session)
}

serveHttp('better-sse', {
  onEvents: (req, res) =>
    void onEvents(req, res).catch((err) => {
      console.error(`better-sse peer: ${err.message}`)
      res.destroy()
    }),
  broadcast: (data) => channel.broadcast(data),
  connections: () => channel.sessionCount,
})

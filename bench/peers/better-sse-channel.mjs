// better-sse as the benchmark uses it, shared by the peer on Node's http
// module (better-sse.mjs) and the one in Express (better-sse-express.mjs):
// createSession(req, res) per client, registered with one channel created by
// createChannel(), and channel.broadcast(data) per event.
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

const sessionOptions = {
  keepAlive: null,
  retry: null,
  serializer: (data) => data,
}

/** `{ onEvents, broadcast, connections }` for serveHttp() or serveExpress(), over one fresh channel. */
export function betterSse(name) {
  const channel = createChannel()

  async function register(req, res) {
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

  return {
    onEvents: (req, res) =>
      void register(req, res).catch((err) => {
        console.error(`${name} peer: ${err.message}`)
        res.destroy()
      }),
    broadcast: (data) => channel.broadcast(data),
    connections: () => channel.sessionCount,
  }
}

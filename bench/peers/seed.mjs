// Benchmark peer "seed": the classic hand-written SSE server the project
// started from — Node's http module, one res.write per event per client.
//
//   PORT=39001 node bench/peers/seed.mjs        (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
//
// Differences from the seed demo, all needed to measure it fairly:
//   - the response head is flushed at once (res.flushHeaders()), so a client
//     sees the 200 before the first event;
//   - no per-response setInterval: events are written by /burst and /rate,
//     in a loop over every open response (a Set; removed on 'close', so a
//     client that leaves is not written to again and is not leaked);
//   - res.write's return value is ignored, like the seed: no backpressure.
import { serveHttp } from './common.mjs'

/** Every open /events response. */
const clients = new Set()

/** Writes one event to every open response: the seed's res.write, per client. */
function broadcast(data) {
  for (const res of clients) res.write('data: ' + data + '\n\n')
}

function onEvents(req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  })
  res.flushHeaders()
  clients.add(res)
  res.on('close', () => clients.delete(res))
}

serveHttp('seed', { onEvents, broadcast, connections: () => clients.size })

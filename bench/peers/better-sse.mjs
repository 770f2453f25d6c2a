// Benchmark peer "better-sse": the benchmark scenario served with the
// better-sse npm package (v0.16) on Node's http module, the way its README
// shows (session options and what they cannot turn off: better-sse-channel.mjs).
//
//   PORT=39002 node bench/peers/better-sse.mjs   (HOST defaults to 127.0.0.1)
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
import { betterSse } from './better-sse-channel.mjs'
import { serveHttp } from './common.mjs'

serveHttp('better-sse', betterSse('better-sse'))

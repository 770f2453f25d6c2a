// Benchmark peer "better-sse in Express": better-sse (better-sse-channel.mjs,
// as the better-sse peer uses it) on the `/events` route of the same Express 5
// app as hyper-sse-express.mjs (express.mjs), control routes included.
//
//   PORT=39007 node bench/peers/better-sse-express.mjs
//
// Prints `listening <port>` once ready. Control protocol: bench/peers/README.md.
import { betterSse } from './better-sse-channel.mjs'
import { serveExpress } from './express.mjs'

serveExpress('better-sse in Express', betterSse('better-sse in Express'))

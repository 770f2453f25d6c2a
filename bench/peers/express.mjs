// The Express 5 application the "in Express" peers run in: `GET /events`
// is the peer's own handler, every control route (common.mjs
// controlRoutes()) is an Express route, anything else a 404. Served by
// `http.createServer(app)`, or by `https.createServer({ cert, key }, app)`
// when TLS_CERT and TLS_KEY (PEM file paths) are set, as the runner does
// for TLS rows; listening as every Node peer does (listenNode()).
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import express from 'express'
import { controlRoutes, listenNode, notFound } from './common.mjs'

/** Answers `{ status, body }` the Express way (text, or JSON). */
function send(res, { status = 200, body }) {
  res.status(status)
  if (typeof body === 'string') res.type('text/plain').send(body)
  else res.json(body)
}

/** Runs `onEvents(req, res)` on `GET /events` and the control protocol in an Express app. */
export function serveExpress(name, { onEvents, ...control }) {
  const app = express()
  app.get('/events', onEvents)
  for (const [key, route] of Object.entries(controlRoutes(control))) {
    const [method, path] = key.split(' ')
    app[method.toLowerCase()](path, (req, res, next) => {
      Promise.resolve(route((n) => req.query[n])).then((r) => send(res, r), next)
    })
  }
  app.use((req, res) => send(res, notFound))
  const tls = process.env.TLS_CERT
    ? { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) }
    : undefined
  listenNode(name, tls ? https.createServer(tls, app) : http.createServer(app))
}

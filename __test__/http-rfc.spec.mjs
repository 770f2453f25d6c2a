// HTTP by the RFCs on every path: stream requests (read by hand, served
// without hyper), routes and static files (hyper), and later requests on a
// kept-alive connection. Raw sockets where the exact bytes matter.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import http from 'node:http'
import http2 from 'node:http2'
import { createServer, start, sseClient, fetchText, rawRequest, waitFor } from './helpers.mjs'

/** Sends `request` on a fresh connection and waits for the server to close it. */
async function exchange(port, request) {
  const c = rawRequest(port, request)
  await c.ended()
  return c.text()
}

/** A static root with one page. */
function staticRoot(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-rfc-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'index.html'), 'home')
  return dir
}

/** Every path of one server: a stream path, a route, a static file. */
async function everyPath(t, extra = {}) {
  const s = await start(t, { keepAlive: 0, static: staticRoot(t), onRequest: (req) => (req.path === '/api' ? { body: 'api' } : undefined), ...extra })
  return { ...s, paths: ['/events', '/api', '/index.html'] }
}

const is400 = (t, text, reason, what) => {
  t.regex(text, /^HTTP\/1\.[01] 400 Bad Request\r\n/, `${what}: ${JSON.stringify(text)}`)
  t.regex(text, /\r\nconnection: close\r\n/i, what)
  t.true(text.endsWith(`\r\n\r\n${reason}\n`), `${what}: ${JSON.stringify(text)}`)
}

// Message framing (RFC 9112 §6.3): a request whose body length cannot be
// told is refused before anything else, and its connection closed.

test('a stream request with an invalid Content-Length is answered 400 and closed', async (t) => {
  const { server, port } = await everyPath(t)
  for (const value of ['-1', '1e3', '5, 6', '', '0x10']) {
    const text = await exchange(port, `GET /events HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\n`)
    is400(t, text, 'bad request: Content-Length must be one decimal number', `Content-Length: ${value}`)
  }
  t.like(server.stats(), { connections: 0, totalConnections: 0 })
})

test('a stream request with both Content-Length and Transfer-Encoding is answered 400', async (t) => {
  const { port } = await everyPath(t)
  const text = await exchange(port, 'GET /events HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
  is400(t, text, 'bad request: both Content-Length and Transfer-Encoding', 'stream')
})

test('a stream request whose final Transfer-Encoding is not chunked is answered 400', async (t) => {
  const { port } = await everyPath(t)
  for (const coding of ['gzip', 'chunked, gzip']) {
    const text = await exchange(port, `GET /events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${coding}\r\n\r\n`)
    is400(t, text, 'bad request: the final Transfer-Encoding must be chunked', coding)
  }
})

test('a stream request with a valid body framing still opens its stream', async (t) => {
  const { server, port } = await everyPath(t)
  const c = rawRequest(port, 'GET /events HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
  t.teardown(() => c.socket.destroy())
  await c.until('\r\n\r\n')
  t.true(c.text().startsWith('HTTP/1.1 200 OK\r\n'))
  await waitFor('the stream', () => server.stats().connections === 1)
})

// Host (RFC 9112 §3.2): exactly one in HTTP/1.1, at most one in HTTP/1.0.

test('an HTTP/1.1 request without Host is answered 400 on every path', async (t) => {
  const { port, paths } = await everyPath(t)
  for (const p of paths) {
    is400(t, await exchange(port, `GET ${p} HTTP/1.1\r\n\r\n`), 'bad request: an HTTP/1.1 request needs a Host header', p)
  }
})

test('a request with two Host headers is answered 400 on every path, in HTTP/1.0 too', async (t) => {
  const { port, paths } = await everyPath(t)
  for (const p of paths) {
    for (const v of ['1.0', '1.1']) {
      const text = await exchange(port, `GET ${p} HTTP/${v}\r\nHost: a\r\nHost: b\r\n\r\n`)
      is400(t, text, 'bad request: more than one Host header', `${p} HTTP/${v}`)
    }
  }
})

test('a later request without Host on a kept-alive connection is answered 400', async (t) => {
  const { port } = await everyPath(t)
  for (const p of ['/events', '/api']) {
    const c = rawRequest(port, `GET /api HTTP/1.1\r\nHost: x\r\n\r\nGET ${p} HTTP/1.1\r\n\r\n`)
    await c.ended()
    const second = c.text().indexOf('HTTP/1.1', 1)
    t.true(c.text().startsWith('HTTP/1.1 200 OK\r\n'), p)
    t.true(second > 0, p)
    is400(t, c.text().slice(second), 'bad request: an HTTP/1.1 request needs a Host header', p)
  }
})

test('an HTTP/1.0 request without Host is served on every path', async (t) => {
  const { port } = await everyPath(t)
  const route = await exchange(port, 'GET /api HTTP/1.0\r\n\r\n')
  t.true(route.startsWith('HTTP/1.0 200 OK\r\n'), route)
  const c = rawRequest(port, 'GET /events HTTP/1.0\r\n\r\n')
  t.teardown(() => c.socket.destroy())
  await c.until('\r\n\r\n')
  t.true(c.text().startsWith('HTTP/1.0 200 OK\r\n'), c.text())
})

// 1xx, 204 and 304 answers have no body and no Content-Length (RFC 9110 §8.6).

test('a 204 or 304 from onConnect carries neither Content-Length nor a body', async (t) => {
  const { port } = await start(t, { onConnect: (req) => ({ status: Number(req.query.status) }) })
  t.is(await exchange(port, 'GET /events?status=204 HTTP/1.1\r\nHost: x\r\n\r\n'), 'HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n')
  t.is(await exchange(port, 'GET /events?status=304 HTTP/1.1\r\nHost: x\r\n\r\n'), 'HTTP/1.1 304 Not Modified\r\nconnection: close\r\n\r\n')
})

test('a 204 or 304 from onRequest carries no Content-Length over HTTP/2 either', async (t) => {
  const { port } = await start(t, { http2: true, onRequest: (req) => ({ status: Number(req.path.slice(1)) }) })
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => session.close())
  for (const status of [204, 304]) {
    const headers = await new Promise((resolve, reject) => {
      const req = session.request({ ':path': `/${status}` })
      req.on('response', resolve)
      req.on('error', reject)
      req.end()
    })
    t.is(headers[':status'], status)
    t.is(headers['content-length'], undefined, String(status))
  }
})

test('a 204 or 304 reply with a body is a malformed result: 500 and onError', async (t) => {
  const errors = []
  const { url } = await start(t, { onRequest: () => ({ status: 204, body: 'no room' }), onError: (e, where) => errors.push([e.message, where]) })
  t.is((await fetchText(`${url}/api`)).status, 500)
  await waitFor('onError', () => errors.length === 1)
  t.deepEqual(errors[0], ['onRequest() result.body must be empty with status 204 (such an answer has no body)', 'onRequest'])
})

// Repeated headers: a value may be an array of strings.

test('onRequest header values may be arrays: two Set-Cookie headers', async (t) => {
  const { url } = await start(t, { onRequest: () => ({ body: 'ok', headers: { 'Set-Cookie': ['a=1; Path=/', 'b=2; Path=/'] } }) })
  const res = await fetchText(`${url}/api`)
  t.is(res.status, 200)
  t.deepEqual(res.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/'])
})

test('createServer and onConnect headers may be arrays too, one header line per value', async (t) => {
  const { url } = await start(t, {
    keepAlive: 0,
    headers: { 'Set-Cookie': ['seen=1', 'theme=dark'] },
    onConnect: () => ({ headers: { Link: ['</a>; rel=preload', '</b>; rel=preload'] } }),
  })
  const raw = await new Promise((resolve, reject) => {
    const req = http.get(`${url}/events`, { agent: false }, (res) => {
      resolve(res.rawHeaders)
      req.destroy()
    })
    req.on('error', reject)
  })
  const lines = []
  for (let i = 0; i < raw.length; i += 2) lines.push([raw[i].toLowerCase(), raw[i + 1]])
  const values = (name) => lines.filter(([n]) => n === name).map(([, v]) => v)
  t.deepEqual(values('set-cookie'), ['seen=1', 'theme=dark'])
  t.deepEqual(values('link'), ['</a>; rel=preload', '</b>; rel=preload'])
  t.deepEqual(values('content-type'), ['text/event-stream'])
})

test('a header array must hold strings and not be empty', (t) => {
  t.throws(() => createServer({ headers: { 'X-A': [] } }), { instanceOf: TypeError, message: /options\.headers\['X-A'\] must be a string or a non-empty array of strings/ })
  t.throws(() => createServer({ headers: { 'X-A': ['ok', 5] } }), { instanceOf: TypeError, message: /options\.headers\['X-A'\]\[1\] must be a string, got number/ })
})

// Connection: close is the one Connection value a reply may set.

test('Connection: close in an onRequest reply closes the connection after it', async (t) => {
  const { port } = await start(t, { onRequest: (req) => ({ body: req.path, headers: { Connection: 'close' } }) })
  // Two requests in one go: only the first is answered.
  const text = await exchange(port, 'GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n')
  t.true(text.startsWith('HTTP/1.1 200 OK\r\n'), text)
  t.regex(text, /\r\nconnection: close\r\n/i)
  t.true(text.endsWith('\r\n\r\n/one'), text)
})

test('any other Connection value in an onRequest reply is refused with a clear error', async (t) => {
  const errors = []
  const { url } = await start(t, { onRequest: () => ({ body: 'x', headers: { Connection: 'keep-alive' } }), onError: (e) => errors.push(e.message) })
  t.is((await fetchText(`${url}/api`)).status, 500)
  await waitFor('onError', () => errors.length === 1)
  t.is(errors[0], "onRequest() result.headers['connection'] may only be 'close' (the server manages keep-alive), got 'keep-alive'")
})

// CORS as the cors middleware does it: '*' on every response, and OPTIONS
// answered by the server.

test("with origin '*' every response carries Access-Control-Allow-Origin: *, with or without Origin", async (t) => {
  const { port, url } = await everyPath(t, { cors: { origin: '*' } })
  for (const p of ['/events?x', '/api', '/index.html', '/missing']) {
    const res = p.startsWith('/events')
      ? await new Promise((resolve) => {
          const c = sseClient(`${url}${p}`)
          const timer = setInterval(() => c.headers && (clearInterval(timer), c.close(), resolve(c)), 10)
        })
      : await fetchText(`${url}${p}`)
    t.is(res.headers['access-control-allow-origin'], '*', p)
  }
  t.regex(await exchange(port, 'GET /events HTTP/1.1\r\n\r\n'), /\r\naccess-control-allow-origin: \*\r\n/, 'a 400 too')
})

test('with credentials or a list of origins, a request without Origin gets no Access-Control-Allow-Origin', async (t) => {
  for (const cors of [{ origin: '*', credentials: true }, { origin: ['http://a.test'] }]) {
    const { url } = await start(t, { cors, onRequest: () => ({ body: 'ok' }) })
    const res = await fetchText(`${url}/api`)
    t.is(res.headers['access-control-allow-origin'], undefined, JSON.stringify(cors))
  }
})

test('with cors, a bare OPTIONS on a stream path is answered 204 with Allow: GET, HEAD, OPTIONS', async (t) => {
  const { server, port } = await start(t, { cors: { origin: '*' } })
  const text = await exchange(port, 'OPTIONS /events HTTP/1.1\r\nHost: x\r\n\r\n')
  t.is(text, 'HTTP/1.1 204 No Content\r\nallow: GET, HEAD, OPTIONS\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\r\n')
  t.like(server.stats(), { denied: 0, totalConnections: 0 })
})

test('with cors, a bare OPTIONS on a route is answered 204 with the CORS methods in Allow, without onRequest', async (t) => {
  let asked = 0
  const { url } = await start(t, { cors: { origin: ['http://a.test'] }, onRequest: () => (asked++, { status: 405 }) })
  for (const headers of [{}, { origin: 'http://a.test' }]) {
    const res = await fetchText(`${url}/api`, { method: 'OPTIONS', headers })
    t.is(res.status, 204)
    t.is(res.headers.allow, 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS')
    t.is(res.headers['content-length'], undefined)
  }
  t.is(asked, 0)
  const refused = await fetchText(`${url}/api`, { method: 'OPTIONS', headers: { origin: 'http://evil.test' } })
  t.is(refused.status, 403, 'a refused origin is still refused')
})

test('with cors and only static files, a bare OPTIONS lists GET, HEAD, OPTIONS', async (t) => {
  const { url } = await start(t, { cors: { origin: '*' }, static: staticRoot(t) })
  const res = await fetchText(`${url}/index.html`, { method: 'OPTIONS' })
  t.is(res.status, 204)
  t.is(res.headers.allow, 'GET, HEAD, OPTIONS')
})

// Channel names: non-empty, no control characters, at most 256 bytes,
// wherever they enter.

const badNames = [
  ['', /"" is not a channel name: it must not be empty/],
  ['a\nb', /"a\\nb" is not a channel name: it must not contain control characters/],
  ['nul\0', /"nul\\0" is not a channel name: it must not contain control characters/],
  ['x'.repeat(257), /"x{40}"… is not a channel name: it must be at most 256 bytes long/],
]

test('send and comment refuse bad channel names with a TypeError naming the field and the channel', async (t) => {
  const { server } = await start(t)
  for (const [name, message] of badNames) {
    t.throws(() => server.send('x', { channel: name }), { instanceOf: TypeError, message: new RegExp(`^send\\(\\): options\\.channel ${message.source}`) })
    t.throws(() => server.comment('x', { channel: ['ok', name] }), { instanceOf: TypeError, message: new RegExp(`^comment\\(\\): options\\.channel\\[1\\] ${message.source}`) })
  }
  t.is(server.stats().eventsSent, 0)
})

test('a channel name of exactly 256 bytes is accepted', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  const name = 'é'.repeat(128)
  const c = sseClient(`${url}/events`, { query: `?channel=${encodeURIComponent(name)}` })
  t.teardown(() => c.close())
  await waitFor('the stream', () => server.stats().connections === 1)
  server.send('hi', { channel: name })
  await waitFor('the event', () => c.events.length === 1)
  t.is(c.status, 200)
})

test('a bad channel in an onConnect result answers 500 and is reported', async (t) => {
  const errors = []
  const { url } = await start(t, { onConnect: () => ({ channels: ['ok', 'line\r\nbreak'] }), onError: (e, where) => errors.push([e.message, where]) })
  t.is((await fetchText(`${url}/events`)).status, 500)
  await waitFor('onError', () => errors.length === 1)
  t.deepEqual(errors[0], ['onConnect() result.channels[1] "line\\r\\nbreak" is not a channel name: it must not contain control characters (CR, LF, NUL, tab, …)', 'onConnect'])
})

test('a bad ?channel= is answered 400 with the reason', async (t) => {
  const { server, url } = await start(t, { channelsFromQuery: true })
  const cases = [
    ['', 'bad request: a ?channel= name must not be empty\n'],
    ['a%0Ab', 'bad request: a ?channel= name must not contain control characters (CR, LF, NUL, tab, …)\n'],
    ['x'.repeat(257), 'bad request: a ?channel= name must be at most 256 bytes long\n'],
  ]
  for (const [value, reason] of cases) {
    const res = await fetchText(`${url}/events?channel=ok&channel=${value}`)
    t.is(res.status, 400, value)
    t.is(res.body, reason)
  }
  t.like(server.stats(), { connections: 0, totalConnections: 0 })
})

test('without channelsFromQuery, ?channel= is not looked at', async (t) => {
  const { url } = await start(t, { keepAlive: 0 })
  const c = sseClient(`${url}/events`, { query: '?channel=' })
  t.teardown(() => c.close())
  await waitFor('the stream', () => c.status !== undefined || c.ended)
  t.is(c.status, 200)
})

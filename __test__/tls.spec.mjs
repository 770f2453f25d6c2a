// HTTPS and HTTP/2: ALPN `h2` and `http/1.1` on one port, many event streams
// over one connection, h2c with prior knowledge, certificate errors, and
// certificate rotation without a restart.
import test from 'ava'
import http2 from 'node:http2'
import https from 'node:https'
import tls from 'node:tls'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { EventSource } from 'eventsource'
import { Agent } from 'undici'
import { createParser } from 'eventsource-parser'
import { createServer, fetchText, makeCert, waitFor } from './helpers.mjs'

async function startTls(t, options) {
  const server = createServer(options)
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  return { server, port }
}

/** Opens `/events` streams over one HTTP/2 session and parses them. */
function h2Streams(session, count, path = '/events') {
  return Array.from({ length: count }, () => {
    const s = { events: [], status: undefined, headers: undefined, req: session.request({ ':path': path, accept: 'text/event-stream' }) }
    const parser = createParser({ onEvent: (e) => s.events.push(e) })
    s.req.setEncoding('utf8')
    s.req.on('response', (h) => {
      s.status = h[':status']
      s.headers = h
    })
    s.req.on('data', (d) => parser.feed(d))
    s.req.on('error', () => {})
    return s
  })
}

test('100 concurrent event streams over one TLS connection with HTTP/2', async (t) => {
  const pem = makeCert()
  const versions = []
  const { server, port } = await startTls(t, { keepAlive: 0, tls: pem, onConnection: (c) => versions.push(c.httpVersion) })
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pem.cert })
  t.teardown(() => session.destroy())
  const streams = h2Streams(session, 100)
  await waitFor('100 streams', () => server.stats().connections === 100 && streams.every((s) => s.status), 10_000)
  t.is(session.alpnProtocol, 'h2')
  t.true(streams.every((s) => s.status === 200))
  const h = streams[0].headers
  t.is(h['content-type'], 'text/event-stream')
  t.is(h.connection, undefined, 'no connection-specific headers over HTTP/2')
  t.is(h['transfer-encoding'], undefined)
  t.is(h['keep-alive'], undefined)
  for (let i = 0; i < 3; i++) server.send(`live ${i}`)
  await waitFor('every stream gets 3 events', () => streams.every((s) => s.events.length === 3), 10_000)
  t.true(streams.every((s) => s.events.map((e) => e.data).join() === 'live 0,live 1,live 2'))
  t.true(versions.every((v) => v === '2'))
  // A client resetting one stream frees it at once; the others go on.
  streams[0].req.close(http2.constants.NGHTTP2_CANCEL)
  await waitFor('reset noticed', () => server.stats().connections === 99, 2000)
  server.send('after reset')
  await waitFor('the rest still live', () => streams.slice(1).every((s) => s.events.length === 4))
})

test('HTTP/1.1 over TLS serves the eventsource client, and static files work over both protocols', async (t) => {
  const pem = makeCert()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-tls-static-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'index.html'), '<h1>secure</h1>')
  const { server, port } = await startTls(t, { keepAlive: 0, tls: pem, static: dir })
  const dispatcher = new Agent({ connect: { ca: pem.cert } })
  t.teardown(() => dispatcher.close())
  const es = new EventSource(`https://127.0.0.1:${port}/events`, { fetch: (url, init) => fetch(url, { ...init, dispatcher }) })
  t.teardown(() => es.close())
  const got = []
  es.onmessage = (e) => got.push(e.data)
  es.addEventListener('named', (e) => got.push(`named:${e.data}`))
  await waitFor('open', () => es.readyState === EventSource.OPEN && server.stats().connections === 1)
  server.send('over tls')
  server.send({ event: 'named', data: 'x' })
  await waitFor('events', () => got.length === 2)
  t.deepEqual(got, ['over tls', 'named:x'])
  // Static files over HTTP/1.1 and HTTP/2.
  const page = await new Promise((resolve, reject) => {
    https.get(`https://127.0.0.1:${port}/`, { ca: pem.cert, ALPNProtocols: ['http/1.1'], agent: false }, (res) => {
      let body = ''
      const alpn = res.socket.alpnProtocol
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, body, alpn }))
    }).on('error', reject)
  })
  t.like(page, { status: 200, body: '<h1>secure</h1>', alpn: 'http/1.1' })
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pem.cert })
  t.teardown(() => session.destroy())
  const body = await new Promise((resolve) => {
    const req = session.request({ ':path': '/' })
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (d) => (text += d))
    req.on('end', () => resolve(text))
  })
  t.is(body, '<h1>secure</h1>')
})

test('h2c: http2: true accepts HTTP/2 with prior knowledge beside HTTP/1.1 on a plaintext port', async (t) => {
  const { server, port } = await startTls(t, { keepAlive: 0, http2: true, history: 0 })
  const session = http2.connect(`http://127.0.0.1:${port}`)
  t.teardown(() => session.destroy())
  const streams = h2Streams(session, 5)
  await waitFor('5 streams', () => server.stats().connections === 5)
  server.send('h2c')
  await waitFor('delivered', () => streams.every((s) => s.events[0]?.data === 'h2c'))
  const plain = await fetchText(`http://127.0.0.1:${port}/nope`)
  t.is(plain.status, 404, 'HTTP/1.1 still served')
  t.pass()
})

test('without http2, an h2c preface is a bad request', async (t) => {
  const { port } = await startTls(t, {})
  const socket = await new Promise((resolve) => {
    import('node:net').then(({ default: net }) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s))
    })
  })
  let text = ''
  socket.on('data', (d) => (text += d))
  socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
  await waitFor('answer', () => text.includes('\r\n\r\n'))
  t.regex(text, /^HTTP\/1\.1 400/)
  socket.destroy()
})

test('bad certificates and keys are refused with errors naming the field', (t) => {
  const a = makeCert('a')
  const b = makeCert('b')
  t.throws(() => createServer({ tls: { cert: 'not pem', key: a.key } }), { instanceOf: TypeError, message: /options\.tls\.cert: no PEM certificate/ })
  t.throws(() => createServer({ tls: { cert: a.cert, key: 'nope' } }), { instanceOf: TypeError, message: /options\.tls\.key: no usable PEM private key/ })
  t.throws(() => createServer({ tls: { cert: a.cert, key: b.key } }), { instanceOf: TypeError, message: /options\.tls\.key: does not match tls\.cert/ })
  t.throws(() => createServer({ tls: { cert: a.cert } }), { instanceOf: TypeError, message: /options\.tls\.key is required/ })
  t.throws(() => createServer({ tls: { cert: 5, key: a.key } }), { instanceOf: TypeError, message: /options\.tls\.cert must be PEM text/ })
  t.throws(() => createServer({ tls: 'x' }), { instanceOf: TypeError, message: /options\.tls must be an object/ })
  t.throws(() => createServer({ http2: 'yes' }), { instanceOf: TypeError, message: /options\.http2 must be a boolean/ })
  t.notThrows(() => createServer({ tls: { cert: Buffer.from(a.cert), key: Buffer.from(a.key) } }))
})

test('setSecureContext rotates the certificate for new connections; open streams keep going', async (t) => {
  const first = makeCert('first')
  const second = makeCert('second')
  const { server, port } = await startTls(t, { keepAlive: 0, tls: first })
  const peerCN = () =>
    new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
        resolve(s.getPeerCertificate().subject.CN)
        s.destroy()
      })
      s.on('error', reject)
    })
  t.is(await peerCN(), 'first')
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: first.cert })
  t.teardown(() => session.destroy())
  const [open] = h2Streams(session, 1)
  await waitFor('stream', () => server.stats().connections === 1)
  server.setSecureContext({ cert: second.cert, key: second.key })
  t.is(await peerCN(), 'second')
  server.send('still here')
  await waitFor('old connection still streams', () => open.events.length === 1)
  t.throws(() => server.setSecureContext({ cert: second.cert, key: first.key }), { instanceOf: TypeError, message: /context\.key: does not match/ })
  t.is(await peerCN(), 'second', 'a refused rotation changes nothing')
  const plain = createServer()
  t.throws(() => plain.setSecureContext(second), { code: 'ERR_SERVER_NOT_TLS' })
})

test('hooks, CORS and routes work over HTTP/2 as over HTTP/1.1', async (t) => {
  const pem = makeCert()
  const errors = []
  const { server, port } = await startTls(t, {
    keepAlive: 0,
    tls: pem,
    cors: { origin: ['https://app.test'] },
    onConnect: (req) => (req.query.token === 'ok' ? { channels: ['private'] } : { status: 401, body: 'no' }),
    onRequest: (req) => (req.path === '/ping' ? { body: { pong: req.httpVersion } } : undefined),
    onError: (e) => errors.push(e),
  })
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pem.cert })
  t.teardown(() => session.destroy())
  const get = (path, headers = {}) =>
    new Promise((resolve) => {
      const req = session.request({ ':path': path, ...headers })
      let body = ''
      let head
      req.setEncoding('utf8')
      req.on('response', (h) => (head = h))
      req.on('data', (d) => (body += d))
      req.on('end', () => resolve({ status: head[':status'], headers: head, body }))
    })
  const denied = await get('/events')
  t.is(denied.status, 401)
  t.is(denied.body, 'no')
  const pong = await get('/ping', { origin: 'https://app.test' })
  t.is(pong.status, 200)
  t.deepEqual(JSON.parse(pong.body), { pong: '2' })
  t.is(pong.headers['access-control-allow-origin'], 'https://app.test')
  const [stream] = h2Streams(session, 1, '/events?token=ok')
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('secret', { channel: 'private' })
  server.send('public')
  await waitFor('private event', () => stream.events.length === 1)
  t.is(stream.events[0].data, 'secret')
  t.is(server.stats().denied, 1)
  t.deepEqual(errors, [])
})

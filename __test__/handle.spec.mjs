// server.handle(req, res): streams for requests Node's own servers accepted,
// on their port. node:http (the native path: the engine takes the socket),
// https and http2 (bridged through res.write), replay, limits, the bad
// input, pipelining, stalled clients on both transports, and close().
import test from 'ava'
import http from 'node:http'
import https from 'node:https'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'
import { createServer, fetchText, makeCert, rawRequest, sseClient, waitFor } from './helpers.mjs'

/** A Node http server on loopback whose `handler` runs for every request. */
async function nodeServer(t, handler, make = http.createServer, options = {}) {
  const server = make(options, handler)
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()) }))
  return { server, port: server.address().port }
}

/** The seed's server: a page, and `/sendMessage` handed to hyper-sse. */
async function seedServer(t, sseOptions = {}, handleOptions) {
  const sse = createServer(sseOptions)
  t.teardown(() => sse.close())
  const handled = []
  const { server, port } = await nodeServer(t, (req, res) => {
    if (req.url.startsWith('/sendMessage')) {
      handled.push(sse.handle(req, res, handleOptions))
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<!doctype html><p>page</p>')
  })
  return { sse, server, port, handled, url: `http://127.0.0.1:${port}` }
}

test('node:http: the seed server streams through handle(), natively, on its own port', async (t) => {
  const { sse, url, handled } = await seedServer(t)
  const es = new EventSource(`${url}/sendMessage`)
  t.teardown(() => es.close())
  const got = []
  es.onmessage = (e) => got.push(e.data)
  es.addEventListener('myEvent', (e) => got.push(`myEvent:${e.data}`))
  await waitFor('the stream to open', () => es.readyState === EventSource.OPEN)
  const client = await handled[0]
  t.is(client.transport, 'native')
  t.is(client.path, '/sendMessage')
  t.deepEqual(client.channels, ['default'])
  await waitFor('the client to count', () => sse.stats().connections === 1)
  sse.send('12:00:00')
  sse.send({ event: 'myEvent', data: 'hello' })
  await waitFor('both events', () => got.length === 2)
  t.deepEqual(got, ['12:00:00', 'myEvent:hello'])
  const page = await fetchText(`${url}/`)
  t.is(page.status, 200)
})

test('node:http: the native stream has the bytes of a listen() stream, after a page on the same connection', async (t) => {
  const { sse, port } = await seedServer(t, { retry: 1500 })
  const { port: direct } = await sse.listen(0, '127.0.0.1')
  const get = (path) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`
  // One connection: first a page from Node, then the stream, kept alive.
  const raw = rawRequest(port, get('/'))
  await raw.until('page</p>')
  const before = raw.raw.length
  raw.socket.write(get('/sendMessage'))
  const mine = rawRequest(direct, get('/events'))
  await waitFor('both streams', () => sse.stats().connections === 2)
  sse.send({ id: '7', data: 'same bytes' })
  await raw.until('same bytes')
  await mine.until('same bytes')
  const handedBytes = raw.raw.subarray(before).toString('latin1')
  t.is(handedBytes, mine.text())
  t.regex(handedBytes, /^HTTP\/1\.1 200 OK\r\n/)
  t.regex(handedBytes, /transfer-encoding: chunked\r\n/)
  t.regex(handedBytes, /retry: 1500\n\n/)
  raw.socket.destroy()
  mine.socket.destroy()
  await waitFor('both gone', () => sse.stats().connections === 0)
})

test('node:http: replay through handle() by Last-Event-ID header and by ?lastEventId=', async (t) => {
  const { sse, url } = await seedServer(t, { history: 10 })
  for (let i = 1; i <= 5; i++) sse.send({ id: String(i), data: `e${i}` })
  const byHeader = sseClient(`${url}/sendMessage`, { lastEventId: '2' })
  const byQuery = sseClient(`${url}/sendMessage`, { query: '?lastEventId=3' })
  t.teardown(() => { byHeader.close(); byQuery.close() })
  await waitFor('replays', () => byHeader.events.length === 3 && byQuery.events.length === 2)
  t.deepEqual(byHeader.events.map((e) => e.data), ['e3', 'e4', 'e5'])
  t.deepEqual(byQuery.events.map((e) => e.data), ['e4', 'e5'])
})

test('handle(): options.channels chooses the channels and skips onConnect; without it onConnect decides', async (t) => {
  let asked = 0
  const sse = createServer({
    onConnect: (c) => {
      asked++
      return c.query.token === 'ok' ? { channels: ['hooked'] } : { status: 401, body: 'who are you' }
    },
  })
  t.teardown(() => sse.close())
  const results = []
  const { port } = await nodeServer(t, (req, res) => {
    const chosen = req.url.startsWith('/mine') ? { channels: ['a', 'b'] } : undefined
    results.push(sse.handle(req, res, chosen))
  })
  const url = `http://127.0.0.1:${port}`
  const mine = sseClient(`${url}/mine`)
  const hooked = sseClient(`${url}/x`, { query: '?token=ok' })
  t.teardown(() => { mine.close(); hooked.close() })
  await waitFor('two streams', () => sse.stats().connections === 2)
  const denied = await fetchText(`${url}/x`)
  t.is(denied.status, 401)
  t.is(denied.body, 'who are you')
  const [a, b, c] = await Promise.all(results)
  t.deepEqual(a.channels, ['a', 'b'])
  t.deepEqual(b.channels, ['hooked'])
  t.is(c, null)
  t.is(asked, 2)
  sse.send('to b', { channel: 'b' })
  sse.send('to hooked', { channel: 'hooked' })
  await waitFor('events', () => mine.events.length === 1 && hooked.events.length === 1)
  t.is(mine.events[0].data, 'to b')
  t.is(hooked.events[0].data, 'to hooked')
})

test('handle() with options.channels ignores ?channel= in the URL, even one that is not a channel name', async (t) => {
  const sse = createServer({ channelsFromQuery: true })
  t.teardown(() => sse.close())
  const results = []
  const { port } = await nodeServer(t, (req, res) => results.push(sse.handle(req, res, { channels: 'mine' })))
  // A name with a newline would be a 400 for a listen() stream; here the app chose.
  const client = sseClient(`http://127.0.0.1:${port}/e`, { query: '?channel=other&channel=bad%0Aname' })
  t.teardown(() => client.close())
  await waitFor('the handle() call', () => results.length === 1)
  const handled = await results[0]
  t.deepEqual(handled.channels, ['mine'])
  await waitFor('the stream head', () => client.open)
  t.is(client.status, 200)
  sse.send('to other', { channel: 'other' })
  sse.send('to mine', { channel: 'mine' })
  await waitFor('the event', () => client.events.length === 1)
  t.is(client.events[0].data, 'to mine')
})

test('handle(): HEAD and other methods are answered without a stream, as listen() answers them', async (t) => {
  const { url, handled } = await seedServer(t)
  const head = await fetchText(`${url}/sendMessage`, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers['content-type'], 'text/event-stream')
  const post = await fetchText(`${url}/sendMessage`, { method: 'POST', body: 'x' })
  t.is(post.status, 405)
  t.is(post.headers.allow, 'GET, HEAD')
  t.deepEqual(await Promise.all(handled), [null, null])
})

test('handle(): bad arguments reject with a TypeError naming them', async (t) => {
  const sse = createServer()
  t.teardown(() => sse.close())
  await t.throwsAsync(() => sse.handle(undefined, undefined), { instanceOf: TypeError, message: /handle\(\): req must be/ })
  await t.throwsAsync(() => sse.handle({}, {}), { instanceOf: TypeError, message: /handle\(\): req is not a request/ })
  await t.throwsAsync(() => sse.handle({ method: 'GET', url: '/', rawHeaders: [], httpVersion: '1.1' }, {}), { instanceOf: TypeError, message: /handle\(\): res is not a response/ })
  const seen = []
  const { port } = await nodeServer(t, (req, res) => {
    if (req.url === '/sent') res.writeHead(200).flushHeaders()
    if (req.url === '/ended') res.end('x')
    if (req.url === '/destroyed') req.socket.destroy()
    seen.push(sse.handle(req, res, req.url === '/badopt' ? { channels: 'bad\nname' } : req.url === '/unknown' ? { chanel: 'x' } : undefined))
    if (req.url !== '/destroyed' && !res.writableEnded) setTimeout(() => res.destroy(), 100)
  })
  for (const path of ['/sent', '/ended', '/destroyed', '/badopt', '/unknown']) {
    await new Promise((resolve) => {
      const req = http.get(`http://127.0.0.1:${port}${path}`, { agent: false }, (res) => {
        res.resume()
        res.on('close', resolve)
      })
      req.on('error', resolve)
    })
  }
  await waitFor('five calls', () => seen.length === 5)
  const errors = await Promise.all(seen.map((p) => p.then(() => null, (e) => e)))
  t.regex(errors[0].message, /already sent its headers/)
  t.regex(errors[1].message, /already ended/)
  t.regex(errors[2].message, /socket is already destroyed/)
  t.regex(errors[3].message, /handle\(\): options\.channels/)
  t.regex(errors[4].message, /handle\(\): options.*chanel/)
  for (const e of errors) t.true(e instanceof TypeError || e instanceof RangeError, String(e))
  t.is(sse.stats().connections, 0)
})

test('handle() after close(): answered 503 and rejects with ERR_SERVER_CLOSED', async (t) => {
  const { sse, url, handled } = await seedServer(t)
  await sse.close()
  const r = await fetchText(`${url}/sendMessage`)
  t.is(r.status, 503)
  t.is(r.headers['retry-after'], '5')
  const e = await t.throwsAsync(handled[0])
  t.is(e.code, 'ERR_SERVER_CLOSED')
})

test('https: handle() bridges the stream through res.write, with replay and budgets', async (t) => {
  const pem = makeCert()
  const sse = createServer({ history: 10 })
  t.teardown(() => sse.close())
  const handled = []
  const { port } = await nodeServer(t, (req, res) => handled.push(sse.handle(req, res)), https.createServer, pem)
  sse.send({ id: '1', data: 'seen' })
  sse.send({ id: '2', data: 'missed' })
  const got = []
  const req = https.get(`https://127.0.0.1:${port}/events`, { ca: pem.cert, headers: { 'last-event-id': '1' }, agent: false }, (res) => {
    res.setEncoding('utf8')
    res.on('data', (d) => got.push(d))
  })
  t.teardown(() => req.destroy())
  const client = await waitFor('handled', () => handled.length === 1).then(() => handled[0])
  t.is(client.transport, 'bridged')
  for (let i = 3; i <= 300; i++) sse.send({ id: String(i), data: `e${i}` })
  await waitFor('every event', () => got.join('').includes('data: e300\n'))
  const text = got.join('')
  const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
  t.deepEqual(ids, Array.from({ length: 299 }, (_, i) => i + 2))
})

test('http2 (secure, compatibility API): handle() bridges each stream of a session', async (t) => {
  const pem = makeCert()
  const sse = createServer()
  t.teardown(() => sse.close())
  const handled = []
  const { port } = await nodeServer(t, (req, res) => handled.push(sse.handle(req, res, { channels: req.url.slice(1) })), http2.createSecureServer, pem)
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: pem.cert })
  t.teardown(() => session.destroy())
  const streams = ['a', 'b'].map((name) => {
    const s = session.request({ ':path': `/${name}`, accept: 'text/event-stream' })
    s.text = ''
    s.setEncoding('utf8')
    s.on('response', (h) => (s.status = h[':status']))
    s.on('data', (d) => (s.text += d))
    return s
  })
  await waitFor('two streams', () => sse.stats().connections === 2)
  const clients = await Promise.all(handled)
  t.deepEqual(clients.map((c) => c.transport), ['bridged', 'bridged'])
  t.is(clients[0].httpVersion, '2')
  sse.send('for a', { channel: 'a' })
  sse.send('for b', { channel: 'b' })
  await waitFor('each its own', () => streams[0].text.includes('for a') && streams[1].text.includes('for b'))
  t.is(streams[0].status, 200)
  t.false(streams[0].text.includes('for b'))
  streams[0].close()
  await waitFor('one left', () => sse.stats().connections === 1)
})

test('a pipelined request behind the stream request is bridged, and Node answers it after the stream', async (t) => {
  const { sse, port, handled } = await seedServer(t)
  const raw = rawRequest(port,
    'GET /sendMessage HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' +
    'GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await waitFor('the stream', () => sse.stats().connections === 1)
  const client = await handled[0]
  t.is(client.transport, 'bridged')
  sse.send('before the end')
  await raw.until('before the end')
  t.true(sse.disconnect(client.id))
  await raw.until('page</p>')
  t.regex(raw.text(), /0\r\n\r\nHTTP\/1\.1 200 OK/)
})

test('a client that leaves while onConnect decides is never counted as connected', async (t) => {
  let release
  const decided = new Promise((r) => (release = r))
  const seen = []
  const sse = createServer({ onConnect: () => decided.then(() => true), onConnection: (c) => seen.push(c.id) })
  t.teardown(() => sse.close())
  const handled = []
  const { port } = await nodeServer(t, (req, res) => handled.push(sse.handle(req, res)))
  const raw = rawRequest(port, 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  await waitFor('the request', () => handled.length === 1)
  raw.socket.destroy()
  await new Promise((r) => setTimeout(r, 100))
  release()
  t.is(await handled[0], null)
  await new Promise((r) => setTimeout(r, 100))
  t.deepEqual(seen, [])
  t.is(sse.stats().connections, 0)
})

test('a stalled client is evicted on the native path and on the bridged one', async (t) => {
  const pem = makeCert()
  const sse = createServer({ stallTimeout: 300, maxBufferedBytes: 1 << 20, keepAlive: 0 })
  t.teardown(() => sse.close())
  const ends = []
  const handled = []
  const handler = (req, res) => handled.push(sse.handle(req, res))
  const plain = await nodeServer(t, handler)
  const secure = await nodeServer(t, handler, https.createServer, pem)
  // Raw clients that never read, with small receive buffers.
  const stall = (port, secureSocket) => new Promise((resolve) => {
    const opts = { port, host: '127.0.0.1' }
    const socket = secureSocket
      ? tls.connect({ ...opts, ca: pem.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
      : net.connect(opts)
    socket.on('error', () => {})
    socket.on('close', () => ends.push(secureSocket ? 'bridged' : 'native'))
    socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    socket.once('data', () => { socket.pause(); resolve(socket) })
  })
  const sockets = await Promise.all([stall(plain.port, false), stall(secure.port, true)])
  t.teardown(() => sockets.forEach((s) => s.destroy()))
  const clients = await Promise.all(handled)
  t.deepEqual(clients.map((c) => c.transport).sort(), ['bridged', 'native'])
  const payload = 'x'.repeat(16 * 1024)
  const pump = setInterval(() => { for (let i = 0; i < 20; i++) sse.send(payload) }, 20)
  t.teardown(() => clearInterval(pump))
  await waitFor('both evicted', () => sse.stats().evicted === 2, 20000)
  clearInterval(pump)
  await waitFor('both closed', () => ends.length === 2 || sse.stats().connections === 0, 10000)
  t.is(sse.stats().connections, 0)
})

test('close() ends handled streams of both transports cleanly and resolves', async (t) => {
  const pem = makeCert()
  const sse = createServer()
  const handler = (req, res) => sse.handle(req, res)
  const plain = await nodeServer(t, handler)
  const secure = await nodeServer(t, handler, https.createServer, pem)
  const a = rawRequest(plain.port, 'GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  let bridgedText = ''
  let bridgedEnded = false
  const b = https.get(`https://127.0.0.1:${secure.port}/events`, { ca: pem.cert, agent: false }, (res) => {
    res.setEncoding('utf8')
    res.on('data', (d) => (bridgedText += d))
    res.on('end', () => (bridgedEnded = true))
  })
  t.teardown(() => b.destroy())
  await waitFor('two streams', () => sse.stats().connections === 2)
  sse.send('last words')
  await a.until('last words')
  await waitFor('bridged got it', () => bridgedText.includes('last words'))
  await sse.close()
  t.is(sse.stats().connections, 0)
  await a.until('0\r\n\r\n')
  await a.ended()
  await waitFor('the bridged response to end', () => bridgedEnded)
})

test('a server that never listens serves handle(); after close() the process exits by itself', async (t) => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/handle-exit.mjs', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  const code = await new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve('timeout') }, 20000)
    child.on('close', (c) => { clearTimeout(timer); resolve(c) })
  })
  t.is(code, 0, out)
  t.regex(out, /got: hello/)
  t.regex(out, /closed/)
})

test('examples/node-http: the seed server with send() in place of its loop, as the README shows it', async (t) => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../examples/node-http/server.mjs', import.meta.url))], {
    env: { ...process.env, PORT: '0', INTERVAL_MS: '100' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = new Promise((r) => child.once('exit', (code) => r(code)))
  t.teardown(() => child.kill('SIGKILL'))
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (out += d))
  await waitFor('the listening line', () => /listening on (http:\S+)/.test(out), 10000)
  const url = /listening on (http:\S+)/.exec(out)[1]
  t.regex((await fetchText(url)).body, /new EventSource\("\/sendMessage"\)/)
  const es = new EventSource(`${url}sendMessage`)
  const got = { message: 0, myEvent: 0 }
  es.onmessage = () => got.message++
  es.addEventListener('myEvent', () => got.myEvent++)
  await waitFor('both kinds of event', () => got.message >= 2 && got.myEvent >= 2, 10000)
  es.close()
  child.kill('SIGTERM')
  t.is(await exited, 0)
})

test("Node's requestTimeout and headersTimeout do not end a bridged stream that outlives them", async (t) => {
  const pem = makeCert()
  const sse = createServer({ keepAlive: 0 })
  t.teardown(() => sse.close())
  const options = { ...pem, requestTimeout: 600, headersTimeout: 500, connectionsCheckingInterval: 100 }
  const { port } = await nodeServer(t, (req, res) => sse.handle(req, res), https.createServer, options)
  let text = ''
  let ended = false
  const req = https.get(`https://127.0.0.1:${port}/events`, { ca: pem.cert, agent: false }, (res) => {
    res.setEncoding('utf8')
    res.on('data', (d) => (text += d))
    res.on('close', () => (ended = true))
  })
  t.teardown(() => req.destroy())
  await waitFor('the stream', () => sse.stats().connections === 1)
  await new Promise((r) => setTimeout(r, 1500))
  sse.send('still here')
  await waitFor('the late event', () => text.includes('still here'))
  t.false(ended)
})

test('a response whose write a framework wrapped is bridged, and every byte goes through the wrapper', async (t) => {
  const sse = createServer({ history: 0 })
  t.teardown(() => sse.close())
  const handled = []
  let wrapped = 0
  const { port } = await nodeServer(t, (req, res) => {
    const write = res.write
    res.write = function (chunk, ...rest) {
      wrapped += chunk.length
      return write.call(this, chunk, ...rest)
    }
    handled.push(sse.handle(req, res))
  })
  const client = sseClient(`http://127.0.0.1:${port}/events`)
  t.teardown(() => client.close())
  await waitFor('the stream', () => handled.length === 1)
  t.is((await handled[0]).transport, 'bridged')
  sse.send('through the wrapper')
  await waitFor('the event', () => client.events.length === 1)
  t.is(wrapped, 'data: through the wrapper\n\n'.length)
})

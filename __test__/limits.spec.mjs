// Limits: connection caps (503/429), slow request heads (408) and oversized
// heads (431): an answer with a reason, never a hang or a crash.
import test from 'ava'
import net from 'node:net'
import { createServer, start, sseClient, fetchText, rawRequest, waitFor } from './helpers.mjs'

test('maxConnections answers 503 beyond the limit, with Retry-After', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, maxConnections: 3 })
  const open = Array.from({ length: 3 }, () => sseClient(`${url}/events`))
  t.teardown(() => open.forEach((c) => c.close()))
  await waitFor('3 streams', () => server.stats().connections === 3)
  const refused = await fetchText(`${url}/events`)
  t.is(refused.status, 503)
  t.is(refused.headers['retry-after'], '5')
  t.is(server.stats().denied, 1)
  open[0].close()
  await waitFor('a slot frees up', () => server.stats().connections === 2)
  const again = sseClient(`${url}/events`)
  t.teardown(() => again.close())
  await waitFor('admitted', () => again.status === 200)
})

test('maxConnectionsPerIp answers 429 for one address while others still connect', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, maxConnectionsPerIp: 2 })
  const a = [sseClient(`${url}/events`), sseClient(`${url}/events`)]
  t.teardown(() => a.forEach((c) => c.close()))
  await waitFor('2 streams', () => server.stats().connections === 2)
  const third = await fetchText(`${url}/events`, { localAddress: '127.0.0.1' })
  t.is(third.status, 429)
  const other = sseClient(`${url}/events`, { localAddress: '127.0.0.2' })
  t.teardown(() => other.close())
  await waitFor('other address admitted', () => other.status === 200)
})

test('a request head that never completes gets 408 and the connection is closed', async (t) => {
  const { port } = await start(t, { headerTimeout: 300 })
  const c = rawRequest(port, 'GET /events HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  const t0 = Date.now()
  const drip = setInterval(() => c.socket.write('a'), 50)
  t.teardown(() => clearInterval(drip))
  await c.ended(5000)
  clearInterval(drip)
  t.regex(c.text(), /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.true(Date.now() - t0 >= 250)
})

test('an idle connection that sends nothing is closed after the header timeout', async (t) => {
  const { port } = await start(t, { headerTimeout: 300 })
  const socket = net.connect(port, '127.0.0.1')
  let closed = false
  let text = ''
  socket.on('data', (d) => (text += d))
  socket.on('close', () => (closed = true))
  socket.on('error', () => {})
  await waitFor('closed', () => closed, 5000)
  t.regex(text, /^HTTP\/1\.1 408/)
})

test('oversized request heads get 431', async (t) => {
  const { port } = await start(t, { maxHeaderBytes: 16384 })
  const c = rawRequest(port, `GET /events HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`)
  await c.until('\r\n\r\n')
  t.regex(c.text(), /^HTTP\/1\.1 431/)
})

test('limit options are validated', (t) => {
  t.throws(() => createServer({ maxConnections: -1 }), { instanceOf: RangeError, message: /options\.maxConnections/ })
  t.throws(() => createServer({ maxConnectionsPerIp: 'x' }), { instanceOf: TypeError })
  t.throws(() => createServer({ maxHeaderBytes: 1000 }), { instanceOf: RangeError, message: /at least 8192/ })
  t.throws(() => createServer({ headerTimeout: 1.5 }), { instanceOf: RangeError })
  t.throws(() => createServer({ history: -1 }), { instanceOf: RangeError, message: /options\.history/ })
  t.throws(() => createServer({ maxBufferedBytes: 0 }), { instanceOf: RangeError, message: /maxBufferedBytes must be at least 1/ })
  t.throws(() => createServer({ channelsFromQuery: 1 }), { instanceOf: TypeError, message: /channelsFromQuery must be a boolean/ })
})

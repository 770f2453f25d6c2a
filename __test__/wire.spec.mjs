// The wire format, byte for byte, through raw sockets: what the seed's
// hand-written `res.write` produced, now produced by the engine.
import test from 'ava'
import { start, rawStream, rawRequest, waitFor } from './helpers.mjs'

test('the stream head is flushed at once, with the SSE headers and nothing that breaks streaming', async (t) => {
  const { port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawStream(port)
  await c.until('\r\n\r\n')
  const head = c.head().toLowerCase()
  t.regex(head, /^http\/1\.1 200 ok\r\n/)
  t.true(head.includes('\r\ncontent-type: text/event-stream\r\n'), head)
  t.true(head.includes('\r\ncache-control: no-cache\r\n'))
  t.true(head.includes('\r\nx-accel-buffering: no\r\n'))
  t.true(head.includes('\r\nconnection: keep-alive\r\n'))
  t.false(head.includes('content-length'))
  t.false(head.includes('content-encoding'))
  c.socket.destroy()
})

test('an HTTP/1.0 client gets no keep-alive header and a close-delimited stream', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawRequest(port, 'GET /events HTTP/1.0\r\n\r\n')
  await c.until('\r\n\r\n')
  t.false(c.head().toLowerCase().includes('connection: keep-alive'))
  t.false(c.head().toLowerCase().includes('transfer-encoding'))
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('x')
  await c.until('data: x\n\n')
  c.socket.destroy()
})

test('the seed events are encoded byte-exact, in send order', async (t) => {
  const { server, port } = await start(t, { path: '/sendMessage', keepAlive: 0, retry: 3000, history: 0 })
  const c = rawStream(port, '/sendMessage')
  await c.until('retry: 3000\n\n')
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('12:00:00')
  server.comment("'这是注释！'")
  server.send({ event: 'myEvent', data: '2026/11/26 12:00:00' })
  server.send({ data: 'x', id: '42', retry: 5000, event: 'e' })
  await c.until('data: x\n\n')
  t.is(
    c.body().data,
    'retry: 3000\n\n' +
      'data: 12:00:00\n\n' +
      ": '这是注释！'\n" +
      'event: myEvent\ndata: 2026/11/26 12:00:00\n\n' +
      'event: e\nid: 42\nretry: 5000\ndata: x\n\n',
  )
})

test('data is split into one data line per line at LF, CRLF and lone CR; leading spaces survive', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawStream(port)
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('a\nb\r\nc\rd')
  server.send(' leading')
  server.send('')
  server.send('end\n')
  server.comment('one\ntwo\r\nthree')
  server.send({ data: 'x', id: '' })
  server.send({ id: 'only-id' })
  server.send({ retry: 0 })
  server.send('done')
  await c.until('data: done\n\n')
  t.is(
    c.body().data,
    'data: a\ndata: b\ndata: c\ndata: d\n\n' +
      'data:  leading\n\n' +
      'data:\n\n' +
      'data: end\ndata:\n\n' +
      ': one\n: two\n: three\n' +
      'id:\ndata: x\n\n' +
      'id: only-id\n\n' +
      'retry: 0\n\n' +
      'data: done\n\n',
  )
})

test('data that is not a string is sent as JSON; a Buffer is sent as its UTF-8 text', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawStream(port)
  await waitFor('stream', () => server.stats().connections === 1)
  server.send({ data: { price: 42, tags: ['a'] } })
  server.send({ data: 7 })
  server.send({ data: null })
  server.send({ data: [1, 'two'] })
  server.send({ data: { toJSON: () => 'custom' } })
  server.send(Buffer.from('héllo'))
  server.send({ data: Buffer.from('line1\nline2'), event: 'buf' })
  server.send({ data: 'done', id: 3 })
  await c.until('data: done\n\n')
  t.is(
    c.body().data,
    'data: {"price":42,"tags":["a"]}\n\n' +
      'data: 7\n\n' +
      'data: null\n\n' +
      'data: [1,"two"]\n\n' +
      'data: "custom"\n\n' +
      'data: héllo\n\n' +
      'event: buf\ndata: line1\ndata: line2\n\n' +
      'id: 3\ndata: done\n\n',
  )
})

test('keep-alive comments are written only while the stream is idle', async (t) => {
  const { server, port } = await start(t, { keepAlive: 300, history: 0 })
  const c = rawStream(port)
  await waitFor('stream', () => server.stats().connections === 1)
  for (let i = 0; i < 8; i++) {
    server.send(String(i))
    await new Promise((r) => setTimeout(r, 100))
  }
  await c.until('data: 7\n\n')
  t.false(c.body().data.includes(':\n'), 'no heartbeat while events flow')
  await c.until(':\n', 3000)
  t.true(c.body().data.endsWith('data: 7\n\n:\n'))
})

test('keepAlive: 0 sends no heartbeat at all', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawStream(port)
  await waitFor('stream', () => server.stats().connections === 1)
  await new Promise((r) => setTimeout(r, 600))
  t.is(c.body().data, '')
})

test('extra stream headers are added to the stream response', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, headers: { 'Access-Control-Allow-Origin': '*', 'Cache-Control': 'no-store' } })
  const c = rawStream(port)
  await c.until('\r\n\r\n')
  const head = c.head().toLowerCase()
  t.true(head.includes('\r\naccess-control-allow-origin: *\r\n'))
  t.true(head.includes('\r\ncache-control: no-store\r\n'))
  t.true(head.includes('\r\ncontent-type: text/event-stream\r\n'))
  await waitFor('stream', () => server.stats().connections === 1)
})

test('stats count streams, events, comments, deliveries and bytes', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  t.like(server.stats(), { connections: 0, eventsSent: 0, bytesSent: 0 })
  const a = rawStream(port)
  const b = rawStream(port)
  await waitFor('streams', () => server.stats().connections === 2)
  server.send('hi') // 'data: hi\n\n' = 10 bytes
  server.comment('c') // ': c\n' = 4 bytes
  await a.until(': c\n')
  await b.until(': c\n')
  t.like(server.stats(), { connections: 2, totalConnections: 2, eventsSent: 1, commentsSent: 1, deliveries: 4, bytesSent: 28, evicted: 0 })
})

// onRequest: plain routes from JavaScript beside the streams and the static
// files, with request bodies and their size limit.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { start, sseClient, fetchText, rawRequest, waitFor } from './helpers.mjs'

test('POST /publish and GET /connections served by onRequest beside the stream', async (t) => {
  let server
  const started = await start(t, {
    keepAlive: 0,
    onRequest: (req) => {
      if (req.method === 'POST' && req.path === '/publish') {
        const { channel, data } = JSON.parse(req.body.toString())
        server.send(data, { channel })
        return { status: 202, body: { queued: true } }
      }
      if (req.path === '/connections') return { body: String(server.stats().connections) }
      return undefined
    },
  })
  server = started.server
  const c = sseClient(`${started.url}/events`)
  t.teardown(() => c.close())
  await waitFor('stream', () => server.stats().connections === 1)
  const published = await fetchText(`${started.url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ channel: 'default', data: 'via http' }),
  })
  t.is(published.status, 202)
  t.deepEqual(JSON.parse(published.body), { queued: true })
  t.is(published.headers['content-type'], 'application/json; charset=utf-8')
  await waitFor('event', () => c.events.length === 1)
  t.is(c.events[0].data, 'via http')
  const count = await fetchText(`${started.url}/connections`)
  t.is(count.status, 200)
  t.is(count.body, '1')
  t.is(count.headers['content-type'], 'text/plain; charset=utf-8')
  t.is((await fetchText(`${started.url}/nothing-here`)).status, 404)
})

test('onRequest may be async, sees query, headers and body, and can set headers and binary bodies', async (t) => {
  const seen = []
  const { url } = await start(t, {
    onRequest: async (req) => {
      seen.push(req)
      await new Promise((r) => setTimeout(r, 10))
      return { status: 201, headers: { 'X-Echo': req.headers['x-test'], 'Content-Type': 'application/x-custom' }, body: Buffer.from([1, 2, 3]) }
    },
  })
  const res = await fetchText(`${url}/echo?a=1&a=2`, { method: 'PUT', headers: { 'x-test': 'hello' }, body: 'payload' })
  t.is(res.status, 201)
  t.is(res.headers['x-echo'], 'hello')
  t.is(res.headers['content-type'], 'application/x-custom')
  t.is(res.headers['content-length'], '3')
  t.like(seen[0], { method: 'PUT', path: '/echo', remoteAddress: '127.0.0.1' })
  t.deepEqual(seen[0].query, { a: ['1', '2'] })
  t.is(seen[0].body.toString(), 'payload')
})

test('a request body over maxBodyBytes gets 413 and never reaches onRequest', async (t) => {
  let calls = 0
  const { url, port } = await start(t, {
    maxBodyBytes: 1024,
    onRequest: () => {
      calls++
      return { body: 'ok' }
    },
  })
  const declared = await fetchText(`${url}/upload`, { method: 'POST', body: 'x'.repeat(2000) })
  t.is(declared.status, 413)
  // Chunked, so the size is only known while reading.
  const c = rawRequest(port, `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n400\r\n${'y'.repeat(1024)}\r\n10\r\n${'z'.repeat(16)}\r\n0\r\n\r\n`)
  await c.ended()
  t.regex(c.text(), /^HTTP\/1\.1 413/)
  const ok = await fetchText(`${url}/upload`, { method: 'POST', body: 'x'.repeat(1024) })
  t.is(ok.status, 200)
  t.is(calls, 1)
})

test('order: stream paths, then onRequest, then static files, then 404', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-order-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'page.html'), 'static page')
  fs.writeFileSync(path.join(dir, 'shadowed.html'), 'static version')
  const paths = []
  const { server, url } = await start(t, {
    keepAlive: 0,
    static: dir,
    onRequest: (req) => {
      paths.push(req.path)
      if (req.path === '/shadowed.html') return { body: 'route version' }
    },
  })
  const stream = sseClient(`${url}/events`)
  t.teardown(() => stream.close())
  await waitFor('stream', () => server.stats().connections === 1)
  t.is((await fetchText(`${url}/shadowed.html`)).body, 'route version')
  t.is((await fetchText(`${url}/page.html`)).body, 'static page')
  t.is((await fetchText(`${url}/missing`)).status, 404)
  t.is((await fetchText(`${url}/page.html`, { method: 'POST' })).status, 405)
  t.false(paths.includes('/events'), 'stream paths never reach onRequest')
})

test('a throwing or malformed onRequest answers 500 and reports to onError', async (t) => {
  const errors = []
  let mode = 'throw'
  const { url } = await start(t, {
    onRequest: () => {
      if (mode === 'throw') throw new RangeError('route boom')
      if (mode === 'reserved') return { headers: { 'Content-Length': '5' }, body: 'x' }
      if (mode === 'unknown') return { stauts: 200 }
      return 'not an object'
    },
    onError: (err, where) => errors.push([err.message, where]),
  })
  for (const m of ['throw', 'reserved', 'unknown', 'string']) {
    mode = m
    t.is((await fetchText(`${url}/x`)).status, 500, m)
  }
  await waitFor('4 errors', () => errors.length === 4)
  t.deepEqual(errors[0], ['route boom', 'onRequest'])
  t.regex(errors[1][0], /headers\['Content-Length'\]: this header is set by the server/)
  t.regex(errors[2][0], /unknown field 'stauts'/)
  t.regex(errors[3][0], /onRequest\(\) result must be an object, got string/)
})

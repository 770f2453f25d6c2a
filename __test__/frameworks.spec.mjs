// The README's recipes, each in the real framework from npm: Express 5 with
// an auth middleware choosing per-user channels, Fastify 5 (reply.hijack()),
// Koa (ctx.respond = false), Hono on @hono/node-server (fetch()); then load:
// 1,000 clients through Express on the native path, 10,000 connect and
// disconnect cycles without a leaked descriptor, and the seed page in
// headless Chromium served by Express on one origin.
import test from 'ava'
import fs from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import express from 'express'
import Fastify from 'fastify'
import Koa from 'koa'
import { Hono } from 'hono'
import { serve } from '@hono/node-server'
import { EventSource } from 'eventsource'
import { createParser } from 'eventsource-parser'
import { createServer, fetchText, launchChromium, sseClient, waitFor } from './helpers.mjs'

/** Starts a node http.Server (what app.listen returns) on loopback. */
async function listening(t, server) {
  await new Promise((r) => (server.listening ? r() : server.once('listening', r)))
  t.teardown(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()) }))
  return `http://127.0.0.1:${server.address().port}`
}

function expressApp(sse, handled = []) {
  const app = express()
  // The app's own auth: a token names the user; no token, no stream.
  const users = { 'token-ann': 'ann', 'token-bob': 'bob' }
  const requireUser = (req, res, next) => {
    const token = typeof req.query.token === 'string' ? req.query.token : ''
    const user = users[token]
    if (!user) return res.status(401).send('sign in first')
    req.user = user
    next()
  }
  app.get('/events', requireUser, (req, res) => {
    handled.push(sse.handle(req, res, { channels: ['news', `user:${req.user}`] }))
  })
  app.get('/', (req, res) => res.send('home'))
  return app
}

test('Express 5: an auth middleware chooses per-user channels; the stream is native on the app port', async (t) => {
  const sse = createServer()
  t.teardown(() => sse.close())
  const handled = []
  const url = await listening(t, expressApp(sse, handled).listen(0, '127.0.0.1'))
  t.is((await fetchText(`${url}/events`)).status, 401)
  t.is((await fetchText(`${url}/`)).body, 'home')
  const ann = sseClient(`${url}/events`, { query: '?token=token-ann' })
  const bob = sseClient(`${url}/events`, { query: '?token=token-bob' })
  t.teardown(() => { ann.close(); bob.close() })
  await waitFor('two streams', () => sse.stats().connections === 2)
  const clients = await Promise.all(handled)
  t.deepEqual(clients.map((c) => c.transport), ['native', 'native'])
  sse.send('for everyone', { channel: 'news' })
  sse.send('for ann', { channel: 'user:ann' })
  await waitFor('deliveries', () => ann.events.length === 2 && bob.events.length === 1)
  t.deepEqual(ann.events.map((e) => e.data), ['for everyone', 'for ann'])
  t.deepEqual(bob.events.map((e) => e.data), ['for everyone'])
})

test('Fastify 5: reply.hijack() hands the request over', async (t) => {
  const sse = createServer({ history: 5 })
  t.teardown(() => sse.close())
  const fastify = Fastify()
  const handled = []
  fastify.get('/events', (request, reply) => {
    reply.hijack()
    handled.push(sse.handle(request.raw, reply.raw, { channels: 'ticker' }))
  })
  fastify.get('/health', async () => ({ ok: true }))
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => fastify.close())
  const url = `http://127.0.0.1:${fastify.server.address().port}`
  sse.send({ id: '1', data: 'a' }, { channel: 'ticker' })
  sse.send({ id: '2', data: 'b' }, { channel: 'ticker' })
  const client = sseClient(`${url}/events`, { lastEventId: '1' })
  t.teardown(() => client.close())
  await waitFor('the replay', () => client.events.length === 1)
  t.is(client.events[0].data, 'b')
  t.is((await handled[0]).transport, 'native')
  t.deepEqual(JSON.parse((await fetchText(`${url}/health`)).body), { ok: true })
})

test('Koa: ctx.respond = false hands the request over', async (t) => {
  const sse = createServer()
  t.teardown(() => sse.close())
  const app = new Koa()
  const handled = []
  app.use(async (ctx, next) => {
    if (ctx.path !== '/events') return next()
    ctx.respond = false
    handled.push(sse.handle(ctx.req, ctx.res))
  })
  app.use((ctx) => { ctx.body = 'koa page' })
  const url = await listening(t, app.listen(0, '127.0.0.1'))
  const es = new EventSource(`${url}/events`)
  t.teardown(() => es.close())
  const got = []
  es.onmessage = (e) => got.push(e.data)
  await waitFor('open', () => es.readyState === EventSource.OPEN)
  sse.send('from koa')
  await waitFor('the event', () => got.length === 1)
  t.is(got[0], 'from koa')
  t.is((await handled[0]).transport, 'native')
  t.is((await fetchText(`${url}/other`)).body, 'koa page')
})

test('Hono on @hono/node-server: fetch() answers with a Response the engine feeds; aborting ends the client', async (t) => {
  const sse = createServer({ history: 10 })
  t.teardown(() => sse.close())
  const app = new Hono()
  app.get('/events', (c) => sse.fetch(c.req.raw, { channels: 'news' }))
  app.get('/', (c) => c.text('hono page'))
  const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
  const url = await listening(t, server)
  t.is((await fetchText(`${url}/`)).body, 'hono page')
  sse.send({ id: '1', data: 'seen' }, { channel: 'news' })
  sse.send({ id: '2', data: 'missed' }, { channel: 'news' })
  const client = sseClient(`${url}/events`, { lastEventId: '1' })
  await waitFor('the stream', () => sse.stats().connections === 1)
  await waitFor('the response head', () => client.open)
  t.is(client.status, 200)
  t.is(client.headers['content-type'], 'text/event-stream')
  for (let i = 3; i <= 50; i++) sse.send({ id: String(i), data: `n${i}` }, { channel: 'news' })
  await waitFor('every event', () => client.events.length === 49)
  t.deepEqual(client.events.map((e) => e.id), Array.from({ length: 49 }, (_, i) => String(i + 2)))
  client.close()
  await waitFor('the client gone', () => sse.stats().connections === 0)
  // A web fetch against the engine directly: cancelling the reader ends it.
  const response = await sse.fetch(new Request('http://x.test/events'))
  t.is(response.status, 200)
  await waitFor('the fetch stream', () => sse.stats().connections === 1)
  const reader = response.body.getReader()
  sse.send('direct', { channel: 'default' })
  const { value } = await reader.read()
  t.regex(Buffer.from(value).toString(), /data: direct/)
  await reader.cancel()
  await waitFor('cancelled', () => sse.stats().connections === 0)
  await t.throwsAsync(() => sse.fetch({}), { instanceOf: TypeError, message: /fetch\(\): request must be a web Request/ })
  const head = await sse.fetch(new Request('http://x.test/events', { method: 'POST', body: 'x' }))
  t.is(head.status, 405)
})

test('1,000 clients through Express on the native path get 200 events each, complete and in order', async (t) => {
  const sse = createServer({ history: 0 })
  t.teardown(() => sse.close())
  const handled = []
  const url = await listening(t, expressApp(sse, handled).listen(0, '127.0.0.1', 4096))
  const { port } = new URL(url)
  const clients = []
  for (let i = 0; i < 1000; i++) {
    const c = { ids: [], socket: net.connect({ port: Number(port), host: '127.0.0.1', localAddress: `127.0.0.${1 + (i % 200)}` }) }
    const parser = createParser({ onEvent: (e) => c.ids.push(Number(e.id)) })
    let head = true
    c.socket.setEncoding('latin1')
    c.socket.on('data', (d) => {
      // Strip the head and the chunk framing: only the event lines matter here.
      if (head) { const end = d.indexOf('\r\n\r\n'); if (end < 0) return; d = d.slice(end + 4); head = false }
      parser.feed(d.replace(/\r\n[0-9A-F]+\r\n/g, '').replace(/^[0-9A-F]+\r\n/, ''))
    })
    c.socket.on('error', () => {})
    c.socket.write(`GET /events?token=token-ann HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    clients.push(c)
  }
  t.teardown(() => clients.forEach((c) => c.socket.destroy()))
  await waitFor('1,000 streams', () => sse.stats().connections === 1000, 60000)
  const transports = new Set((await Promise.all(handled)).map((c) => c.transport))
  t.deepEqual([...transports], ['native'])
  for (let i = 1; i <= 200; i++) sse.send({ id: String(i), data: `event ${i} ${'x'.repeat(40)}` }, { channel: 'news' })
  await waitFor('every event at every client', () => clients.every((c) => c.ids.length >= 200), 60000)
  const expected = Array.from({ length: 200 }, (_, i) => i + 1)
  t.true(clients.every((c) => c.ids.length === 200 && c.ids.every((id, i) => id === expected[i])))
})

test('10,000 connect/disconnect cycles through Express leave no stream, socket or descriptor behind', async (t) => {
  const sse = createServer()
  t.teardown(() => sse.close())
  const url = await listening(t, expressApp(sse).listen(0, '127.0.0.1', 4096))
  const port = Number(new URL(url).port)
  const fds = () => fs.readdirSync('/proc/self/fd').length
  // One cycle first, so lazily made things (the glue, the engine's tasks) exist.
  let streamed = 0
  const cycle = (localAddress) => new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress })
    s.on('error', () => resolve())
    s.on('data', (d) => {
      if (d.includes('\r\n\r\n')) {
        if (d.includes('text/event-stream')) streamed++
        s.destroy()
      }
    })
    s.on('close', resolve)
    s.write('GET /events?token=token-bob HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  })
  await cycle('127.0.0.1')
  await waitFor('none open', () => sse.stats().connections === 0)
  const baseline = fds()
  for (let round = 0; round < 100; round++) {
    await Promise.all(Array.from({ length: 100 }, (_, i) => cycle(`127.0.1.${1 + i}`)))
  }
  t.is(streamed, 10001)
  await waitFor('every stream gone', () => sse.stats().connections === 0, 20000)
  await waitFor('descriptors back at the baseline', () => fds() <= baseline, 20000)
  t.is(sse.stats().connections, 0)
  t.true(fds() <= baseline, `${fds()} open, baseline ${baseline}`)
})

test('Chromium: the seed page served by Express, EventSource("/sendMessage") on the same origin', async (t) => {
  const browser = await launchChromium(t)
  if (!browser) return
  const sse = createServer()
  t.teardown(() => sse.close())
  const app = express()
  const page = fileURLToPath(new URL('../examples/clock/index.html', import.meta.url))
  app.get('/', (req, res) => res.sendFile(page))
  app.get('/sendMessage', (req, res) => sse.handle(req, res))
  const url = await listening(t, app.listen(0, '127.0.0.1'))
  const tab = await browser.newPage()
  const logs = []
  tab.on('console', (m) => logs.push(m.text()))
  await tab.goto(url)
  await waitFor('the page to connect', () => logs.includes('Server open') && sse.stats().connections === 1, 15000)
  sse.send('12:34:56')
  sse.comment("'这是注释！'")
  sse.send({ event: 'myEvent', data: '2026/12/2 12:34:56' })
  await waitFor('both events on the page', () => logs.includes('12:34:56') && logs.includes('2026/12/2 12:34:56'), 15000)
  t.is(await tab.textContent('#status'), 'open')
  t.is(await tab.textContent('#myEvents li'), '2026/12/2 12:34:56')
})

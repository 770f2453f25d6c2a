// The connect hook and the connection callbacks: accept, deny, choose
// channels, fail safely; and every way a stream can end, reported once.
import test from 'ava'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'
import { createServer, start, sseClient, fetchText, waitFor } from './helpers.mjs'

test('onConnect sees the request and can accept with channels and headers (sync)', async (t) => {
  const seen = []
  const { server, url } = await start(t, {
    keepAlive: 0,
    onConnect: (req) => {
      seen.push(req)
      return { channels: [`user:${req.query.user}`], headers: { 'X-User': String(req.query.user) } }
    },
  })
  const c = sseClient(`${url}/events`, { query: '?user=42&tag=a&tag=b', headers: { authorization: 'Bearer t0k3n' } })
  t.teardown(() => c.close())
  await waitFor('open', () => c.open)
  t.is(c.headers['x-user'], '42')
  t.is(c.headers['content-type'], 'text/event-stream')
  const req = seen[0]
  t.regex(req.id, /^\d+$/)
  t.like(req, { method: 'GET', path: '/events', remoteAddress: '127.0.0.1', lastEventIdStale: false })
  t.deepEqual(req.channels, ['default'], 'what it would get without the hook')
  t.deepEqual(req.query, { user: '42', tag: ['a', 'b'] })
  t.is(req.headers.authorization, 'Bearer t0k3n')
  t.is(req.lastEventId, undefined)
  server.send('for everyone') // default channel: this client does not read it
  server.send('for you', { channel: 'user:42' })
  await waitFor('event', () => c.events.length === 1)
  t.is(c.events[0].data, 'for you')
  t.deepEqual(server.stats().channels['user:42'], { subscribers: 1, history: 1 })
})

test('onConnect may be async; true and undefined accept on the default channel', async (t) => {
  let n = 0
  const { server, url } = await start(t, {
    keepAlive: 0,
    onConnect: async () => {
      await new Promise((r) => setTimeout(r, 20))
      return n++ % 2 === 0 ? true : undefined
    },
  })
  const a = sseClient(`${url}/events`)
  const b = sseClient(`${url}/events`)
  t.teardown(() => [a, b].forEach((c) => c.close()))
  await waitFor('both open', () => server.stats().connections === 2)
  server.send('hi')
  await waitFor('both get it', () => a.events.length === 1 && b.events.length === 1)
  t.pass()
})

test('onConnect denies with false (403) or { status, body, headers }; denials are counted and reported', async (t) => {
  const ends = []
  const { server, url } = await start(t, {
    onConnect: (req) => {
      if (req.query.token === undefined) return { status: 401, body: 'login first', headers: { 'WWW-Authenticate': 'Bearer' } }
      if (req.query.token === 'json') return { status: 429, body: { retryInMs: 1000 } }
      if (req.query.token !== 'good') return Promise.resolve(false)
      return true
    },
    onDisconnect: (c, reason) => ends.push(reason),
  })
  const noToken = await fetchText(`${url}/events`)
  t.is(noToken.status, 401)
  t.is(noToken.body, 'login first')
  t.is(noToken.headers['www-authenticate'], 'Bearer')
  t.is(noToken.headers['content-type'], 'text/plain; charset=utf-8')
  const bad = await fetchText(`${url}/events?token=bad`)
  t.is(bad.status, 403)
  const json = await fetchText(`${url}/events?token=json`)
  t.is(json.status, 429)
  t.is(json.headers['content-type'], 'application/json; charset=utf-8')
  t.deepEqual(JSON.parse(json.body), { retryInMs: 1000 })
  t.is(server.stats().denied, 3)
  t.is(server.stats().connections, 0)
  await waitFor('3 reports', () => ends.length === 3)
  t.deepEqual(ends, ['denied', 'denied', 'denied'])
})

test('a 204 from onConnect tells a browser-like client to stop reconnecting', async (t) => {
  let attempts = 0
  const { url } = await start(t, {
    retry: 10,
    onConnect: () => {
      attempts++
      return { status: 204 }
    },
  })
  const es = new EventSource(`${url}/events`)
  t.teardown(() => es.close())
  await waitFor('closed', () => es.readyState === EventSource.CLOSED)
  await new Promise((r) => setTimeout(r, 200))
  t.is(attempts, 1)
})

test('a throwing, rejecting or malformed onConnect answers 500, reports to onError, and the server keeps serving', async (t) => {
  const errors = []
  let mode = 'throw'
  const { server, url } = await start(t, {
    keepAlive: 0,
    onConnect: () => {
      if (mode === 'throw') throw new Error('boom')
      if (mode === 'reject') return Promise.reject(new TypeError('async boom'))
      if (mode === 'malformed') return 42
      if (mode === 'bad channels') return { channels: [1] }
      if (mode === 'bad status') return { status: 99 }
      return true
    },
    onError: (err, where) => errors.push([err, where]),
  })
  for (const m of ['throw', 'reject', 'malformed', 'bad channels', 'bad status']) {
    mode = m
    const res = await fetchText(`${url}/events`)
    t.is(res.status, 500, m)
  }
  await waitFor('5 errors', () => errors.length === 5)
  t.is(errors[0][0].message, 'boom')
  t.true(errors[0][0] instanceof Error)
  t.is(errors[0][1], 'onConnect')
  t.is(errors[1][0].message, 'async boom')
  t.true(errors[1][0] instanceof TypeError, 'the original error object reaches onError')
  t.regex(errors[2][0].message, /onConnect\(\) result must be true, false, undefined/)
  t.regex(errors[3][0].message, /onConnect\(\) result\.channels\[0\] must be a string/)
  t.regex(errors[4][0].message, /onConnect\(\) result\.status must be an HTTP status from 200 to 599/)
  mode = 'ok'
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('served', () => server.stats().connections === 1)
})

test('without onError a hook failure goes to console.error, not nowhere', async (t) => {
  const addon = fileURLToPath(new URL('../index.js', import.meta.url))
  const source = `
    import { createRequire } from 'node:module'
    import http from 'node:http'
    const { createServer } = createRequire(import.meta.url)(${JSON.stringify(addon)})
    const s = createServer({ onConnect: () => { throw new Error('unreported?') } })
    const { port } = await s.listen(0, '127.0.0.1')
    http.get('http://127.0.0.1:' + port + '/events', async (res) => {
      console.log('status', res.statusCode)
      await new Promise((r) => setTimeout(r, 100))
      await s.close()
    })`
  const out = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
  t.is(out.code, 0, out.stderr)
  t.true(out.stdout.includes('status 500'))
  t.regex(out.stderr, /hyper-sse: onConnect failed:/)
  t.regex(out.stderr, /unreported\?/)
})

test('onConnection and onDisconnect report each stream once, with its reason', async (t) => {
  const opened = []
  const ended = []
  const { server, url } = await start(t, {
    keepAlive: 0,
    onConnection: (c) => opened.push(c),
    onDisconnect: (c, reason) => ended.push([c.id, reason]),
  })
  const a = sseClient(`${url}/events`, { query: '?x=1' })
  await waitFor('a', () => opened.length === 1)
  t.like(opened[0], { path: '/events', channels: ['default'], remoteAddress: '127.0.0.1', lastEventIdStale: false })
  t.deepEqual(opened[0].query, { x: '1' })
  a.close()
  await waitFor('a closed', () => ended.length === 1)
  t.deepEqual(ended[0], [opened[0].id, 'closed'])
  const b = sseClient(`${url}/events`)
  await waitFor('b', () => opened.length === 2)
  await server.close()
  await waitFor('b shut down', () => ended.length === 2)
  t.deepEqual(ended[1], [opened[1].id, 'shutdown'])
  b.close()
})

test('firstComment is written first on every stream', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, retry: 2000, firstComment: 'ok' })
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('comment', () => c.comments.length === 1)
  t.deepEqual(c.comments, ['ok'])
  t.is(server.stats().connections, 1)
})

test('hook options must be functions', (t) => {
  for (const name of ['onConnect', 'onConnection', 'onDisconnect', 'onRequest', 'onError']) {
    t.throws(() => createServer({ [name]: 'nope' }), { instanceOf: TypeError, message: new RegExp(`options\\.${name} must be a function, got string`) })
  }
})

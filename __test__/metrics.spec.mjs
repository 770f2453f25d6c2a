// server.metrics(): the counters as Prometheus text, read back by a real
// Prometheus parser (Python's prometheus_client, installed from PyPI when it
// is missing), then checked against what the test did and against stats():
// connections, events, per-channel subscribers, the channel cap, label
// escaping, evictions by reason, the Redis backplane's state and counters,
// option validation, and the README's two
// recipes (an onRequest route and an Express route).
import test from 'ava'
import net from 'node:net'
import { execFileSync } from 'node:child_process'
import express from 'express'
import { createServer, fetchText, sseClient, start, waitFor } from './helpers.mjs'
import { ownRedis, uniquePrefix } from './redis-helpers.mjs'

const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        'name': f.name, 'type': f.type, 'help': f.documentation,
        'samples': [{'name': s.name, 'labels': s.labels, 'value': s.value} for s in f.samples],
    })
json.dump(families, sys.stdout)
`

/** Installs prometheus-client with pip when python3 cannot import it yet. */
function ensurePrometheusClient() {
  const importable = () => {
    try {
      execFileSync('python3', ['-c', 'import prometheus_client'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  if (importable()) return
  const pip = (...extra) => execFileSync('python3', ['-m', 'pip', 'install', '--quiet', ...extra, 'prometheus-client'], { stdio: 'inherit', timeout: 180_000 })
  try {
    pip()
  } catch {
    pip('--user') // a Python whose site-packages is not writable
  }
  if (!importable()) throw new Error('python3 still cannot import prometheus_client after pip install')
}

test.before(() => ensurePrometheusClient())

/** The families prometheus_client parses out of `text` (it throws on text that is not the format). */
function parse(text) {
  return JSON.parse(execFileSync('python3', ['-c', PARSE], { input: text, encoding: 'utf8' }))
}

/** The samples named `name` whose labels include `labels`. */
function samplesOf(families, name, labels = {}) {
  return families
    .flatMap((f) => f.samples)
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
}

/** The one sample named `name` with exactly `labels`; fails the test when there is not exactly one. */
function value(t, families, name, labels = {}) {
  const found = samplesOf(families, name).filter(
    (s) => JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()),
  )
  t.is(found.length, 1, `one sample ${name}${JSON.stringify(labels)}`)
  return found[0]?.value
}

/** A client that reads the response head and then never reads again: its socket fills up. */
function stalledClient(port, path = '/events') {
  const socket = net.connect(port, '127.0.0.1')
  let head = ''
  const state = { socket, headRead: false, closed: false }
  socket.on('data', (d) => {
    if (state.headRead) return
    head += d.toString('latin1')
    if (head.includes('\r\n\r\n')) {
      state.headRead = true
      socket.pause()
    }
  })
  socket.on('error', () => {})
  socket.on('close', () => (state.closed = true))
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
  return state
}

test('metrics() is Prometheus text that agrees with what happened and with stats()', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  const a = sseClient(`${url}/events`)
  const b = sseClient(`${url}/events`)
  const news = sseClient(`${url}/events`, { query: '?channel=news' })
  t.teardown(() => [a, b, news].forEach((c) => c.close()))
  await waitFor('three streams', () => server.stats().connections === 3)
  server.send('one')
  server.send({ event: 'tick', data: 'two' })
  server.send('headline', { channel: 'news' })
  server.comment('still here')
  await waitFor('deliveries', () => a.events.length === 2 && b.events.length === 2 && news.events.length === 1 && a.comments.length === 1 && b.comments.length === 1)
  // 2 events and a comment to each default reader, the headline to one.
  await waitFor('the counters to settle', () => server.stats().deliveries === 7)

  const stats = server.stats()
  const families = parse(server.metrics())
  for (const f of families) {
    t.true(f.name.startsWith('hyper_sse_'), f.name)
    t.true(f.help.length > 0, `${f.name} has HELP`)
    t.true(['counter', 'gauge'].includes(f.type), `${f.name} is a ${f.type}`)
    if (f.type === 'counter') t.true(f.samples.every((s) => s.name.endsWith('_total')), `${f.name} samples end in _total`)
  }
  t.is(value(t, families, 'hyper_sse_connections'), 3)
  t.is(value(t, families, 'hyper_sse_streams_opened_total'), 3)
  t.is(value(t, families, 'hyper_sse_events_sent_total'), 3)
  t.is(value(t, families, 'hyper_sse_comments_sent_total'), 1)
  t.is(value(t, families, 'hyper_sse_deliveries_total'), 7)
  t.is(value(t, families, 'hyper_sse_sent_bytes_total'), stats.bytesSent)
  t.true(stats.bytesSent > 0)
  t.is(value(t, families, 'hyper_sse_denials_total'), 0)
  for (const reason of ['budget', 'stall', 'gap']) t.is(value(t, families, 'hyper_sse_evictions_total', { reason }), 0)
  t.is(value(t, families, 'hyper_sse_channels'), Object.keys(stats.channels).length)
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: 'default' }), 2)
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: 'news' }), 1)
  t.is(value(t, families, 'hyper_sse_channel_history_events', { channel: 'default' }), stats.channels.default.history)
  t.is(value(t, families, 'hyper_sse_channel_history_events', { channel: 'news' }), 1)
  t.deepEqual(samplesOf(families, 'hyper_sse_channel_subscribers', { channel: '_other' }), [], 'nothing summed: every channel is listed')
  t.deepEqual(families.filter((f) => f.name.startsWith('hyper_sse_backplane')), [], 'no backplane without redis')

  a.close()
  await waitFor('one stream gone', () => server.stats().connections === 2)
  const after = parse(server.metrics())
  t.is(value(t, after, 'hyper_sse_connections'), 2)
  t.is(value(t, after, 'hyper_sse_streams_opened_total'), 3, 'a counter does not go down')
  t.is(value(t, after, 'hyper_sse_channel_subscribers', { channel: 'default' }), 1)
})

test('a channel name with a double quote and a backslash comes back intact through the parser', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  const name = 'say "hi" \\ now, {x="y"}'
  const c = sseClient(`${url}/events`, { query: `?channel=${encodeURIComponent(name)}` })
  t.teardown(() => c.close())
  await waitFor('the stream', () => server.stats().connections === 1)
  const text = server.metrics()
  t.true(text.includes('hyper_sse_channel_subscribers{channel="say \\"hi\\" \\\\ now, {x=\\"y\\"}"} 1\n'), 'escaped as the format says')
  const families = parse(text)
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: name }), 1)
})

test('only maxChannels channels get a label; the rest are summed as channel="_other"', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  // Subscribers per channel: big 3, mid 2, and one each for three small ones.
  const plan = { big: 3, mid: 2, s1: 1, s2: 1, s3: 1 }
  const clients = Object.entries(plan).flatMap(([ch, n]) =>
    Array.from({ length: n }, () => sseClient(`${url}/events`, { query: `?channel=${ch}` })))
  t.teardown(() => clients.forEach((c) => c.close()))
  await waitFor('eight streams', () => server.stats().connections === 8)
  server.send('x', { channel: ['s1', 's2'] })
  await waitFor('history', () => server.stats().channels.s2?.history === 1)

  const families = parse(server.metrics({ maxChannels: 2 }))
  const channels = Object.keys(server.stats().channels)
  t.is(value(t, families, 'hyper_sse_channels'), channels.length)
  t.deepEqual(
    samplesOf(families, 'hyper_sse_channel_subscribers').map((s) => [s.labels.channel, s.value]),
    [['big', 3], ['mid', 2], ['_other', 3]],
  )
  t.is(value(t, families, 'hyper_sse_channel_history_events', { channel: '_other' }), 2)

  const none = parse(server.metrics({ maxChannels: 0 }))
  t.deepEqual(samplesOf(none, 'hyper_sse_channel_subscribers').map((s) => [s.labels.channel, s.value]), [['_other', 8]])

  const all = parse(server.metrics())
  t.is(samplesOf(all, 'hyper_sse_channel_subscribers').length, channels.length, 'under the default cap every channel is listed')
})

test('by default 100 channels are listed and the 101st on is summed', async (t) => {
  const server = createServer({ keepAlive: 0 })
  t.teardown(() => server.close())
  // 105 channels with one event of history each and no subscribers:
  // ranked by subscribers (all 0), then by name.
  const names = Array.from({ length: 105 }, (_, i) => `ch${String(i).padStart(3, '0')}`)
  for (const name of names) server.send('x', { channel: name })
  await waitFor('105 channels', () => Object.keys(server.stats().channels).length === 105)
  const families = parse(server.metrics())
  t.is(value(t, families, 'hyper_sse_channels'), 105)
  const history = samplesOf(families, 'hyper_sse_channel_history_events')
  t.deepEqual(history.slice(0, 100).map((s) => s.labels.channel), names.slice(0, 100))
  t.deepEqual(history.slice(100).map((s) => [s.labels.channel, s.value]), [['_other', 5]])
})

test('evictions are counted by reason: a sendTo queue over maxBufferedBytes is "budget"', async (t) => {
  let id
  const { server, port } = await start(t, { keepAlive: 0, maxBufferedBytes: 256 * 1024, onConnection: (c) => (id = c.id) })
  const c = stalledClient(port)
  t.teardown(() => c.socket.destroy())
  await waitFor('stream', () => id !== undefined)
  const chunk = 'y'.repeat(16 * 1024)
  let sent = 0
  while (sent < 10_000 && server.sendTo(id, chunk)) sent++
  t.true(sent < 10_000, 'sendTo refused once the queue was full')
  await waitFor('evicted', () => server.stats().evicted === 1)
  const families = parse(server.metrics())
  t.is(value(t, families, 'hyper_sse_evictions_total', { reason: 'budget' }), 1)
  t.is(value(t, families, 'hyper_sse_evictions_total', { reason: 'stall' }), 0)
  t.is(value(t, families, 'hyper_sse_evictions_total', { reason: 'gap' }), 0)
  t.deepEqual(server.stats().evictions, { budget: 1, stall: 0, gap: 0 }, 'stats() splits them the same way')
  t.is(value(t, families, 'hyper_sse_connections'), 0)
})

test('evictions are counted by reason: a client that takes nothing for stallTimeout is "stall"', async (t) => {
  t.timeout(60_000)
  // A budget no burst here reaches: only the stall rule can drop it.
  const { server, port, url } = await start(t, { keepAlive: 0, history: 10, maxBufferedBytes: 1 << 30, stallTimeout: 500, channelsFromQuery: true })
  const stalled = stalledClient(port, '/events?channel=firehose')
  const reader = sseClient(`${url}/events`)
  t.teardown(() => { stalled.socket.destroy(); reader.close() })
  await waitFor('two streams', () => server.stats().connections === 2)
  // 24 MiB at once, more than the socket buffers take, then silence.
  const payload = 'x'.repeat(4096)
  for (let i = 0; i < 6000; i++) server.send(payload, { channel: 'firehose' })
  await waitFor('the stalled client evicted', () => server.stats().evicted === 1, 20_000)
  const families = parse(server.metrics())
  t.is(value(t, families, 'hyper_sse_evictions_total', { reason: 'stall' }), 1)
  t.is(value(t, families, 'hyper_sse_evictions_total', { reason: 'budget' }), 0)
  t.deepEqual(server.stats().evictions, { budget: 0, stall: 1, gap: 0 }, 'stats() splits them the same way')
  t.is(value(t, families, 'hyper_sse_connections'), 1, 'the reading client stays')
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: 'default' }), 1)
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: 'firehose' }), 0)
})

test('with a redis backplane: its state and counters, and up drops to 0 when Redis goes away', async (t) => {
  t.timeout(60_000)
  const redis = await ownRedis(t.teardown.bind(t))
  const { server, url } = await start(t, { keepAlive: 0, redis: { url: redis.url, prefix: uniquePrefix() }, onError: () => {} })
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream', () => server.stats().connections === 1)
  for (const data of ['a', 'b', 'c']) server.send(data)
  await server.flush()
  await waitFor('the events back from Redis', () => c.events.length === 3)
  const up = parse(server.metrics())
  t.is(value(t, up, 'hyper_sse_backplane_up'), 1)
  t.deepEqual(
    samplesOf(up, 'hyper_sse_backplane_state').map((s) => [s.labels.state, s.value]),
    [['idle', 0], ['connected', 1], ['reconnecting', 0], ['closed', 0]],
  )
  t.is(value(t, up, 'hyper_sse_backplane_published_total'), 3)
  t.is(value(t, up, 'hyper_sse_backplane_received_total'), 3)
  t.is(value(t, up, 'hyper_sse_backplane_pending'), 0)
  for (const name of ['reconnects', 'failed', 'lost']) t.is(value(t, up, `hyper_sse_backplane_${name}_total`), 0, name)

  await redis.kill()
  await waitFor('the backplane to notice', () => server.stats().backplane.state === 'reconnecting', 20_000)
  const down = parse(server.metrics())
  t.is(value(t, down, 'hyper_sse_backplane_up'), 0)
  t.is(value(t, down, 'hyper_sse_backplane_state', { state: 'reconnecting' }), 1)
  t.is(value(t, down, 'hyper_sse_backplane_state', { state: 'connected' }), 0)
})

test('metrics() refuses bad options with a TypeError or RangeError naming the field', (t) => {
  const server = createServer()
  t.teardown(() => server.close())
  t.throws(() => server.metrics('all'), { instanceOf: TypeError, message: /metrics\(\): options must be an object/ })
  t.throws(() => server.metrics({ max: 5 }), { instanceOf: TypeError, message: /unknown field 'max'/ })
  t.throws(() => server.metrics({ maxChannels: '5' }), { instanceOf: TypeError, message: /options\.maxChannels must be a number/ })
  for (const bad of [-1, 1.5, 10_001, Number.NaN, Infinity]) {
    t.throws(() => server.metrics({ maxChannels: bad }), { instanceOf: RangeError, message: /options\.maxChannels must be an integer from 0 to 10000/ }, String(bad))
  }
  for (const ok of [undefined, null, {}, { maxChannels: undefined }, { maxChannels: 0 }, { maxChannels: 10_000 }]) {
    t.true(server.metrics(ok).includes('# TYPE hyper_sse_connections gauge\n'), JSON.stringify(ok))
  }
})

test('recipe: metrics served by onRequest at /metrics scrape and parse', async (t) => {
  const { server, url } = await start(t, {
    keepAlive: 0,
    onRequest: (req) =>
      req.method === 'GET' && req.path === '/metrics'
        ? { headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }, body: server.metrics() }
        : undefined,
  })
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream', () => server.stats().connections === 1)
  server.send('hello')
  await waitFor('the event', () => c.events.length === 1)
  const res = await fetchText(`${url}/metrics`)
  t.is(res.status, 200)
  t.is(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  const families = parse(res.body)
  t.is(value(t, families, 'hyper_sse_connections'), 1)
  t.is(value(t, families, 'hyper_sse_events_sent_total'), 1)
  t.is(value(t, families, 'hyper_sse_channel_subscribers', { channel: 'default' }), 1)
  t.is((await fetchText(`${url}/other`)).status, 404, 'other paths still fall through')
})

test('recipe: metrics served by an Express route scrape and parse', async (t) => {
  const sse = createServer({ keepAlive: 0 })
  t.teardown(() => sse.close())
  const app = express()
  app.get('/events', (req, res) => {
    sse.handle(req, res)
  })
  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4').send(sse.metrics())
  })
  const http = app.listen(0, '127.0.0.1')
  await new Promise((r) => http.once('listening', r))
  t.teardown(() => new Promise((r) => { http.closeAllConnections(); http.close(() => r()) }))
  const url = `http://127.0.0.1:${http.address().port}`
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream', () => sse.stats().connections === 1)
  sse.send('hello')
  sse.send('again')
  await waitFor('the events', () => c.events.length === 2)
  const res = await fetchText(`${url}/metrics`)
  t.is(res.status, 200)
  t.regex(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const families = parse(res.body)
  t.is(value(t, families, 'hyper_sse_connections'), 1)
  t.is(value(t, families, 'hyper_sse_events_sent_total'), 2)
  t.is(value(t, families, 'hyper_sse_deliveries_total'), 2)
})

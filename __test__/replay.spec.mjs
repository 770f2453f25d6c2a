// History and replay: a client that reconnects with Last-Event-ID gets every
// later event of its channels exactly once, in order, then the live stream.
import test from 'ava'
import { EventSource } from 'eventsource'
import { random, start, sseClient, waitFor } from './helpers.mjs'

test('events get automatic ids; reconnecting with Last-Event-ID replays exactly what was missed', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0 })
  const first = sseClient(`${url}/events`)
  await waitFor('stream', () => server.stats().connections === 1)
  for (let i = 0; i < 5; i++) server.send(`e${i}`)
  await waitFor('5 events', () => first.events.length === 5)
  t.true(first.events.every((e) => /^[0-9a-z]+-\d+$/.test(e.id)), 'automatic ids')
  const ids = first.events.map((e) => e.id)
  t.is(new Set(ids).size, 5)
  first.close()
  await waitFor('gone', () => server.stats().connections === 0)
  for (let i = 5; i < 8; i++) server.send(`e${i}`)
  const again = sseClient(`${url}/events`, { lastEventId: ids[4] })
  t.teardown(() => again.close())
  await waitFor('replay', () => again.events.length === 3)
  server.send('e8')
  await waitFor('live', () => again.events.length === 4)
  t.deepEqual(again.events.map((e) => e.data), ['e5', 'e6', 'e7', 'e8'])
})

test('the lastEventId query parameter works like the header (for polyfills)', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0 })
  for (let i = 0; i < 4; i++) server.send({ data: `e${i}`, id: `msg-${i}` })
  const c = sseClient(`${url}/events`, { query: '?lastEventId=msg-1' })
  t.teardown(() => c.close())
  await waitFor('replay', () => c.events.length === 2)
  t.deepEqual(c.events.map((e) => [e.id, e.data]), [['msg-2', 'e2'], ['msg-3', 'e3']])
})

test('an id older than the history, or unknown, is reported stale and nothing is replayed', async (t) => {
  const connections = []
  const requests = []
  const { server, url } = await start(t, {
    keepAlive: 0,
    history: 3,
    onConnect: (req) => {
      requests.push(req)
    },
    onConnection: (c) => connections.push(c),
  })
  const c = sseClient(`${url}/events`)
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('old')
  await waitFor('old', () => c.events.length === 1)
  const oldId = c.events[0].id
  c.close()
  // (While a subscriber still needs them, the log keeps more than `history`.)
  await waitFor('disconnect noticed', () => server.stats().connections === 0)
  for (let i = 0; i < 10; i++) server.send(`e${i}`)
  const stale = sseClient(`${url}/events`, { lastEventId: oldId })
  const unknown = sseClient(`${url}/events`, { lastEventId: 'never-sent' })
  t.teardown(() => [stale, unknown].forEach((x) => x.close()))
  await waitFor('two more', () => connections.length === 3)
  t.like(requests.find((r) => r.lastEventId === oldId), { lastEventIdStale: true })
  t.like(requests.find((r) => r.lastEventId === 'never-sent'), { lastEventIdStale: true })
  t.like(requests[0], { lastEventId: undefined, lastEventIdStale: false })
  t.true(connections.filter((x) => x.lastEventId).every((x) => x.lastEventIdStale))
  server.send('live')
  await waitFor('live only', () => stale.events.length === 1 && unknown.events.length === 1)
  t.is(stale.events[0].data, 'live')
  t.is(unknown.events[0].data, 'live')
  t.is(server.stats().channels.default.history, 3)
})

test('history: 0 sends no automatic ids and replays nothing', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, history: 0 })
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('stream', () => server.stats().connections === 1)
  server.send('x')
  await waitFor('event', () => c.events.length === 1)
  t.is(c.events[0].id, undefined)
})

test('the eventsource client resumes by itself after a server-side disconnect, losing nothing', async (t) => {
  let current
  const { server, url } = await start(t, { keepAlive: 0, retry: 50, onConnection: (c) => (current = c) })
  const es = new EventSource(`${url}/events`)
  t.teardown(() => es.close())
  const got = []
  es.onmessage = (e) => got.push(e.data)
  await waitFor('open', () => current && server.stats().connections === 1)
  const firstId = current.id
  for (let i = 0; i < 3; i++) server.send(`a${i}`)
  await waitFor('3', () => got.length === 3)
  server.disconnect(current.id)
  for (let i = 0; i < 3; i++) server.send(`b${i}`) // sent while the client is away
  await waitFor('reconnected', () => current.id !== firstId && server.stats().connections === 1)
  t.truthy(current.lastEventId)
  t.false(current.lastEventIdStale)
  server.send('c0')
  await waitFor('7', () => got.length === 7)
  t.deepEqual(got, ['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'c0'])
})

test('property: random sends racing random reconnects deliver every event of a client\'s channels exactly once, in order', async (t) => {
  t.timeout(90_000)
  const rand = random(20261126)
  const channels = ['a', 'b', 'c', 'd', 'e']
  const { server, url } = await start(t, { keepAlive: 0, history: 100_000, channelsFromQuery: true })
  const CLIENTS = 24
  const EVENTS = 6000
  const readers = Array.from({ length: CLIENTS }, () => {
    const mine = [...new Set(Array.from({ length: 1 + rand(3) }, () => channels[rand(channels.length)]))]
    return { mine, query: '?' + mine.map((c) => `channel=${c}`).join('&'), got: [], conn: null, lastEventId: undefined, reconnects: 0 }
  })
  const connect = (r) => {
    const c = sseClient(`${url}/events`, { query: r.query, lastEventId: r.lastEventId })
    // Collect across connections: the parser resets with every connection.
    const push = c.events.push.bind(c.events)
    c.events.push = (e) => {
      r.got.push(e.data)
      r.lastEventId = e.id
      return push(e)
    }
    r.conn = c
  }
  readers.forEach(connect)
  t.teardown(() => readers.forEach((r) => r.conn.close()))
  await waitFor('all streams', () => server.stats().connections === CLIENTS)
  // Every reader first gets one event, so it has an id to resume from (a
  // client that never saw an id has nothing to send in Last-Event-ID).
  server.send('ready', { channel: channels })
  await waitFor('every reader ready', () => readers.every((r) => r.got.length === 1))
  readers.forEach((r) => r.got.shift())

  let stop = false
  const churn = (async () => {
    while (!stop) {
      await new Promise((r) => setTimeout(r, 2 + rand(10)))
      const r = readers[rand(CLIENTS)]
      r.conn.close()
      r.reconnects++
      connect(r)
    }
  })()
  const sent = []
  for (let n = 0; n < EVENTS; n++) {
    const targets = [...new Set(Array.from({ length: 1 + rand(2) }, () => channels[rand(channels.length)]))]
    server.send(`e${n}`, { channel: targets })
    sent.push({ data: `e${n}`, targets })
    if (n % 10 === 0) await new Promise((r) => setTimeout(r, 1 + rand(3)))
  }
  stop = true
  await churn
  let reconnects = 0
  for (const r of readers) {
    const expected = sent.filter((e) => e.targets.some((c) => r.mine.includes(c))).map((e) => e.data)
    try {
      await waitFor(`reader of ${r.mine}`, () => r.got.length >= expected.length, 20_000)
    } catch (e) {
      const i = r.got.findIndex((d, k) => d !== expected[k])
      t.log(`reader ${r.mine}: got ${r.got.length}/${expected.length}, first difference at ${i}: got ${r.got[i]} expected ${expected[i]}; last id ${r.lastEventId}; stale? open=${r.conn.open} status=${r.conn.status} ended=${r.conn.ended}`)
      t.log(JSON.stringify(server.stats()))
      throw e
    }
    await new Promise((res) => setTimeout(res, 20))
    if (JSON.stringify(r.got) !== JSON.stringify(expected)) {
      t.deepEqual(r.got, expected, `reader of ${r.mine}`)
      return
    }
    reconnects += r.reconnects
  }
  t.log(`${EVENTS} events, ${CLIENTS} readers, ${reconnects} reconnects with Last-Event-ID, every event exactly once and in order`)
  t.true(reconnects > 50)
})

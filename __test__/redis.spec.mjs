// Several instances acting as one through Redis: every test runs two servers
// in this process against one real redis-server, each test under its own key
// prefix. Clients are eventsource-parser (through sseClient) and the
// eventsource package.
import test from 'ava'
import { EventSource } from 'eventsource'
import { createServer, launchChromium, random, sseClient, waitFor } from './helpers.mjs'
import { sharedRedis, ownRedis, uniquePrefix, freePort, redisCommand } from './redis-helpers.mjs'

let redis
const stops = []
test.before(async () => {
  redis = await sharedRedis((fn) => stops.push(fn))
})
test.after.always(async () => {
  for (const stop of stops) await stop()
})

/** One instance: a server on loopback with the backplane; closed after the test. */
async function instance(t, { prefix, url = redis.url, redis: extra, ...options }) {
  const errors = []
  const server = createServer({
    channelsFromQuery: true,
    onError: (e, where) => errors.push(`${where}: ${e.message}`),
    ...options,
    redis: { url, prefix, ...extra },
  })
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  return { server, port, url: `http://127.0.0.1:${port}/events`, errors }
}

const data = (client) => client.events.map((e) => e.data)
const ids = (client) => client.events.map((e) => e.id)
const channelQuery = (...channels) => '?' + channels.map((c) => `channel=${c}`).join('&')
const connected = (node, n) => waitFor(`${n} streams on :${node.port}`, () => node.server.stats().connections === n)

test('a send on either instance reaches the clients of both, in one order', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const clients = [sseClient(a.url), sseClient(a.url), sseClient(b.url), sseClient(b.url)]
  const es = new EventSource(b.url)
  const viaEventSource = []
  es.onmessage = (e) => viaEventSource.push({ data: e.data, id: e.lastEventId })
  t.teardown(() => {
    es.close()
    clients.forEach((c) => c.close())
  })
  await connected(a, 2)
  await connected(b, 3)

  const total = 200
  for (let i = 0; i < total; i++) (i % 2 ? a : b).server.send(`e${i}`)
  a.server.comment('a comment travels too')
  await Promise.all([a.server.flush(), b.server.flush()])
  await waitFor('every client to get every event', () =>
    clients.every((c) => c.events.length === total && c.comments.length === 1) && viaEventSource.length === total)

  const order = data(clients[0])
  for (const c of clients) {
    t.deepEqual(data(c), order, 'one order on every instance')
    t.deepEqual(ids(c), ids(clients[0]), 'the same ids on every instance')
    t.deepEqual(c.comments, ['a comment travels too'])
  }
  t.deepEqual(viaEventSource.map((e) => e.data), order)
  t.deepEqual(viaEventSource.map((e) => e.id), ids(clients[0]))
  t.deepEqual([...order].sort(), Array.from({ length: total }, (_, i) => `e${i}`).sort(), 'each event once')
  // Each sender's own events keep the order it sent them in.
  const fromA = order.filter((d) => Number(d.slice(1)) % 2 === 1)
  t.deepEqual(fromA, fromA.slice().sort((x, y) => x.slice(1) - y.slice(1)))
  // Ids are the stream entry ids: one epoch, strictly increasing numbers.
  const numbers = ids(clients[0]).map((id) => Number(id.split('-')[1]))
  t.true(numbers.every((n, i) => i === 0 || n > numbers[i - 1]))
  t.is(new Set(ids(clients[0]).map((id) => id.split('-')[0])).size, 1)
  t.like(a.server.stats().backplane, { state: 'connected', pending: 0, published: total / 2 + 1, received: total + 1 })
  t.deepEqual([...a.errors, ...b.errors], [])
})

for (const [name, warm] of [
  ['an instance that never read the channel (replay from Redis)', false],
  ['an instance that reads the channel already (replay from its own history)', true],
]) {
  test(`a client moving from A to B with Last-Event-ID gets exactly what it missed: ${name}`, async (t) => {
    const prefix = uniquePrefix()
    const a = await instance(t, { prefix })
    const seen = []
    const b = await instance(t, { prefix, onConnection: (c) => seen.push(c) })
    // The reference order: a client on A that stays connected throughout.
    const reference = sseClient(a.url + channelQuery('room'))
    const watcher = warm ? sseClient(b.url + channelQuery('room')) : undefined
    const first = sseClient(a.url + channelQuery('room'))
    t.teardown(() => {
      reference.close()
      watcher?.close()
    })
    await connected(a, 2)
    if (warm) await connected(b, 1)

    for (let i = 0; i < 20; i++) a.server.send(`m${i}`, { channel: 'room' })
    a.server.send('elsewhere', { channel: 'other' })
    await waitFor('the first 20', () => first.events.length === 20)
    first.close()
    await connected(a, 1)
    const last = first.lastEventId
    // Missed while away: sent on both instances.
    for (let i = 20; i < 30; i++) (i % 2 ? a : b).server.send(`m${i}`, { channel: 'room' })
    await Promise.all([a.server.flush(), b.server.flush()])
    if (warm) await waitFor('the watcher to have 30', () => watcher.events.length === 30)

    const moved = sseClient(b.url + channelQuery('room'), { lastEventId: last })
    t.teardown(() => moved.close())
    await waitFor('the replay', () => moved.events.length >= 10)
    for (let i = 30; i < 35; i++) a.server.send(`m${i}`, { channel: 'room' })
    await waitFor('live events after the replay', () => moved.events.length === 15 && reference.events.length === 35)
    await new Promise((r) => setTimeout(r, 100))

    // The two senders interleave in Redis's order, the same for everyone.
    t.deepEqual(data(moved), data(reference).slice(20))
    t.deepEqual(ids(moved), ids(reference).slice(20))
    t.deepEqual([...data(moved)].sort(), Array.from({ length: 15 }, (_, i) => `m${i + 20}`).sort())
    t.true(ids(moved).every((id) => Number(id.split('-')[1]) > Number(last.split('-')[1])))
    t.like(seen.at(-1), { lastEventId: last, lastEventIdStale: false })
    t.deepEqual([...a.errors, ...b.errors], [])
  })
}

test('channels stay isolated across instances; an event on two channels arrives once', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const subsets = [['red'], ['green'], ['blue'], ['red', 'green'], ['green', 'blue'], ['red', 'green', 'blue']]
  const clients = []
  for (const node of [a, b]) {
    for (const channels of subsets) clients.push({ channels, client: sseClient(node.url + channelQuery(...channels)) })
  }
  t.teardown(() => clients.forEach(({ client }) => client.close()))
  await connected(a, subsets.length)
  await connected(b, subsets.length)

  const targets = [['red'], ['green'], ['blue'], ['red', 'green'], ['green', 'blue'], ['red', 'blue'], ['nobody']]
  const sent = []
  for (let i = 0; i < 140; i++) {
    const channel = targets[i % targets.length]
    const data = `${i}:${channel.join('+')}`
    ;(i % 3 ? a : b).server.send(data, { channel })
    sent.push({ data, channel })
  }
  await Promise.all([a.server.flush(), b.server.flush()])
  const all = clients.at(-1).client // red+green+blue on B: sees everything except 'nobody'
  const expectedAll = sent.filter((s) => !s.channel.includes('nobody')).length
  await waitFor('the all-channel client', () => all.events.length === expectedAll)
  const order = data(all)
  const channelsOf = new Map(sent.map((s) => [s.data, s.channel]))
  for (const { channels, client } of clients) {
    const expected = order.filter((d) => channelsOf.get(d).some((c) => channels.includes(c)))
    await waitFor(`${channels} to get ${expected.length}`, () => client.events.length >= expected.length)
    await new Promise((r) => setTimeout(r, 20))
    t.deepEqual(data(client), expected, `client of ${channels.join('+')}`)
  }
})

test('an explicit id resumes on another instance', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  for (let i = 1; i <= 6; i++) a.server.send({ id: `order-${i}`, event: 'order', data: { n: i } })
  await a.server.flush()
  const moved = sseClient(b.url, { lastEventId: 'order-3' })
  t.teardown(() => moved.close())
  await waitFor('orders 4-6', () => moved.events.length === 3)
  t.deepEqual(ids(moved), ['order-4', 'order-5', 'order-6'])
  t.deepEqual(moved.events.map((e) => e.event), ['order', 'order', 'order'])
})

test('ids Redis trimmed, from another data set, or never issued are stale', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix, history: 3 })
  const seen = []
  const previews = []
  const b = await instance(t, {
    prefix,
    history: 3,
    onConnect: (c) => void previews.push(c),
    onConnection: (c) => seen.push(c),
  })
  const probe = sseClient(a.url)
  t.teardown(() => probe.close())
  await connected(a, 1)
  // Streams keep at least 10,000 entries (so that a reader behind in a burst
  // misses nothing), trimmed by whole nodes of 100: send well past that.
  const total = 10_400
  for (let i = 0; i < total; i++) a.server.send(`x${i}`)
  await a.server.flush()
  await waitFor(`all ${total}`, () => probe.events.length === total)
  const [epoch, firstNumber] = probe.events[0].id.split('-')
  const lastNumber = Number(probe.events.at(-1).id.split('-')[1])

  const cases = [
    ['trimmed', `${epoch}-${firstNumber}`, true],
    ['another data set', `1000-${firstNumber}`, true],
    ['never issued', `${epoch}-${lastNumber + 1000}`, true],
    ['unknown explicit id', 'no-such-id', true],
    ['recent', probe.events.at(-3).id, false],
  ]
  for (const [what, lastEventId, stale] of cases) {
    const c = sseClient(b.url, { lastEventId })
    await waitFor(`the ${what} client`, () => seen.some((s) => s.lastEventId === lastEventId))
    t.is(seen.find((s) => s.lastEventId === lastEventId).lastEventIdStale, stale, what)
    t.is(previews.find((s) => s.lastEventId === lastEventId).lastEventIdStale, stale, `${what} (onConnect)`)
    if (!stale) {
      await waitFor('its replay', () => c.events.length === 2)
      t.deepEqual(data(c), [`x${total - 2}`, `x${total - 1}`])
    }
    c.close()
  }
})

test('Redis killed and restarted mid-stream: clients stay connected and no accepted event is lost', async (t) => {
  const own = await ownRedis(t.teardown.bind(t))
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix, url: own.url })
  const b = await instance(t, { prefix, url: own.url })
  const clients = [sseClient(a.url), sseClient(b.url)]
  t.teardown(() => clients.forEach((c) => c.close()))
  await connected(a, 1)
  await connected(b, 1)

  const total = 300
  let states = new Set()
  for (let i = 0; i < total; i++) {
    if (i === 100) await own.kill()
    if (i === 100 || i === 150) {
      await waitFor('the outage to show', () => a.server.stats().backplane.state === 'reconnecting')
      states.add(a.server.stats().backplane.state)
    }
    if (i === 200) await own.start()
    ;(i % 2 ? a : b).server.send(`r${i}`)
    await new Promise((r) => setTimeout(r, 2))
  }
  await Promise.all([a.server.flush(), b.server.flush()])
  // On failure, say what is missing and what Redis holds.
  await waitFor('every event on both instances', () => clients.every((c) => c.events.length === total), 15000).catch(async (e) => {
    for (const c of clients) {
      const got = new Set(data(c))
      const missing = Array.from({ length: total }, (_, i) => `r${i}`).filter((d) => !got.has(d))
      t.log(`client: ${c.events.length} events, ended ${c.ended}, missing ${missing.slice(0, 20)} (${missing.length}), last ids ${ids(c).slice(-3)}`)
    }
    t.log(JSON.stringify([a.server.stats().backplane, b.server.stats().backplane, a.errors, b.errors]))
    t.log(`in Redis: counter ${await redisCommand(own.port, 'GET', `${prefix}:seq`)} stream length ${await redisCommand(own.port, 'XLEN', `${prefix}:ch:default`)}`)
    throw e
  })
  await new Promise((r) => setTimeout(r, 100))

  const order = data(clients[0])
  t.deepEqual(data(clients[1]), order)
  t.deepEqual([...order].sort(), Array.from({ length: total }, (_, i) => `r${i}`).sort())
  t.true(clients.every((c) => !c.ended), 'the same connections throughout')
  t.is(a.server.stats().totalConnections, 1)
  t.deepEqual([...states], ['reconnecting'])
  await waitFor('the backplane to be connected again', () =>
    a.server.stats().backplane.state === 'connected' && b.server.stats().backplane.state === 'connected')
  t.like(a.server.stats().backplane, { pending: 0, failed: 0, published: total / 2 })
  t.true(a.server.stats().backplane.reconnects >= 1)
  t.true(a.errors.some((e) => e.startsWith('redis: Redis backplane')), a.errors.join('\n'))
})

test('while Redis is away, sends wait up to maxPending, then send() throws and sends nothing', async (t) => {
  const own = await ownRedis(t.teardown.bind(t))
  const a = await instance(t, { prefix: uniquePrefix(), url: own.url, redis: { maxPending: 5 } })
  const client = sseClient(a.url)
  t.teardown(() => client.close())
  await connected(a, 1)
  await own.kill()
  await waitFor('the outage to show', () => a.server.stats().backplane.state === 'reconnecting')
  for (let i = 0; i < 5; i++) a.server.send(`p${i}`)
  const error = t.throws(() => a.server.send('one too many'))
  t.is(error.code, 'ERR_REDIS_UNAVAILABLE')
  t.regex(error.message, /send\(\): the Redis backplane is unavailable .*5 sends are already waiting \(redis\.maxPending\)/)
  t.is(a.server.stats().backplane.pending, 5)
  await own.start()
  await a.server.flush()
  await waitFor('the five', () => client.events.length === 5)
  t.deepEqual(data(client), ['p0', 'p1', 'p2', 'p3', 'p4'])
  t.is(a.server.stats().eventsSent, 5)
})

test('a bad Redis option is a clear error; an unreachable Redis fails listen()', async (t) => {
  const bad = [
    [{ url: 'http://127.0.0.1:6379' }, TypeError, /options\.redis\.url 'http:\/\/127\.0\.0\.1:6379' is not a Redis URL/],
    [{}, TypeError, /options\.redis\.url is required/],
    [{ url: 42 }, TypeError, /options\.redis\.url/],
    [{ url: redis.url, tls: {} }, TypeError, /options\.redis\.tls needs a rediss:\/\/ URL/],
    [{ url: redis.url, prefix: '' }, TypeError, /options\.redis\.prefix/],
    [{ url: redis.url, maxPending: 0 }, RangeError, /options\.redis\.maxPending/],
    [{ url: redis.url, hosts: [] }, TypeError, /hosts/],
    ['redis://x', TypeError, /options\.redis/],
  ]
  for (const [value, type, message] of bad) {
    t.throws(() => createServer({ redis: value }), { instanceOf: type, message }, JSON.stringify(value))
  }
  const port = await freePort()
  const server = createServer({ redis: { url: `redis://127.0.0.1:${port}` } })
  const error = await t.throwsAsync(server.listen(0, '127.0.0.1'))
  t.is(error.code, 'ERR_REDIS_UNAVAILABLE')
  t.regex(error.message, new RegExp(`cannot connect to Redis at redis://127\\.0\\.0\\.1:${port}`))
  t.is(server.port, null, 'nothing listens')
  await server.close()
})

test('sendTo stays on the instance that holds the client, in order with channel events', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const ids = []
  const onB = await instance(t, { prefix, onConnection: (c) => ids.push(c.id) })
  const client = sseClient(onB.url)
  t.teardown(() => client.close())
  await waitFor('the client', () => ids.length === 1)
  a.server.send('broadcast 1')
  await a.server.flush()
  await waitFor('broadcast 1', () => client.events.length === 1)
  t.true(onB.server.sendTo(ids[0], 'just for you'))
  t.false(b.server.sendTo(ids[0], 'not here'), 'client ids are per instance')
  a.server.send('broadcast 2')
  await a.server.flush()
  await waitFor('three events', () => client.events.length === 3)
  t.deepEqual(data(client), ['broadcast 1', 'just for you', 'broadcast 2'])
})

test('close() with Redis away reports the sends it could not store', async (t) => {
  const own = await ownRedis(t.teardown.bind(t))
  const errors = []
  const server = createServer({ redis: { url: own.url, prefix: uniquePrefix() }, onError: (e, where) => errors.push([where, e.message]) })
  await server.listen(0, '127.0.0.1')
  await own.kill()
  for (let i = 0; i < 3; i++) server.send(`lost ${i}`)
  const flushed = server.flush()
  await server.close()
  await t.throwsAsync(flushed, { message: /flush\(\): .*closed/ })
  t.true(errors.some(([where, message]) => where === 'redis' && /^3 accepted sends could not be stored in Redis before the server closed/.test(message)), JSON.stringify(errors))
  t.like(server.stats().backplane, { state: 'closed', pending: 0, failed: 3 })
  t.throws(() => server.send('after close'), { code: 'ERR_SERVER_CLOSED' })
})

test('the cluster example: EventSource and the seed page in Chromium on the relaying instance see the other one tick', async (t) => {
  const { spawn } = await import('node:child_process')
  const prefix = uniquePrefix()
  const children = []
  t.teardown(() => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')))
  const run = (port, send) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['examples/cluster/server.mjs'], {
        env: { ...process.env, PORT: String(port), REDIS_URL: redis.url, REDIS_PREFIX: prefix, INTERVAL_MS: '50', SEND: send ? '1' : '' },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      children.push(child)
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        const m = out.match(/listening on (http:\/\/\S+)\//)
        if (m) resolve({ child, url: m[1] })
      })
      child.on('exit', (code) => reject(new Error(`example exited (${code}): ${out}`)))
    })
  const relay = await run(await freePort(), false)
  await run(await freePort(), true)
  const es = new EventSource(`${relay.url}/sendMessage`)
  const seen = { message: 0, myEvent: 0 }
  es.onmessage = () => seen.message++
  es.addEventListener('myEvent', () => seen.myEvent++)
  t.teardown(() => es.close())
  await waitFor('ticks relayed through Redis', () => seen.message >= 3 && seen.myEvent >= 3, 10000)
  // The seed's own page in headless Chromium, served by the relaying instance.
  const browser = await launchChromium(t)
  if (!browser) return
  const page = await browser.newPage()
  await page.goto(`${relay.url}/`, { waitUntil: 'domcontentloaded', timeout: 15000 })
  await page.waitForFunction(
    () => document.querySelectorAll('#messages li').length >= 3 && document.querySelectorAll('#myEvents li').length >= 3,
    null,
    { timeout: 15000 },
  )
  t.is(await page.textContent('#status'), 'open')
  await browser.close()
  const exited = new Promise((r) => relay.child.once('exit', r))
  relay.child.kill('SIGTERM')
  t.is(await exited, 0, 'the example closes cleanly on SIGTERM')
})

test('property: readers hopping between instances with Last-Event-ID end with exactly their events, once, in order', async (t) => {
  t.timeout(60000)
  const seed = Number(process.env.SEED ?? Date.now() % 100000)
  t.log(`seed ${seed}`)
  const rnd = random(seed)
  const prefix = uniquePrefix()
  const stale = []
  const onConnection = (c) => c.lastEventIdStale && stale.push(c.lastEventId)
  const nodes = [await instance(t, { prefix, onConnection }), await instance(t, { prefix, onConnection })]
  const channels = ['c0', 'c1', 'c2', 'c3']
  const reference = sseClient(nodes[0].url + channelQuery(...channels))
  const readers = Array.from({ length: 12 }, (_, i) => {
    const mine = rnd(3) === 0 ? [channels[i % 4], channels[(i + 1) % 4]] : [channels[i % 4]]
    return { mine, events: [], client: undefined, hops: 0 }
  })
  const connect = (r, lastEventId) => {
    const node = nodes[rnd(2)]
    r.client = sseClient(node.url + channelQuery(...r.mine), { lastEventId })
  }
  const hop = (r) => {
    r.events.push(...r.client.events)
    const last = r.client.lastEventId
    r.client.close()
    r.hops++
    connect(r, last)
  }
  readers.forEach((r) => connect(r))
  t.teardown(() => {
    reference.close()
    readers.forEach((r) => r.client.close())
  })
  const streams = () => nodes[0].server.stats().connections + nodes[1].server.stats().connections
  await waitFor('every reader', () => streams() === 1 + readers.length)

  const total = 2000
  for (let i = 0; i < total; i++) {
    const to = rnd(4) === 0 ? [channels[rnd(4)], channels[rnd(4)]] : [channels[rnd(4)]]
    nodes[rnd(2)].server.send(`${i}:${[...new Set(to)].join('+')}`, { channel: to })
    if (i % 25 === 0) {
      // Let some of it through, then move a few readers to a random instance.
      await new Promise((r) => setTimeout(r, 2))
      for (let k = rnd(3); k > 0; k--) {
        const r = readers[rnd(readers.length)]
        // (Without an id yet a reconnect could only start live.)
        if (r.client.open && r.client.lastEventId !== undefined) hop(r)
      }
    }
  }
  await Promise.all(nodes.map((n) => n.server.flush()))
  await waitFor('the reference client', () => reference.events.length === total, 20000)
  const order = data(reference)
  const channelsOf = (d) => d.split(':')[1].split('+')
  for (const r of readers) {
    const expected = order.filter((d) => channelsOf(d).some((c) => r.mine.includes(c)))
    await waitFor(`a reader of ${r.mine} to have ${expected.length}`, () => r.events.length + r.client.events.length >= expected.length, 20000)
    await new Promise((res) => setTimeout(res, 20))
    const got = [...r.events, ...r.client.events].map((e) => e.data)
    t.deepEqual(got, expected, `reader of ${r.mine.join('+')} after ${r.hops} hops`)
  }
  const hops = readers.reduce((n, r) => n + r.hops, 0)
  t.log(`${hops} hops between instances`)
  t.true(hops >= 20)
  t.deepEqual(stale, [], 'no id was stale')
  t.deepEqual([...nodes[0].errors, ...nodes[1].errors], [])
})

test('sends stay exactly-once when Redis forgets the script in the middle of bursts from two instances', async (t) => {
  const own = await ownRedis(t.teardown.bind(t))
  const prefix = uniquePrefix()
  // (A budget the 6 MB of this test cannot exceed: eviction is not the point here.)
  const a = await instance(t, { prefix, url: own.url, maxBufferedBytes: 64 * 1024 * 1024 })
  const b = await instance(t, { prefix, url: own.url })
  const client = sseClient(a.url)
  t.teardown(() => client.close())
  await connected(a, 1)
  let total = 0
  // Large sends make a pipeline span many of Redis's reads, so the other
  // instance's SCRIPT LOAD can land in the middle of it.
  const pad = 'x'.repeat(2048)
  for (let round = 0; round < 10; round++) {
    // One instance's pipeline meets NOSCRIPT while the other loads the
    // script again: the sends after a refused one must not slip in first.
    t.is(await redisCommand(own.port, 'SCRIPT', 'FLUSH'), '+OK\r\n')
    for (let i = 0; i < 150; i++) {
      a.server.send(`a${round}-${i} ${pad}`)
      b.server.send(`b${round}-${i} ${pad}`)
      total += 2
    }
    await new Promise((r) => setTimeout(r, 5))
  }
  await Promise.all([a.server.flush(), b.server.flush()])
  await waitFor(`all ${total}`, () => client.events.length >= total, 15000)
  await new Promise((r) => setTimeout(r, 50))
  const got = data(client).map((d) => d.split(' ')[0])
  t.is(got.length, total)
  t.is(new Set(got).size, total, 'each once')
  for (const who of ['a', 'b']) {
    const mine = got.filter((d) => d.startsWith(who))
    const order = (d) => d.slice(1).split('-').map(Number)
    t.true(mine.every((d, i) => i === 0 || order(mine[i - 1])[0] < order(d)[0] || (order(mine[i - 1])[0] === order(d)[0] && order(mine[i - 1])[1] < order(d)[1])), `${who}'s sends in order`)
  }
  t.like(a.server.stats().backplane, { failed: 0, pending: 0, published: total / 2 })
})

test('after close() nothing of the backplane keeps the process alive', async (t) => {
  const { execFile } = await import('node:child_process')
  const script = `
    import { createServer } from ${JSON.stringify(new URL('../index.js', import.meta.url).pathname)}
    const s = createServer({ redis: { url: process.env.URL, prefix: process.env.PREFIX } })
    await s.listen(0, '127.0.0.1')
    s.send('x')
    await s.flush()
    await s.close()
  `
  const started = Date.now()
  const code = await new Promise((resolve) => {
    const child = execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, URL: redis.url, PREFIX: uniquePrefix() }, timeout: 15000 }, (err) => resolve(err ? err.code ?? err.signal : 0))
    child.stdin?.end()
  })
  t.is(code, 0)
  t.true(Date.now() - started < 10000, 'exited by itself, promptly')
})

test('close() twice, or before listen(), returns at once', async (t) => {
  const a = await instance(t, { prefix: uniquePrefix() })
  const client = sseClient(a.url)
  t.teardown(() => client.close())
  await connected(a, 1)
  await a.server.close()
  const started = Date.now()
  await a.server.close()
  const idle = createServer({ redis: { url: redis.url } })
  await idle.close()
  t.true(Date.now() - started < 1000, `${Date.now() - started} ms`)
  t.is(a.server.stats().backplane.state, 'closed')
  t.is(idle.stats().backplane.state, 'closed')
})

test('handle(): two never-listening instances inside Node servers act as one through Redis, with replay across them', async (t) => {
  const http = (await import('node:http')).default
  const prefix = uniquePrefix()
  const node = async () => {
    const sse = createServer({ redis: { url: redis.url, prefix } })
    t.teardown(() => sse.close())
    const server = http.createServer((req, res) => sse.handle(req, res, { channels: 'news' }))
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    t.teardown(() => new Promise((r) => { server.closeAllConnections(); server.close(r) }))
    return { sse, url: `http://127.0.0.1:${server.address().port}/events` }
  }
  const a = await node()
  const b = await node()
  const onB = sseClient(b.url)
  t.teardown(() => onB.close())
  await waitFor('the stream on b', () => b.sse.stats().connections === 1)
  for (let i = 0; i < 20; i++) a.sse.send(`n${i}`, { channel: 'news' })
  await a.sse.flush()
  await waitFor('every event on b', () => onB.events.length === 20)
  t.deepEqual(data(onB), Array.from({ length: 20 }, (_, i) => `n${i}`))
  // Resume on a from an id b handed out.
  const resumed = sseClient(a.url, { lastEventId: onB.events[9].id })
  t.teardown(() => resumed.close())
  await waitFor('the replay on a', () => resumed.events.length === 10)
  t.deepEqual(data(resumed), data(onB).slice(10))
})

test('a process that only sends (never listens nor handles) publishes through Redis, and exits after close()', async (t) => {
  const { execFile } = await import('node:child_process')
  const prefix = uniquePrefix()
  const a = await instance(t, { prefix })
  const client = sseClient(a.url)
  t.teardown(() => client.close())
  await connected(a, 1)
  // A worker: no listen(), no handle(), sends and flushes only.
  const script = `
    import { createServer } from ${JSON.stringify(new URL('../index.js', import.meta.url).pathname)}
    const s = createServer({ redis: { url: process.env.URL, prefix: process.env.PREFIX } })
    for (let i = 0; i < 5; i++) s.send('w' + i)
    await s.flush()
    s.send('last, without a flush of its own')
    await s.close()
  `
  const code = await new Promise((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, URL: redis.url, PREFIX: prefix }, timeout: 15000 }, (err) => resolve(err ? err.code ?? err.signal : 0))
  })
  t.is(code, 0, 'the worker exited by itself')
  await waitFor('the worker\'s events on a', () => client.events.length === 6)
  t.deepEqual(data(client), ['w0', 'w1', 'w2', 'w3', 'w4', 'last, without a flush of its own'])
})

test('a send before any start with Redis unreachable reports once, shows reconnecting, and is published when Redis comes', async (t) => {
  const own = await ownRedis((fn) => t.teardown(fn))
  const prefix = uniquePrefix()
  await own.kill()
  const errors = []
  const sender = createServer({ redis: { url: own.url, prefix }, onError: (e, where) => errors.push(`${where}: ${e.message}`) })
  t.teardown(() => sender.close())
  sender.send('waited for Redis')
  await waitFor('the first failure reported', () => errors.length === 1)
  t.regex(errors[0], /^redis: Redis backplane: cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+/)
  t.is(sender.stats().backplane.state, 'reconnecting')
  t.is(sender.stats().backplane.pending, 1)
  await own.restart()
  await sender.flush()
  t.is(sender.stats().backplane.state, 'connected')
  t.is(errors.length, 1, 'one report for the outage')
  t.is(sender.stats().backplane.published, 1, 'stored once')
  t.is(sender.stats().backplane.pending, 0)
})

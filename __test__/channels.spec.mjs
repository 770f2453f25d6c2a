// Channels: every client gets exactly the events of its channels, in order,
// and nothing else. Per-client sends and disconnects.
import test from 'ava'
import { random, start, sseClient, waitFor } from './helpers.mjs'

test('channel isolation: 12 channels, 60 clients with 1-3 channels each, 600 events', async (t) => {
  t.timeout(60_000)
  const channels = Array.from({ length: 12 }, (_, i) => `ch${i}`)
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  const rand = random(7)
  const clients = []
  for (let i = 0; i < 60; i++) {
    const mine = [...new Set(Array.from({ length: 1 + rand(3) }, () => channels[rand(channels.length)]))]
    const query = '?' + mine.map((c) => `channel=${c}`).join('&')
    clients.push({ mine, c: sseClient(`${url}/events`, { query }) })
  }
  t.teardown(() => clients.forEach(({ c }) => c.close()))
  await waitFor('60 streams', () => server.stats().connections === 60)
  const sent = []
  for (let n = 0; n < 600; n++) {
    const targets = [...new Set(Array.from({ length: 1 + rand(2) }, () => channels[rand(channels.length)]))]
    server.send({ data: `e${n}` }, { channel: targets.length === 1 ? targets[0] : targets })
    sent.push({ data: `e${n}`, targets })
  }
  for (const { mine, c } of clients) {
    const expected = sent.filter((e) => e.targets.some((ch) => mine.includes(ch))).map((e) => e.data)
    await waitFor(`client of ${mine} to get ${expected.length} events`, () => c.events.length >= expected.length)
    await new Promise((r) => setTimeout(r, 20))
    t.deepEqual(
      c.events.map((e) => e.data),
      expected,
      `client reading ${mine}`,
    )
  }
  const stats = server.stats()
  const used = new Set(sent.flatMap((e) => e.targets))
  for (const ch of used) t.true(stats.channels[ch].history > 0, ch)
  for (const ch of channels) {
    const readers = clients.filter(({ mine }) => mine.includes(ch)).length
    t.is(stats.channels[ch]?.subscribers ?? 0, readers, ch)
  }
})

test('without a channel option events go to the default channel only', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, channelsFromQuery: true })
  const plain = sseClient(`${url}/events`)
  const news = sseClient(`${url}/events`, { query: '?channel=news' })
  const both = sseClient(`${url}/events`, { query: '?channel=news&channel=default' })
  t.teardown(() => [plain, news, both].forEach((c) => c.close()))
  await waitFor('3 streams', () => server.stats().connections === 3)
  server.send('to everyone on default')
  server.send('news only', { channel: 'news' })
  server.send('to both lists', { channel: ['news', 'default'] })
  server.comment('a comment for news', { channel: 'news' })
  await waitFor('deliveries', () => both.events.length === 3 && plain.events.length === 2 && news.events.length === 2)
  t.deepEqual(plain.events.map((e) => e.data), ['to everyone on default', 'to both lists'])
  t.deepEqual(news.events.map((e) => e.data), ['news only', 'to both lists'])
  t.deepEqual(both.events.map((e) => e.data), ['to everyone on default', 'news only', 'to both lists'])
  await waitFor('comment', () => news.comments.length === 1)
  t.is(plain.comments.length, 0)
  t.deepEqual(server.stats().channels.news, { subscribers: 2, history: 3 })
})

test('send options are validated', async (t) => {
  const { server } = await start(t)
  t.throws(() => server.send('x', { channel: 5 }), { instanceOf: TypeError, message: /send\(\): options\.channel must be a string/ })
  t.throws(() => server.send('x', { channel: '' }), { instanceOf: TypeError, message: /must not be empty/ })
  t.throws(() => server.send('x', { channel: [] }), { instanceOf: TypeError, message: /must not be an empty array/ })
  t.throws(() => server.send('x', { chanel: 'a' }), { instanceOf: TypeError, message: /unknown field 'chanel'/ })
  t.throws(() => server.send('x', 'a'), { instanceOf: TypeError, message: /options must be an object/ })
  t.throws(() => server.comment('x', { channel: [1] }), { instanceOf: TypeError, message: /comment\(\): options\.channel\[0\]/ })
  t.is(server.stats().eventsSent, 0)
})

test('sendTo reaches one client, in order with its channel events; unknown ids return false', async (t) => {
  const seen = []
  const { server, url } = await start(t, { keepAlive: 0, onConnection: (c) => seen.push(c) })
  const a = sseClient(`${url}/events`)
  const b = sseClient(`${url}/events`)
  t.teardown(() => [a, b].forEach((c) => c.close()))
  await waitFor('2 clients', () => seen.length === 2 && server.stats().connections === 2)
  t.regex(seen[0].id, /^\d+$/)
  server.send('one')
  const target = seen.find((c) => c.remotePort === a.req.socket.localPort)
  t.truthy(target, 'onConnection reported the client by its port')
  t.true(server.sendTo(target.id, { event: 'private', data: 'only for a' }))
  server.send('three')
  await waitFor('a gets 3', () => a.events.length === 3)
  await waitFor('b gets 2', () => b.events.length === 2)
  t.deepEqual(a.events.map((e) => e.data), ['one', 'only for a', 'three'])
  t.is(a.events[1].event, 'private')
  t.deepEqual(b.events.map((e) => e.data), ['one', 'three'])
  t.false(server.sendTo('999999', 'nobody'))
  t.throws(() => server.sendTo('abc', 'x'), { instanceOf: TypeError, message: /clientId must be a client id/ })
  t.throws(() => server.sendTo(5, 'x'), { instanceOf: TypeError, message: /clientId must be a string/ })
  t.throws(() => server.sendTo(target.id, { data: 'x', id: 'a\nb' }), { instanceOf: TypeError, message: /sendTo\(\): event\.id/ })
})

test('disconnect(id) ends that stream cleanly and reports it', async (t) => {
  const ends = []
  let client
  const { server, url } = await start(t, {
    keepAlive: 0,
    onConnection: (c) => (client = c),
    onDisconnect: (c, reason) => ends.push([c.id, reason]),
  })
  const a = sseClient(`${url}/events`)
  t.teardown(() => a.close())
  await waitFor('client', () => client && server.stats().connections === 1)
  server.send('before')
  t.true(server.disconnect(client.id))
  await waitFor('stream end', () => a.ended)
  t.deepEqual(a.events.map((e) => e.data), ['before'])
  await waitFor('onDisconnect', () => ends.length === 1)
  t.deepEqual(ends[0], [client.id, 'disconnected'])
  t.false(server.disconnect(client.id))
  t.false(server.sendTo(client.id, 'gone'))
  await waitFor('no streams', () => server.stats().connections === 0)
})

// Real clients that nobody here wrote: the `eventsource` package (the
// browser EventSource API for Node) and `eventsource-parser` over Node's http.
import test from 'ava'
import http from 'node:http'
import { EventSource } from 'eventsource'
import { createParser } from 'eventsource-parser'
import { start, waitFor } from './helpers.mjs'

test('the eventsource client sees onopen, then unnamed events on onmessage and named ones on their listener', async (t) => {
  const { server, url } = await start(t, { path: '/sendMessage', keepAlive: 0 })
  const es = new EventSource(`${url}/sendMessage`)
  t.teardown(() => es.close())
  const log = []
  es.onopen = () => log.push('open')
  es.onmessage = (e) => log.push(`message:${e.data}`)
  es.onerror = () => log.push('error')
  es.addEventListener('myEvent', (e) => log.push(`myEvent:${e.data}:${e.lastEventId}`))
  await waitFor('onopen', () => log.includes('open'))
  t.deepEqual(log, ['open'], 'onopen fires before any event is sent')
  server.send('12:00:00')
  server.comment("'这是注释！'")
  server.send({ event: 'myEvent', data: '2026/11/26 12:00:00', id: '42' })
  server.send({ data: 'multi\nline' })
  await waitFor('3 events', () => log.length === 4)
  t.deepEqual(log, ['open', 'message:12:00:00', 'myEvent:2026/11/26 12:00:00:42', 'message:multi\nline'])
})

test('the eventsource client takes lastEventId from id, and an explicit empty id resets it', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0 })
  const seen = []
  const es = new EventSource(`${url}/events`)
  t.teardown(() => es.close())
  let opens = 0
  es.onopen = () => opens++
  es.onmessage = (e) => seen.push([e.data, e.lastEventId])
  await waitFor('open', () => opens === 1 && server.stats().connections === 1)
  server.send({ data: 'a', id: 'id-1' })
  await waitFor('first event', () => seen.length === 1)
  t.deepEqual(seen[0], ['a', 'id-1'])
  // Reset the id with an explicit empty id, as the spec allows.
  server.send({ data: 'b', id: '' })
  await waitFor('second event', () => seen.length === 2)
  t.deepEqual(seen[1], ['b', ''])
})

/** Reads a stream with Node's http client and parses it with eventsource-parser. */
function parsedStream(url) {
  const events = []
  let response
  const req = http.get(url, { headers: { accept: 'text/event-stream' } }, (res) => {
    response = res
    res.setEncoding('utf8')
    const parser = createParser({ onEvent: (e) => events.push(e), onComment: (c) => events.push({ comment: c }) })
    res.on('data', (chunk) => parser.feed(chunk))
  })
  req.on('error', () => {})
  return { events, req, response: () => response }
}

test('eventsource-parser reads back every payload exactly as sent', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0 })
  const s = parsedStream(`${url}/events`)
  t.teardown(() => s.req.destroy())
  await waitFor('stream', () => server.stats().connections === 1 && s.response())
  t.is(s.response().headers['content-type'], 'text/event-stream')
  const payloads = [
    'plain',
    ' leading space',
    '  two spaces',
    'trailing space ',
    'a\nb',
    'a\r\nb',
    'a\rb',
    'ends with newline\n',
    '\n\nstarts with two',
    '',
    'data: looks like a field',
    ':looks like a comment',
    'id: fake',
    '这是注释！ émoji 🎉',
    'x'.repeat(100_000),
  ]
  for (const p of payloads) server.send(p)
  server.send({ event: 'custom', id: 'i-1', data: { nested: { ok: true } } })
  server.comment('a comment')
  server.send('done')
  await waitFor('all events', () => s.events.length === payloads.length + 3)
  const normalise = (p) => p.replace(/\r\n|\r/g, '\n')
  t.deepEqual(
    s.events.slice(0, payloads.length).map((e) => e.data),
    payloads.map(normalise),
  )
  t.like(s.events[payloads.length], { event: 'custom', id: 'i-1', data: '{"nested":{"ok":true}}' })
  t.deepEqual(s.events[payloads.length + 1], { comment: 'a comment' })
  t.is(s.events[payloads.length + 2].data, 'done')
})

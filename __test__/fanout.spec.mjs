// Fan-out: one send() reaches every client, completely and in order. The
// clients are Node's http client + eventsource-parser, 1000 of them.
import test from 'ava'
import http from 'node:http'
import { createParser } from 'eventsource-parser'
import { start, waitFor } from './helpers.mjs'

const CLIENTS = 1000
const EVENTS = 200

test(`${EVENTS} events reach ${CLIENTS} clients, complete and in order`, async (t) => {
  t.timeout(60_000)
  const { server, port } = await start(t, { keepAlive: 0 })
  const received = Array.from({ length: CLIENTS }, () => [])
  const requests = []
  let doneClients = 0
  let lastDelivery = 0
  for (let i = 0; i < CLIENTS; i++) {
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
      res.setEncoding('utf8')
      const parser = createParser({
        onEvent: (e) => {
          received[i].push(e)
          if (received[i].length === EVENTS) {
            doneClients++
            lastDelivery = performance.now()
          }
        },
      })
      res.on('data', (chunk) => parser.feed(chunk))
    })
    req.on('error', (e) => t.fail(`client ${i}: ${e.message}`))
    requests.push(req)
  }
  t.teardown(() => requests.forEach((r) => r.destroy()))
  await waitFor(`${CLIENTS} streams`, () => server.stats().connections === CLIENTS, 30_000)

  const payload = 'x'.repeat(100)
  const sendStart = performance.now()
  for (let n = 0; n < EVENTS; n++) server.send({ id: String(n), event: n % 2 ? 'odd' : 'even', data: `${n} ${payload}` })
  const sendMs = performance.now() - sendStart
  await waitFor('every client to get every event', () => doneClients === CLIENTS, 30_000)
  const totalMs = lastDelivery - sendStart
  t.log(`send(): ${EVENTS} calls in ${sendMs.toFixed(2)} ms (${((sendMs / EVENTS) * 1000).toFixed(1)} µs/call) with ${CLIENTS} clients`)
  t.log(`${CLIENTS * EVENTS} deliveries complete in ${totalMs.toFixed(0)} ms (${Math.round((CLIENTS * EVENTS) / (totalMs / 1000))} deliveries/s)`)

  for (let i = 0; i < CLIENTS; i++) {
    const events = received[i]
    if (events.length !== EVENTS) t.fail(`client ${i} got ${events.length} events`)
    for (let n = 0; n < EVENTS; n++) {
      const e = events[n]
      if (e.id !== String(n) || e.data !== `${n} ${payload}` || e.event !== (n % 2 ? 'odd' : 'even')) {
        t.fail(`client ${i}, event ${n}: ${JSON.stringify(e)}`)
        return
      }
    }
  }
  const stats = server.stats()
  t.is(stats.eventsSent, EVENTS)
  t.is(stats.deliveries, CLIENTS * EVENTS)
  t.is(stats.evicted, 0)
  t.pass()
})

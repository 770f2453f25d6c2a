// Slow clients: a client that stops reading is disconnected once it is over
// its byte budget, memory stays bounded, fast clients get everything, and the
// evicted client resumes from history with nothing lost.
import test from 'ava'
import net from 'node:net'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sseClient, waitFor } from './helpers.mjs'

const SERVER = fileURLToPath(new URL('./fixtures/burst-server.mjs', import.meta.url))

/** Starts the burst server in a child process; `ask(cmd)` resolves with its reply. */
async function burstServer(t, options) {
  const child = fork(SERVER, [], { env: { ...process.env, SERVER_OPTIONS: JSON.stringify(options) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  t.teardown(() => child.kill('SIGKILL'))
  const waiting = []
  child.on('message', (m) => waiting.shift()?.(m))
  const next = () => new Promise((resolve) => waiting.push(resolve))
  const ready = await next()
  return {
    port: ready.port,
    url: `http://127.0.0.1:${ready.port}`,
    ask: (msg) => {
      const reply = next()
      child.send(msg)
      return reply
    },
  }
}

/** A client that reads the head and then never reads again: its socket fills up. */
function stalledClient(port, lastEventId) {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let text = ''
  let stalled = false
  socket.on('data', (d) => {
    if (stalled) return
    text += d.toString('latin1')
    if (text.includes('\r\n\r\n')) {
      stalled = true
      socket.pause()
    }
  })
  socket.on('error', () => {})
  const state = { socket, closed: false, text: () => text }
  socket.on('close', () => (state.closed = true))
  socket.write(`GET /events HTTP/1.1\r\nHost: x\r\n${lastEventId ? `Last-Event-ID: ${lastEventId}\r\n` : ''}\r\n`)
  return state
}

test('stalled clients are evicted under a large burst while RSS stays bounded and fast clients get everything', async (t) => {
  t.timeout(120_000)
  const STALLED = 20
  const FAST = 2
  const COUNT = 6000
  const SIZE = 4 * 1024 // 24 MiB in all, far more than a budget
  const { port, url, ask } = await burstServer(t, { keepAlive: 0, history: 50, maxBufferedBytes: 1 << 20 })
  const stalled = Array.from({ length: STALLED }, () => stalledClient(port))
  const fast = Array.from({ length: FAST }, () => sseClient(`${url}/events`))
  t.teardown(() => {
    stalled.forEach((s) => s.socket.destroy())
    fast.forEach((c) => c.close())
  })
  await waitFor('all streams', async () => (await ask({ cmd: 'report' })).stats.connections === STALLED + FAST)
  const before = await ask({ cmd: 'report' })
  const burst = await ask({ cmd: 'burst', count: COUNT, size: SIZE, pace: 10 })
  await waitFor('fast clients complete', () => fast.every((c) => c.events.length === COUNT), 60_000)
  await waitFor('stalled clients evicted', async () => (await ask({ cmd: 'report' })).stats.evicted === STALLED, 20_000)
  const after = await ask({ cmd: 'report' })
  const grown = Math.max(burst.rss, after.rss) - before.rss
  t.log(`${STALLED} stalled + ${FAST} fast clients, burst ${COUNT} × ${SIZE} B = ${(COUNT * SIZE) / 2 ** 20} MiB: server RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB before, +${(grown / 2 ** 20).toFixed(1)} MiB at most`)
  t.true(grown < 48 * 2 ** 20, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`)
  for (const c of fast) {
    t.is(c.events.length, COUNT)
    t.true(c.events.every((e, i) => e.data.startsWith(`${i} `)), 'in order')
  }
  t.is(after.stats.connections, FAST)
  t.is(after.stats.evicted, STALLED, 'only the stalled clients were evicted')
  t.is(after.ends.filter((r) => r === 'slow').length, STALLED)
  stalled.forEach((s) => s.socket.resume()) // drain the kernel's buffers to see the close
  await waitFor('sockets closed', () => stalled.every((s) => s.closed), 20_000)
})

test('an evicted client resumes from history with zero loss', async (t) => {
  t.timeout(120_000)
  const COUNT = 3000
  const SIZE = 4 * 1024
  const { port, url, ask } = await burstServer(t, { keepAlive: 0, history: 10_000, maxBufferedBytes: 256 * 1024 })
  // The slow client reads a few events, then stops reading.
  const first = await ask({ cmd: 'burst', count: 0, size: 0 })
  t.is(first.stats.connections, 0)
  const socket = net.connect(port, '127.0.0.1')
  let text = ''
  let lastId
  socket.on('data', (d) => {
    if (lastId) return // what arrives after it stopped "processing" is ignored
    text += d.toString('latin1')
    const ids = [...text.matchAll(/\nid: ([^\n]+)\ndata: (\d+) /g)]
    if (ids.length >= 5) {
      lastId = ids[4][1]
      socket.pause()
    }
  })
  socket.on('error', () => {})
  let closed = false
  socket.on('close', () => (closed = true))
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor('stream', async () => (await ask({ cmd: 'report' })).stats.connections === 1)
  await ask({ cmd: 'burst', count: COUNT, size: SIZE })
  await waitFor('evicted', async () => (await ask({ cmd: 'report' })).stats.evicted === 1, 20_000)
  socket.resume() // drain what the kernel still holds, to see the server's close
  await waitFor('socket closed by the server', () => closed, 10_000)
  t.truthy(lastId, `the slow client had read some events: ${text.length} bytes: ${JSON.stringify(text.slice(0, 400))}`)
  // It comes back with the last id it actually processed.
  const again = sseClient(`${url}/events`, { lastEventId: lastId })
  t.teardown(() => again.close())
  await waitFor('replay', () => again.events.length === COUNT - 5, 30_000)
  t.true(again.events.every((e, i) => e.data.startsWith(`${i + 5} `)), 'exactly the missed events, in order')
  const report = await ask({ cmd: 'report' })
  t.deepEqual(report.ends, ['slow'])
})

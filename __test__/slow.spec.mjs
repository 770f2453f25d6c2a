// Slow clients: a client that stops reading is disconnected once it is over
// its byte budget, memory stays bounded, fast clients get everything, and the
// evicted client resumes from history with nothing lost.
import test from 'ava'
import net from 'node:net'
import { fork, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sseClient, start, waitFor } from './helpers.mjs'

const SERVER = fileURLToPath(new URL('./fixtures/burst-server.mjs', import.meta.url))

/**
 * Starts the burst server in a child process; `ask(cmd)` resolves with its
 * reply. With `cpu`, the server is pinned to that one CPU (`taskset`), as
 * the benchmark runs it: a synchronous send loop then holds the CPU its
 * engine threads need, and the clients fall behind by the whole burst.
 */
async function burstServer(t, options, { cpu } = {}) {
  const env = { ...process.env, SERVER_OPTIONS: JSON.stringify(options) }
  const stdio = ['ignore', 'inherit', 'inherit', 'ipc']
  const child = cpu === undefined
    ? fork(SERVER, [], { env, stdio })
    : spawn('taskset', ['-c', String(cpu), process.execPath, SERVER], { env, stdio })
  t.teardown(() => child.kill('SIGKILL'))
  // Replies are matched to questions by id: a report asked for while a
  // burst runs comes back before the burst's own reply.
  const waiting = new Map()
  let asked = 0
  child.on('message', (m) => {
    const key = m.reply === 'ready' ? 'ready' : m.id
    waiting.get(key)?.(m)
    waiting.delete(key)
  })
  const reply = (key) => new Promise((resolve) => waiting.set(key, resolve))
  const ready = await reply('ready')
  return {
    port: ready.port,
    url: `http://127.0.0.1:${ready.port}`,
    ask: (msg) => {
      const id = ++asked
      const answer = reply(id)
      child.send({ ...msg, id })
      return answer
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

test('at the defaults, stalled clients are evicted under a large burst while RSS stays bounded and fast clients get everything', async (t) => {
  t.timeout(120_000)
  const STALLED = 20
  const FAST = 2
  const COUNT = 12_000
  const SIZE = 4 * 1024 // 47 MiB in all, far more than the default budget (16 MiB)
  const { port, ask } = await burstServer(t, { keepAlive: 0, history: 50 })
  const stalled = Array.from({ length: STALLED }, () => stalledClient(port))
  const fast = Array.from({ length: FAST }, () => countingClient(port))
  t.teardown(() => {
    stalled.forEach((s) => s.socket.destroy())
    fast.forEach((c) => c.socket.destroy())
  })
  await waitFor('all streams', async () => (await ask({ cmd: 'report' })).stats.connections === STALLED + FAST)
  const before = await ask({ cmd: 'report' })
  // About 5 MB/s: a pace any reader keeps up with on a busy machine, while
  // the stalled ones fall 16 MiB behind within seconds.
  const burst = await ask({ cmd: 'burst', count: COUNT, size: SIZE, pace: 40 })
  const settled = () => fast.every((c) => c.events === COUNT || c.closed)
  await waitFor('fast clients complete', settled, 60_000)
  const dropped = fast.filter((c) => c.events < COUNT)
  if (dropped.length) t.fail(`a fast client was dropped after ${dropped.map((c) => c.events)} events: ${JSON.stringify((await ask({ cmd: 'report' })).stats)}`)
  await waitFor('stalled clients evicted', async () => (await ask({ cmd: 'report' })).stats.evicted === STALLED, 20_000)
  const after = await ask({ cmd: 'report' })
  const grown = Math.max(burst.rss, after.rss) - before.rss
  t.log(`${STALLED} stalled + ${FAST} fast clients, burst ${COUNT} × ${SIZE} B = ${(COUNT * SIZE) / 2 ** 20} MiB: server RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB before, +${(grown / 2 ** 20).toFixed(1)} MiB at most`)
  t.true(grown < 48 * 2 ** 20, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`)
  for (const c of fast) {
    t.is(c.events, COUNT)
    t.true(c.inOrder, 'in order')
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

/**
 * A client that reads everything as fast as it can and keeps nothing but a
 * count: each event ends with one blank line ("\n\n"; chunk framing never
 * adds one) and its data starts with its number, which must be the next one.
 * Cheap enough per event to keep up with a burst on a busy machine.
 */
function countingClient(port) {
  const socket = net.connect(port, '127.0.0.1')
  const state = { socket, events: 0, inOrder: true, closed: false, head: false }
  let tail = ''
  socket.on('data', (d) => {
    const text = tail + d.toString('latin1')
    let from = 0
    if (!state.head) {
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return void (tail = text)
      state.head = true
      from = end + 4
    }
    for (let at = text.indexOf('\n\n', from); at >= 0; at = text.indexOf('\n\n', at + 2)) {
      const data = text.indexOf('data: ', from)
      if (data < 0 || data > at || parseInt(text.slice(data + 6, data + 16), 10) !== state.events) state.inOrder = false
      state.events++
      from = at + 2
    }
    tail = text.slice(from)
  })
  socket.on('error', () => {})
  socket.on('close', () => (state.closed = true))
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n')
  return state
}

test('at the defaults, clients reading as fast as they can get every event of a 50,000-event burst', async (t) => {
  t.timeout(120_000)
  const CLIENTS = 100
  const COUNT = 50_000
  const { port, ask } = await burstServer(t, {}, { cpu: 0 })
  const clients = Array.from({ length: CLIENTS }, () => countingClient(port))
  t.teardown(() => clients.forEach((c) => c.socket.destroy()))
  await waitFor('all streams', async () => (await ask({ cmd: 'report' })).stats.connections === CLIENTS)
  // One synchronous loop, as the benchmark's burst: the clients fall behind
  // by megabytes while it runs, and that alone must not evict them.
  const burst = await ask({ cmd: 'burst', count: COUNT, size: 64, every: 0 })
  t.is(burst.stats.eventsSent, COUNT)
  await waitFor('every client complete', () => clients.every((c) => c.events === COUNT), 60_000)
  const report = await ask({ cmd: 'report' })
  t.is(report.stats.evicted, 0)
  t.deepEqual(report.ends, [])
  t.true(clients.every((c) => c.inOrder), 'every client got them in order')
})

test('a client that stops reading is dropped as slow after stallTimeout, even when the channel goes quiet', async (t) => {
  t.timeout(60_000)
  // A budget no burst here reaches: only the stall rule can drop it.
  const { port, ask } = await burstServer(t, { keepAlive: 0, history: 10, maxBufferedBytes: 1 << 30, stallTimeout: 1000 })
  const c = stalledClient(port)
  t.teardown(() => c.socket.destroy())
  await waitFor('stream', async () => (await ask({ cmd: 'report' })).stats.connections === 1)
  const started = Date.now()
  // 24 MiB at once, then nothing: more than the socket buffers take.
  await ask({ cmd: 'burst', count: 6000, size: 4096, every: 0 })
  await waitFor('dropped', async () => (await ask({ cmd: 'report' })).stats.evicted === 1, 20_000)
  const after = Date.now() - started
  t.true(after >= 1000, `dropped after ${after} ms`)
  const report = await ask({ cmd: 'report' })
  t.deepEqual(report.ends, ['slow'])
  t.is(report.stats.channels.default.history, 10, 'the log it held shrinks to the history at once')
  c.socket.resume()
  await waitFor('socket closed by the server', () => c.closed, 20_000)
})

test('sendTo to a client whose private queue would pass maxBufferedBytes returns false and drops it as slow', async (t) => {
  const ends = []
  let id
  const { server, port } = await start(t, {
    keepAlive: 0,
    maxBufferedBytes: 256 * 1024,
    onConnection: (c) => (id = c.id),
    onDisconnect: (c, reason) => ends.push(reason),
  })
  const c = stalledClient(port)
  t.teardown(() => c.socket.destroy())
  await waitFor('stream', () => id !== undefined)
  const chunk = 'y'.repeat(16 * 1024)
  let accepted = 0
  // The engine writes to the socket meanwhile, until the kernel's buffers
  // are full; what it has not taken stays queued, and that is bounded.
  while (accepted < 10_000 && server.sendTo(id, chunk)) accepted++
  t.true(accepted < 10_000, 'sendTo refuses once the queue is full')
  t.false(server.sendTo(id, 'x'), 'and nothing more')
  // Each event is the chunk plus at most 64 bytes of fields; bytesSent is what
  // left the queue for the connection.
  const queued = accepted * (chunk.length + 64) - server.stats().bytesSent
  t.true(queued <= 256 * 1024, `${queued} bytes were still queued (${accepted} accepted)`)
  await waitFor('dropped', () => ends.length === 1)
  t.deepEqual(ends, ['slow'])
  t.is(server.stats().evicted, 1)
})

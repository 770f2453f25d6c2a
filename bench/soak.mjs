// `npm run soak`: a bounded soak of hyper-sse at its defaults, on loopback.
//
// The server is `createServer()` with no options, in a child process of its
// own (this file with `--server`, driven over the IPC channel), so its RSS
// and open files can be read from /proc. The clients are the Rust load
// generator (bench/loadgen, built here if needed) and a few Node clients:
//
//   1. 100,000 stream connect/disconnect cycles (four ways of leaving, source
//      addresses spread over 127.0.x.y) while the server sends 200 events/s
//      and one healthy client reads them all;
//   2. 1,000 stalled clients (connect, read the head, never read again) held
//      for 60 s while the server sends 10,000 events/s and 4 healthy clients
//      read everything;
//   3. cleanup: every client gone, the server back to where it started;
//   4. phases 2 and 3 once more: the RSS after the second cleanup against
//      the first is the drift (what the allocator keeps after the first
//      round is reused, so memory that is really lost shows up as growth).
//
// At each phase boundary it prints the server's RSS, open fds, stats(); then
// a PASS/FAIL line per check, and exits 1 when any fails (an fd leak after
// cleanup, a healthy client missing or reordering events, the server dying).
// About 2.5 minutes here. `--quick` runs 10,000 cycles and a 15 s stall;
// `--stalled=N` holds N stalled clients instead of 1,000 (for comparison).

import { execFileSync, fork, spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const self = fileURLToPath(import.meta.url)
const root = path.dirname(path.dirname(self))

/** The server role: hyper-sse at its defaults, sending on request. */
async function serve() {
  const { createServer } = await import(path.join(root, 'index.js'))
  const server = createServer()
  const { port } = await server.listen(0, '127.0.0.1')
  let seq = 0
  let timer = null
  // A steady rate: every millisecond, send what the clock says is due. Each
  // event's data starts with its sequence number, for the healthy clients.
  const pad = 'x'.repeat(64)
  const startRate = (perSecond) => {
    clearInterval(timer)
    const t0 = performance.now()
    const base = seq
    timer = setInterval(() => {
      const due = base + Math.floor(((performance.now() - t0) * perSecond) / 1000)
      while (seq < due) server.send(`${++seq} ${pad}`)
    }, 1)
  }
  process.on('message', async (msg) => {
    switch (msg.cmd) {
      case 'rate':
        if (msg.perSecond > 0) startRate(msg.perSecond)
        else clearInterval(timer)
        process.send({ reply: msg.id, seq })
        break
      case 'stats':
        process.send({ reply: msg.id, stats: server.stats(), heap: process.memoryUsage().heapTotal })
        break
      case 'close':
        clearInterval(timer)
        await server.close()
        process.send({ reply: msg.id, seq })
        process.disconnect()
        break
    }
  })
  process.send({ listening: port })
}

async function soak(quick, stalledArg) {
  const cycles = quick ? 10_000 : 100_000
  const stalled = stalledArg ?? 1000
  const holdS = quick ? 15 : 60
  const stallRate = 10_000
  const healthyCount = 4
  const results = []
  const check = (name, ok, detail) => {
    results.push({ name, ok })
    console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ` (${detail})` : ''}`)
  }

  const loadgen = buildLoadgen()
  const server = await startServer()
  const { pid } = server.child
  let died = null
  server.child.on('exit', (code, signal) => {
    died = { code, signal }
  })
  const alive = () => died === null
  const report = async (label) => {
    const stats = alive() ? await server.ask({ cmd: 'stats' }) : null
    const s = stats?.stats
    const line = alive()
      ? `rss ${(rss(pid) / 1048576).toFixed(1)} MiB (JS heap ${(stats.heap / 1048576).toFixed(1)} MiB), fds ${fds(pid)}, connections ${s.connections}, ` +
        `totalConnections ${s.totalConnections}, evicted ${s.evicted}, eventsSent ${s.eventsSent}, ` +
        `deliveries ${s.deliveries}, bytesSent ${s.bytesSent}, denied ${s.denied}, ` +
        `history ${s.channels?.default?.history ?? 0}`
      : `server is gone (${JSON.stringify(died)})`
    console.log(`[${label}] ${line}`)
    return s
  }

  let baseFds = 0
  let baseRss = 0
  try {
    console.log(`soak: hyper-sse at its defaults, pid ${pid}, port ${server.port}; ${cycles.toLocaleString('en')} cycles, ${stalled} stalled clients for ${holdS} s at ${stallRate.toLocaleString('en')} events/s`)
    await settle()
    baseFds = fds(pid)
    baseRss = rss(pid)
    await report('start')

    // Phase 1: connect/disconnect cycles under a steady trickle of events.
    const watcher = await healthy(server.port)
    await server.ask({ cmd: 'rate', perSecond: 200 })
    const t1 = Date.now()
    const cyc = await runLoadgen(loadgen, ['--port', String(server.port), '--scenario', 'cycle', '--cycles', String(cycles), '--concurrency', '128', '--sources', '1000'], 600)
    const { seq: lastSeq1 } = await server.ask({ cmd: 'rate', perSecond: 0 })
    console.log(`cycles: ${JSON.stringify(cyc.result)} in ${((Date.now() - t1) / 1000).toFixed(1)} s`)
    await watcher.until(lastSeq1)
    watcher.close()
    await waitFor(async () => (await server.ask({ cmd: 'stats' })).stats.connections === 0, 15_000)
    await settle()
    const afterCycles = await report('after cycles')
    check(`${cycles.toLocaleString('en')} connect/disconnect cycles made`, cyc.result?.cycles === cycles && cyc.result?.errors === 0, cyc.result ? `${cyc.result.ok} ok, ${cyc.result.withEvent} saw an event, ${cyc.result.errors} errors${cyc.result.firstError ? `, first: ${cyc.result.firstError}` : ''}` : cyc.error)
    // Cycles that read the head (half of them) opened a stream for sure;
    // those that left right after the request may have, the rest cannot.
    const opened = (afterCycles?.totalConnections ?? 0) - 1
    check('the server counted every stream the cycles opened', opened >= cycles / 2 && opened <= (cycles * 3) / 4, `totalConnections ${afterCycles?.totalConnections} (one is the healthy client)`)
    check('no connection left after the cycles', afterCycles?.connections === 0, `connections ${afterCycles?.connections}, fds ${fds(pid)} (start ${baseFds})`)
    check('the healthy client got every event in order during the cycles', watcher.ok(lastSeq1), watcher.summary(lastSeq1))

    // After each round: the process's RSS, and the part of it that is not
    // the JavaScript heap (V8 grows its heap lazily and keeps it; the rest is
    // the engine's and the allocator's).
    const afterRound = []
    for (const round of [1, 2]) {
      if (!(await stallRound(round))) break
      const { heap } = await server.ask({ cmd: 'stats' })
      afterRound.push({ rss: rss(pid), heap })
    }
    if (afterRound.length === 2) {
      const [one, two] = afterRound
      const native = (two.rss - two.heap) - (one.rss - one.heap)
      console.log(`memory: rss ${mib(baseRss)} MiB at start; after round 1 ${mib(one.rss)} MiB (JS heap ${mib(one.heap)}), after round 2 ${mib(two.rss)} MiB (JS heap ${mib(two.heap)})`)
      check('no drift of the memory outside the JS heap from one stall round to the next', native < 16 * 1048576, `${(native / 1048576).toFixed(1)} MiB; RSS ${((two.rss - one.rss) / 1048576).toFixed(1)} MiB, JS heap ${((two.heap - one.heap) / 1048576).toFixed(1)} MiB`)
    }
    check('the server stayed up', alive(), died && JSON.stringify(died))
    if (alive()) {
      await server.ask({ cmd: 'close' })
      const exited = await waitFor(() => !alive(), 10_000)
      check('the server closed cleanly', exited && died?.code === 0, JSON.stringify(died))
    }
  } catch (err) {
    check('soak ran to the end', false, err?.stack ?? String(err))
  } finally {
    if (alive()) server.child.kill('SIGKILL')
  }
  const failed = results.filter((r) => !r.ok).length
  console.log(`soak: ${results.length - failed} passed, ${failed} failed`)
  return failed ? 1 : 0

  /** Phases 2 and 3: stalled clients while events flow fast, healthy clients beside them, then cleanup. */
  async function stallRound(round) {
    const tag = (label) => `round ${round}: ${label}`
    const afterCycles = await report(tag('before the stall'))
    const readers = []
    for (let i = 0; i < healthyCount; i++) readers.push(await healthy(server.port))
    const evictedBefore = afterCycles?.evicted ?? 0
    await server.ask({ cmd: 'rate', perSecond: stallRate })
    const stall = startLoadgen(loadgen, ['--port', String(server.port), '--scenario', 'stall', '--clients', String(stalled), '--sources', '1000', '--hold-s', String(holdS)], holdS + 120)
    const connectedAt = await stall.connected
    const t2 = Date.now()
    console.log(`stall (round ${round}): ${connectedAt} stalled clients connected; holding ${holdS} s`)
    const timeline = []
    let peakRss = 0
    let peakFds = 0
    let peakTcp = 0
    const sampler = setInterval(() => {
      if (!alive()) return
      peakRss = Math.max(peakRss, rss(pid))
      peakFds = Math.max(peakFds, fds(pid))
      peakTcp = Math.max(peakTcp, tcpMemory())
    }, 250)
    for (let t = 5; t <= holdS; t += 5) {
      await sleep(t2 + t * 1000 - Date.now())
      if (!alive()) break
      const s = (await server.ask({ cmd: 'stats' })).stats
      const behind = readers.map((r) => s.eventsSent - r.last()).join('/')
      timeline.push(`${t}s: ${s.evicted - evictedBefore} evicted, ${s.connections} open, rss ${mib(rss(pid))} MiB, kernel TCP ${mib(tcpMemory())} MiB, healthy behind by ${behind} events`)
      if (t === 30 || t === holdS) await report(tag(`stall +${t}s`))
    }
    const stallRes = await stall.done
    clearInterval(sampler)
    const { seq: lastSeq2 } = alive() ? await server.ask({ cmd: 'rate', perSecond: 0 }) : { seq: -1 }
    console.log(`stall: eviction timeline (since the stalled clients connected): ${timeline.join('; ')}`)
    console.log(`stall: ${JSON.stringify(stallRes.result ?? stallRes.error)}`)
    console.log(`stall: peak server rss ${mib(peakRss)} MiB, peak fds ${peakFds}, peak kernel TCP memory ${mib(peakTcp)} MiB (tcp_mem pressure/max: ${tcpLimits()})`)
    for (const r of readers) await r.until(lastSeq2)
    const afterStall = await report(tag('after stall'))
    check(`round ${round}: ${stalled} stalled clients connected and held ${holdS} s`, stallRes.result?.connected === stalled && stallRes.result?.errors === 0, stallRes.result ? `${stallRes.result.connected} connected, ${stallRes.result.errors} errors` : stallRes.error)
    const cutOff = readers.filter((r) => r.cutOff()).length
    const evicted = (afterStall?.evicted ?? 0) - evictedBefore
    console.log(`stall: ${evicted} clients evicted as slow during the stall phase; ${cutOff} of the ${healthyCount} healthy clients cut off; ${stallRes.result?.stillOpen} stalled sockets still ESTABLISHED at the client after ${holdS} s (a FIN behind unread data never arrives)`)
    readers.forEach((r, i) => check(`round ${round}: healthy client ${i + 1} got every event in order during the stall`, r.ok(lastSeq2), r.summary(lastSeq2)))

    // Cleanup: everyone gone, the server back where it started.
    for (const r of readers) r.close()
    await waitFor(async () => alive() && (await server.ask({ cmd: 'stats' })).stats.connections === 0, 30_000)
    await settle()
    const end = await report(tag('after cleanup'))
    const endFds = alive() ? fds(pid) : -1
    check(`round ${round}: no connection left after cleanup`, end?.connections === 0, `connections ${end?.connections}`)
    check(`round ${round}: no fd leaked after cleanup`, alive() && endFds <= baseFds, `fds ${endFds}, at start ${baseFds}`)
    return alive() ? end : null
  }
}

function buildLoadgen() {
  const manifest = path.join(root, 'bench', 'loadgen', 'Cargo.toml')
  console.log('building the load generator (release)…')
  execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest], { stdio: 'inherit' })
  return path.join(root, 'bench', 'loadgen', 'target', 'release', 'sse-loadgen')
}

function startServer() {
  return new Promise((resolve, reject) => {
    const child = fork(self, ['--server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const waiting = new Map()
    let next = 0
    const ask = (msg) =>
      new Promise((res, rej) => {
        const id = next++
        const timer = setTimeout(() => rej(new Error(`server did not answer ${msg.cmd}`)), 20_000)
        waiting.set(id, (m) => {
          clearTimeout(timer)
          res(m)
        })
        child.send({ ...msg, id })
      })
    child.on('message', (m) => {
      if (m.listening) resolve({ child, port: m.listening, ask })
      else waiting.get(m.reply)?.(m)
    })
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening`)))
  })
}

/** Runs the load generator to the end; its JSON result or an error. */
function runLoadgen(bin, args, timeoutS) {
  return startLoadgen(bin, args, timeoutS).done
}

/** Starts the load generator: `connected` resolves on its `connected <n>` line, `done` at its exit. */
function startLoadgen(bin, args, timeoutS) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  let onConnected
  const connected = new Promise((resolve) => (onConnected = resolve))
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => {
    err += d
    const m = /connected (\d+)/.exec(err)
    if (m) onConnected(Number(m[1]))
  })
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000)
  const done = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(killer)
      onConnected(0)
      try {
        resolve({ result: JSON.parse(out) })
      } catch {
        resolve({ error: `load generator exited ${code ?? signal}: ${(err || out).slice(-400)}` })
      }
    })
  })
  return { connected, done }
}

/**
 * A client that reads everything: checks that the sequence numbers at the
 * start of each event's data go up by one from the first it sees.
 */
function healthy(port) {
  return new Promise((resolve, reject) => {
    // `ended`: why the stream ended before the soak closed it (a failure).
    const state = { first: null, last: null, count: 0, gaps: 0, firstGap: null, ended: null, closed: false }
    let rest = ''
    const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`healthy client: status ${res.statusCode}`))
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        const lines = (rest + chunk).split('\n')
        rest = lines.pop()
        for (const line of lines) {
          if (!line.startsWith('data: ')) continue
          const n = Number.parseInt(line.slice(6), 10)
          if (state.last !== null && n !== state.last + 1) {
            state.gaps++
            state.firstGap ??= `${state.last} then ${n}`
          }
          state.first ??= n
          state.last = n
          state.count++
        }
      })
      const gone = (why) => {
        if (!state.closed) state.ended ??= why
      }
      res.on('end', () => gone('the server ended the stream'))
      res.on('error', (e) => gone(e.message))
      resolve({
        // Waits (up to 30 s) until the event numbered `seq` has arrived.
        until: (seq) => waitFor(() => state.last >= seq || state.ended !== null, 30_000),
        last: () => state.last ?? 0,
        cutOff: () => state.ended !== null,
        ok: (seq) => state.ended === null && state.gaps === 0 && state.last === seq && state.count === seq - state.first + 1,
        summary: (seq) =>
          `events ${state.first}..${state.last} of ${seq}: ${state.count} received, ${state.gaps} gaps` +
          `${state.firstGap ? ` (first: ${state.firstGap})` : ''}${state.ended ? `, ${state.ended}` : ''}`,
        close: () => {
          state.closed = true
          req.destroy()
        },
      })
    })
    req.on('error', reject)
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
/** Lets the server finish closing sockets before counting them. */
const settle = () => sleep(1000)

async function waitFor(cond, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return true
    await sleep(50)
  }
  return cond()
}

const mib = (bytes) => (bytes / 1048576).toFixed(0)

/** Kernel memory in TCP buffers, all sockets (/proc/net/sockstat, pages). */
function tcpMemory() {
  const m = /TCP:.* mem (\d+)/.exec(fs.readFileSync('/proc/net/sockstat', 'utf8'))
  return m ? Number(m[1]) * 4096 : 0
}

function tcpLimits() {
  try {
    const [, pressure, max] = fs.readFileSync('/proc/sys/net/ipv4/tcp_mem', 'utf8').trim().split(/\s+/).map(Number)
    return `${mib(pressure * 4096)}/${mib(max * 4096)} MiB`
  } catch {
    return 'unknown'
  }
}

function rss(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

function fds(pid) {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return -1
  }
}

// Last, so every helper above is initialised before either role runs.
if (process.argv.includes('--server')) {
  await serve()
} else {
  const stalled = process.argv.find((a) => a.startsWith('--stalled='))?.slice(10)
  process.exitCode = await soak(process.argv.includes('--quick'), stalled === undefined ? undefined : Number(stalled))
}

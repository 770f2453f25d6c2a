// The README's graceful shutdown ("Deployment": systemd, PM2, Docker), run as
// a real child process: examples/graceful/server.mjs gets SIGTERM, by its PID,
// with an EventSource client and a raw client connected.
import test from 'ava'
import net from 'node:net'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { EventSource } from 'eventsource'
import { rawStream, waitFor, canConnect } from './helpers.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const script = path.join(root, 'examples', 'graceful', 'server.mjs')

/** Starts the example on a free loopback port; kills it by PID if the test leaves it running. */
async function startExample(t) {
  const child = spawn(process.execPath, [script], {
    cwd: root,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const result = { child, exit: null, output: () => `stdout: ${stdout}\nstderr: ${stderr}` }
  result.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve((result.exit = { code, signal }))))
  t.teardown(async () => {
    if (result.exit) return
    process.kill(child.pid, 'SIGKILL')
    await result.exited
  })
  await waitFor('the example to listen', () => {
    if (result.exit) throw new Error(`the example exited at start (${JSON.stringify(result.exit)}):\n${result.output()}`)
    return /listening on \d+/.test(stdout)
  }, 10_000)
  result.port = Number(/listening on (\d+)/.exec(stdout)[1])
  return result
}

test('SIGTERM ends every stream cleanly, exits 0 within seconds and leaves nothing listening', async (t) => {
  t.timeout(30_000)
  const app = await startExample(t)
  const url = `http://127.0.0.1:${app.port}/events`

  const messages = []
  let errors = 0
  let opened = false
  const es = new EventSource(url)
  t.teardown(() => es.close())
  es.onopen = () => (opened = true)
  es.onmessage = (e) => messages.push(e.data)
  es.onerror = () => errors++
  const raw = rawStream(app.port)

  // The example sends the time every second.
  await waitFor('an event on the EventSource client', () => messages.length >= 1, 5000)
  await raw.until('data: ', 5000)
  t.true(opened)
  t.is(errors, 0)

  const sentAt = Date.now()
  process.kill(app.child.pid, 'SIGTERM')
  const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(() => r(null), 5000))])
  t.truthy(exit, `the example had not exited 5 s after SIGTERM:\n${app.output()}`)
  if (!exit) return
  t.log(`exited ${Date.now() - sentAt} ms after SIGTERM`)
  t.deepEqual(exit, { code: 0, signal: null }, app.output())

  // The raw client got the terminating chunk (a clean end, not a reset), then the close.
  await raw.ended(2000)
  t.true(raw.body().ended, `no terminating chunk: ${JSON.stringify(raw.text().slice(-200))}`)
  // The EventSource client saw its stream end (and is now retrying).
  await waitFor('the EventSource client to see the end of its stream', () => errors >= 1, 5000)
  t.not(es.readyState, EventSource.OPEN)
  for (const data of messages) t.regex(data, /^\d{4}-\d\d-\d\dT/)

  t.false(await canConnect(app.port), `port ${app.port} still accepts connections after the exit`)
})

test('SIGTERM with no client connected exits 0 at once', async (t) => {
  t.timeout(30_000)
  const app = await startExample(t)
  const sentAt = Date.now()
  process.kill(app.child.pid, 'SIGTERM')
  const exit = await Promise.race([app.exited, new Promise((r) => setTimeout(() => r(null), 5000))])
  t.truthy(exit, `the example had not exited 5 s after SIGTERM:\n${app.output()}`)
  if (!exit) return
  t.deepEqual(exit, { code: 0, signal: null }, app.output())
  t.true(Date.now() - sentAt < 2000, `exit took ${Date.now() - sentAt} ms`)
  t.false(await canConnect(app.port))
})

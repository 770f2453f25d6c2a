// No hook can take the process down: a throw or a rejected Promise in any
// hook, onError included, is reported (to onError, or console.error) and the
// server keeps serving. Each test runs the server in its own process
// (fixtures/hook-server.mjs), since the failure being tested is the process
// dying.
import test from 'ava'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sseClient, fetchText, waitFor } from './helpers.mjs'

const fixture = fileURLToPath(new URL('./fixtures/hook-server.mjs', import.meta.url))

/** Starts the fixture with `spec`; kills it (by its PID) if the test leaves it running. */
async function serve(t, spec) {
  const child = fork(fixture, [], {
    env: { ...process.env, HOOK_SPEC: JSON.stringify({ onError: 'record', ...spec }) },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  const proc = { child, errors: [], stderr: '', exit: undefined, port: undefined }
  child.stderr.on('data', (d) => (proc.stderr += d))
  child.on('message', (m) => (m.kind === 'ready' ? (proc.port = m.port) : proc.errors.push(m)))
  child.on('exit', (code, signal) => (proc.exit = { code, signal }))
  t.teardown(() => {
    if (proc.exit === undefined) child.kill('SIGKILL')
  })
  await waitFor('the server process to listen', () => proc.port !== undefined || proc.exit, 15_000)
  if (proc.exit) throw new Error(`the server process exited at start: ${proc.stderr}`)
  proc.url = `http://127.0.0.1:${proc.port}`
  return proc
}

/** The server still answers a route and opens a stream, then closes cleanly (exit code 0). */
async function keepsServing(t, proc) {
  t.is(proc.exit, undefined, `the process died: ${proc.stderr}`)
  const alive = await fetchText(`${proc.url}/alive`)
  t.is(alive.status, 200)
  t.is(alive.body, 'alive')
  const stream = sseClient(`${proc.url}/events`)
  t.teardown(() => stream.close())
  await waitFor('a stream to open', () => stream.status !== undefined || stream.ended)
  t.is(stream.status, 200)
  stream.close()
  proc.child.send({ cmd: 'close' })
  await waitFor('the server process to exit', () => proc.exit, 15_000)
  t.deepEqual(proc.exit, { code: 0, signal: null }, proc.stderr)
}

/** Makes the failing hook run once. */
const trigger = {
  onConnect: async (proc, t) => t.is((await fetchText(`${proc.url}/events`)).status, 500),
  onRequest: async (proc, t) => t.is((await fetchText(`${proc.url}/api`)).status, 500),
  'cors.origin': async (proc, t) => t.is((await fetchText(`${proc.url}/api`, { headers: { origin: 'http://other.test' } })).status, 500),
  onConnection: async (proc, t) => {
    const c = sseClient(`${proc.url}/events`)
    t.teardown(() => c.close())
    await waitFor('the stream to open', () => c.status !== undefined || c.ended)
    t.is(c.status, 200)
    c.close()
  },
  onDisconnect: async (proc, t) => {
    const c = sseClient(`${proc.url}/events`)
    await waitFor('the stream to open', () => c.status !== undefined || c.ended)
    t.is(c.status, 200)
    c.close()
  },
}

for (const hook of Object.keys(trigger)) {
  for (const [how, what] of [['throw', 'a throw'], ['reject', 'a rejected Promise']]) {
    test(`${what} in ${hook} goes to onError(error, '${hook}') and the server keeps serving`, async (t) => {
      const proc = await serve(t, { fail: hook, how })
      await trigger[hook](proc, t)
      await waitFor('onError to hear of it', () => proc.errors.length > 0)
      t.like(proc.errors[0], { where: hook, message: `boom in ${hook}`, isError: true })
      await keepsServing(t, proc)
      t.is(proc.errors.length, 1)
    })
  }
}

test('a thrown string reaches onError as that string', async (t) => {
  const proc = await serve(t, { fail: 'onConnection', how: 'throw-string' })
  await trigger.onConnection(proc, t)
  await waitFor('onError to hear of it', () => proc.errors.length > 0)
  t.like(proc.errors[0], { where: 'onConnection', message: 'boom in onConnection', isError: false })
  await keepsServing(t, proc)
})

for (const hook of ['onConnect', 'onRequest', 'cors.origin']) {
  test(`a result that throws when read in ${hook} answers 500, goes to onError, and the server keeps serving`, async (t) => {
    const proc = await serve(t, { fail: hook, how: 'trap' })
    await trigger[hook](proc, t)
    await waitFor('onError to hear of it', () => proc.errors.length > 0)
    t.like(proc.errors[0], { where: hook, message: `boom in ${hook}` })
    await keepsServing(t, proc)
  })
}

for (const [how, what, text] of [['throw', 'throws', 'onError itself failed'], ['reject', 'rejects', 'onError itself rejected']]) {
  test(`an onError that ${what} is reported to console.error and the server keeps serving`, async (t) => {
    const proc = await serve(t, { fail: 'onRequest', how: 'throw', onError: how })
    await trigger.onRequest(proc, t)
    await waitFor('console.error to hear of it', () => proc.stderr.includes(text))
    t.regex(proc.stderr, /hyper-sse: onError failed while reporting that onRequest failed \(boom in onRequest\)/)
    t.like(proc.errors[0], { where: 'onRequest', message: 'boom in onRequest' })
    await keepsServing(t, proc)
  })
}

test('without onError, a hook failure goes to console.error', async (t) => {
  const proc = await serve(t, { fail: 'onConnection', how: 'reject', onError: 'none' })
  await trigger.onConnection(proc, t)
  await waitFor('console.error to hear of it', () => proc.stderr.includes('boom in onConnection'))
  t.regex(proc.stderr, /hyper-sse: onConnection failed:/)
  await keepsServing(t, proc)
})

test('when console.error is broken too, the failure still reaches standard error and nothing crashes', async (t) => {
  const proc = await serve(t, { fail: 'onRequest', how: 'throw', onError: 'none', brokenConsole: true })
  await trigger.onRequest(proc, t)
  await waitFor('standard error to hear of it', () => proc.stderr.includes('boom in onRequest'))
  t.regex(proc.stderr, /hyper-sse: onRequest failed: boom in onRequest/)
  await keepsServing(t, proc)
})

test('when onError and console.error both fail, nothing crashes', async (t) => {
  const proc = await serve(t, { fail: 'onDisconnect', how: 'throw', onError: 'throw', brokenConsole: true })
  await trigger.onDisconnect(proc, t)
  await waitFor('standard error to hear of it', () => proc.stderr.includes('onError itself failed'))
  t.like(proc.errors[0], { where: 'onDisconnect', message: 'boom in onDisconnect' })
  await keepsServing(t, proc)
})

// No hook can take the process down, or hold a request forever: a throw or a
// rejected Promise in any hook, onError included, is reported (to onError, or
// console.error) and the server keeps serving; a hook that never settles is
// cut off by hookTimeout. The crash tests run the server in its own process
// (fixtures/hook-server.mjs), since the failure being tested is the process
// dying.
import test from 'ava'
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { createServer, start, sseClient, fetchText, waitFor } from './helpers.mjs'

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

// hookTimeout: a hook that never settles cannot hold a request, or its
// connection slot, forever.

const never = () => new Promise(() => {})

/** `promise`, or a failure naming `what` after `ms`: a test that would hang fails instead. */
function bounded(what, promise, ms = 5000) {
  let timer
  const late = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

test('an onConnect that never settles is answered 503 with Retry-After after hookTimeout, and onError hears of it', async (t) => {
  const errors = []
  const { server, url } = await start(t, { hookTimeout: 200, onConnect: never, onError: (e, where) => errors.push([e, where]) })
  const res = await bounded('the answer', fetchText(`${url}/events`))
  t.is(res.status, 503)
  t.is(res.headers['retry-after'], '5')
  await waitFor('onError', () => errors.length === 1)
  const [error, where] = errors[0]
  t.is(where, 'onConnect')
  t.true(error instanceof Error)
  t.is(error.code, 'ERR_HOOK_TIMEOUT')
  t.is(error.message, 'onConnect did not settle within 200 ms (hookTimeout); the request was answered 503')
  t.is(server.stats().connections, 0)
})

test('an onRequest that never settles is answered 504 after hookTimeout, and onError hears of it', async (t) => {
  const errors = []
  const { url } = await start(t, { hookTimeout: 200, onRequest: never, onError: (e, where) => errors.push([e, where]) })
  const res = await bounded('the answer', fetchText(`${url}/api`))
  t.is(res.status, 504)
  await waitFor('onError', () => errors.length === 1)
  t.is(errors[0][1], 'onRequest')
  t.is(errors[0][0].code, 'ERR_HOOK_TIMEOUT')
  t.regex(errors[0][0].message, /^onRequest did not settle within 200 ms/)
})

test('a cors.origin function that never settles is answered 503 on a stream path and 504 on a route', async (t) => {
  const errors = []
  const { url } = await start(t, {
    hookTimeout: 200,
    cors: { origin: never },
    onRequest: () => ({ body: 'ok' }),
    onError: (e, where) => errors.push([e, where]),
  })
  const headers = { origin: 'http://other.test' }
  const stream = await bounded('the stream answer', fetchText(`${url}/events`, { headers }))
  t.is(stream.status, 503)
  t.is(stream.headers['retry-after'], '5')
  const route = await bounded('the route answer', fetchText(`${url}/api`, { headers }))
  t.is(route.status, 504)
  await waitFor('onError', () => errors.length === 2)
  t.deepEqual(errors.map(([e, where]) => [where, e.code]), [['cors.origin', 'ERR_HOOK_TIMEOUT'], ['cors.origin', 'ERR_HOOK_TIMEOUT']])
})

test('a stream request waiting on onConnect holds its maxConnections slot until hookTimeout frees it', async (t) => {
  let asked = 0
  const { server, url } = await start(t, {
    keepAlive: 0,
    maxConnections: 1,
    hookTimeout: 500,
    onConnect: (req) => (asked++, req.query.hang ? never() : true),
    onError: () => {},
  })
  const hanging = fetchText(`${url}/events?hang=1`)
  await waitFor('onConnect to be asked', () => asked === 1)
  const meanwhile = await bounded('the answer while the slot is taken', fetchText(`${url}/events`))
  t.is(meanwhile.status, 503, 'the waiting request holds the only slot')
  t.is(asked, 1, 'refused before onConnect')
  t.is((await bounded('the timed-out answer', hanging)).status, 503)
  const after = sseClient(`${url}/events`)
  t.teardown(() => after.close())
  await waitFor('a stream to open in the freed slot', () => after.status !== undefined || after.ended)
  t.is(after.status, 200)
  await waitFor('it to count', () => server.stats().connections === 1)
})

test('a stream request waiting on onConnect counts against maxConnectionsPerIp', async (t) => {
  let asked = 0
  const { url } = await start(t, {
    maxConnectionsPerIp: 1,
    hookTimeout: 500,
    onConnect: () => (asked++, never()),
    onError: () => {},
  })
  const hanging = fetchText(`${url}/events`)
  await waitFor('onConnect to be asked', () => asked === 1)
  const meanwhile = await bounded('the answer while the slot is taken', fetchText(`${url}/events`))
  t.is(meanwhile.status, 429)
  t.is((await bounded('the timed-out answer', hanging)).status, 503)
})

test('a stream request waiting on a cors.origin function holds its maxConnections slot', async (t) => {
  let asked = 0
  const { url } = await start(t, {
    keepAlive: 0,
    maxConnections: 1,
    hookTimeout: 500,
    cors: { origin: () => (asked++, never()) },
    onError: () => {},
  })
  const hanging = fetchText(`${url}/events`, { headers: { origin: 'http://other.test' } })
  await waitFor('the origin function to be asked', () => asked === 1)
  const meanwhile = await bounded('the answer while the slot is taken', fetchText(`${url}/events`))
  t.is(meanwhile.status, 503, 'the waiting request holds the only slot')
  t.is((await bounded('the timed-out answer', hanging)).status, 503)
  const after = sseClient(`${url}/events`)
  t.teardown(() => after.close())
  await waitFor('a stream to open in the freed slot', () => after.status !== undefined || after.ended)
  t.is(after.status, 200)
})

test('a late accept from onConnect, after hookTimeout, opens nothing', async (t) => {
  let opened = 0
  let settled = false
  const { server, url } = await start(t, {
    hookTimeout: 100,
    onConnect: () => new Promise((resolve) => setTimeout(() => resolve(true), 400)).finally(() => (settled = true)),
    onConnection: () => opened++,
    onError: () => {},
  })
  t.is((await bounded('the answer', fetchText(`${url}/events`))).status, 503)
  await waitFor('onConnect to settle, late', () => settled)
  await new Promise((r) => setTimeout(r, 200))
  t.is(opened, 0)
  t.like(server.stats(), { connections: 0, totalConnections: 0 })
})

test('hookTimeout: 0 waits for a slow onConnect', async (t) => {
  const { url } = await start(t, {
    hookTimeout: 0,
    onConnect: () => new Promise((resolve) => setTimeout(() => resolve(true), 300)),
  })
  const c = sseClient(`${url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream to open', () => c.status !== undefined || c.ended)
  t.is(c.status, 200)
})

test('hookTimeout is validated like the other time options', (t) => {
  t.throws(() => createServer({ hookTimeout: -1 }), { instanceOf: RangeError, message: /options\.hookTimeout must be a non-negative integer \(milliseconds\), got -1/ })
  t.throws(() => createServer({ hookTimeout: 1.5 }), { instanceOf: RangeError, message: /options\.hookTimeout/ })
  t.throws(() => createServer({ hookTimeout: '100' }), { instanceOf: TypeError, message: /options\.hookTimeout must be a number, got string/ })
})

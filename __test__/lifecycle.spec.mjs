// Connections come and go, the server closes cleanly, and a Node process that
// uses it can exit: the parts of a server's life the seed's loop got wrong.
import test from 'ava'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { start, rawStream, waitFor } from './helpers.mjs'

const addon = fileURLToPath(new URL('../index.js', import.meta.url))

test('a client that disconnects is noticed within a second and its stream freed', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const clients = Array.from({ length: 50 }, () => rawStream(port))
  await waitFor('50 streams', () => server.stats().connections === 50)
  for (const c of clients.slice(0, 30)) c.socket.destroy()
  const t0 = Date.now()
  await waitFor('20 streams left', () => server.stats().connections === 20, 1000)
  t.log(`30 disconnects noticed in ${Date.now() - t0} ms`)
  t.is(server.stats().totalConnections, 50)
  // The survivors still get events.
  server.send('still here')
  for (const c of clients.slice(30)) await c.until('data: still here\n\n')
})

test('close() ends every stream with the terminating chunk, after the events already sent', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const clients = Array.from({ length: 10 }, () => rawStream(port))
  await waitFor('10 streams', () => server.stats().connections === 10)
  server.send('goodbye')
  await server.close()
  for (const c of clients) {
    await c.ended()
    const { data, ended } = c.body()
    t.is(data, 'data: goodbye\n\n')
    t.true(ended, 'terminating chunk received')
  }
  t.is(server.stats().connections, 0)
  const late = rawStream(port)
  await late.ended()
  t.is(late.raw.length, 0, 'no longer accepting')
  await server.close() // idempotent
})

/** Runs a module in a child Node process; resolves with its exit code, or 'timeout'. */
function runChild(source, ms) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      resolve({ code: 'timeout', output })
    }, ms)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

const prelude = `import { createRequire } from 'node:module'; const { createServer } = createRequire(import.meta.url)(${JSON.stringify(addon)});`

test('a listening server keeps the process alive, like http.Server', async (t) => {
  const { code, output } = await runChild(
    `${prelude} const s = createServer(); await s.listen(0, '127.0.0.1'); console.log('listening')`,
    1500,
  )
  t.is(code, 'timeout', output)
  t.true(output.includes('listening'))
})

test('after close() the process exits by itself, with streams open', async (t) => {
  const { code, output } = await runChild(
    `${prelude}
     import net from 'node:net'
     const s = createServer({ keepAlive: 1000 })
     const { port } = await s.listen(0, '127.0.0.1')
     const sock = net.connect(port, '127.0.0.1'); sock.write('GET /events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
     await new Promise((r) => sock.once('data', r))
     s.send('x')
     await s.close()
     console.log('closed')`,
    5000,
  )
  t.is(code, 0, output)
  t.true(output.includes('closed'))
})

test('unref() lets the process exit while listening; ref() holds it again', async (t) => {
  const unrefd = await runChild(`${prelude} const s = createServer(); await s.listen(0, '127.0.0.1'); s.unref(); console.log('unref')`, 5000)
  t.is(unrefd.code, 0, unrefd.output)
  const before = await runChild(`${prelude} const s = createServer().unref(); await s.listen(0, '127.0.0.1'); console.log('unref before listen')`, 5000)
  t.is(before.code, 0, before.output)
  const reffed = await runChild(`${prelude} const s = createServer(); await s.listen(0, '127.0.0.1'); s.unref(); s.ref(); console.log('ref')`, 1500)
  t.is(reffed.code, 'timeout', reffed.output)
})

test('a failed listen() does not keep the process alive', async (t) => {
  const { code, output } = await runChild(
    `${prelude}
     const a = createServer(); const { port } = await a.listen(0, '127.0.0.1'); a.unref()
     const b = createServer()
     try { await b.listen(port, '127.0.0.1') } catch (e) { console.log(e.code) }`,
    5000,
  )
  t.is(code, 0, output)
  t.true(output.includes('EADDRINUSE'))
})

test('the package loads by name with both require() and import', async (t) => {
  const cwd = fileURLToPath(new URL('..', import.meta.url))
  const probe = `
    import { createRequire } from 'node:module'
    const cjs = createRequire(import.meta.url)('hyper-sse')
    const esm = await import('hyper-sse')
    console.log(typeof cjs.createServer, typeof esm.createServer, esm.createServer === cjs.createServer, typeof esm.Server)`
  const result = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', probe], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.on('close', (code) => resolve({ code, out }))
  })
  t.is(result.code, 0, result.out)
  t.is(result.out.trim(), 'function function true function')
})

// The backplane over TLS (rediss://): a throwaway CA and server certificate
// made with the openssl CLI, a redis-server of this file's own listening only
// on a TLS port (stopped by its PID), two servers through it; and the errors
// of the `redis.tls` option.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { createServer, sseClient, waitFor, canConnect, makeCert } from './helpers.mjs'
import { freePort, uniquePrefix } from './redis-helpers.mjs'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-redis-tls-'))
const file = (name) => path.join(dir, name)
const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
let redis

test.before(async () => {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-days', '2', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign')
  fs.writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  openssl('req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-days', '2', '-extfile', 'server.ext', '-out', 'server.crt')
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '127.0.0.2',
    '--tls-cert-file', file('server.crt'), '--tls-key-file', file('server.key'),
    '--tls-ca-cert-file', file('ca.crt'), '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' })
  redis = { proc, url: `rediss://127.0.0.1:${port}`, ca: fs.readFileSync(file('ca.crt'), 'utf8') }
  await waitFor('redis-server on its TLS port', () => canConnect(port), 10000)
})

test.after.always(async () => {
  const proc = redis?.proc
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once('exit', r))
    process.kill(proc.pid, 'SIGKILL')
    await exited
  }
  fs.rmSync(dir, { recursive: true, force: true })
})

async function instance(t, prefix, tls = { ca: redis.ca }) {
  const server = createServer({ redis: { url: redis.url, prefix, tls } })
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  return { server, url: `http://127.0.0.1:${port}/events` }
}

test('a send on one instance reaches a client of the other over rediss://', async (t) => {
  const prefix = uniquePrefix()
  const a = await instance(t, prefix)
  const b = await instance(t, prefix, { ca: Buffer.from(redis.ca) })
  const client = sseClient(b.url)
  t.teardown(() => client.close())
  await waitFor('the stream on B', () => b.server.stats().connections === 1)
  a.server.send('over tls')
  await a.server.flush()
  await waitFor('the event on B', () => client.events.length === 1)
  t.is(client.events[0].data, 'over tls')
})

test('tls.servername is the name checked when the URL names Redis by another address', async (t) => {
  const prefix = uniquePrefix()
  const url = redis.url.replace('127.0.0.1', '127.0.0.2')
  const a = await instance(t, prefix)
  const server = createServer({ redis: { url, prefix, tls: { ca: redis.ca, servername: 'localhost' } } })
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  const client = sseClient(`http://127.0.0.1:${port}/events`)
  t.teardown(() => client.close())
  await waitFor('the stream', () => server.stats().connections === 1)
  a.server.send('named')
  await a.server.flush()
  await waitFor('the event', () => client.events.length === 1)
  t.is(client.events[0].data, 'named')
  const unnamed = createServer({ redis: { url, tls: { ca: redis.ca } } })
  const error = await t.throwsAsync(unnamed.listen(0, '127.0.0.1'))
  t.regex(error.message, /not valid for name "127\.0\.0\.2"/)
  await unnamed.close()
})

test('without the CA, listen() rejects naming the URL and the TLS handshake', async (t) => {
  const server = createServer({ redis: { url: redis.url } })
  const error = await t.throwsAsync(server.listen(0, '127.0.0.1'))
  t.is(error.code, 'ERR_REDIS_UNAVAILABLE')
  t.true(error.message.startsWith(`cannot connect to Redis at ${redis.url}: the TLS handshake failed`), error.message)
  t.regex(error.message, /invalid peer certificate: UnknownIssuer/)
  await server.close()
})

test('bad redis.tls options are TypeErrors naming the field', (t) => {
  const { cert, key } = makeCert()
  const other = makeCert()
  const bad = [
    [{ url: 'redis://127.0.0.1:6379', tls: {} }, /options\.redis\.tls needs a rediss:\/\/ URL/],
    [{ url: 'rediss://h', tls: { ca: 'not pem' } }, /options\.redis\.tls\.ca: /],
    [{ url: 'rediss://h', tls: { ca: 42 } }, /options\.redis\.tls\.ca must be PEM text/],
    [{ url: 'rediss://h', tls: { cert } }, /options\.redis\.tls\.key is required with redis\.tls\.cert/],
    [{ url: 'rediss://h', tls: { key } }, /options\.redis\.tls\.cert is required with redis\.tls\.key/],
    [{ url: 'rediss://h', tls: { cert: 'x', key } }, /options\.redis\.tls\.cert: /],
    [{ url: 'rediss://h', tls: { cert, key: 'x' } }, /options\.redis\.tls\.key: /],
    [{ url: 'rediss://h', tls: { cert, key: other.key } }, /options\.redis\.tls\.key: does not match redis\.tls\.cert/],
    [{ url: 'rediss://h', tls: { servername: 42 } }, /options\.redis\.tls\.servername must be a string/],
    [{ url: 'rediss://h', tls: { servername: 'not a name!' } }, /options\.redis\.tls\.servername: 'not a name!' is not a host name/],
  ]
  for (const [value, message] of bad) {
    t.throws(() => createServer({ redis: value }), { instanceOf: TypeError, message }, JSON.stringify(value.tls))
  }
  t.notThrows(() => createServer({ redis: { url: 'rediss://h', tls: { cert, key } } }))
})

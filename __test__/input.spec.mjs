// Bad input is refused synchronously with a TypeError/RangeError that names
// the field, and nothing at all reaches the clients.
import test from 'ava'
import net from 'node:net'
import { createServer, start, rawStream, waitFor } from './helpers.mjs'

const badEvents = [
  ['CR in event', { data: 'x', event: 'a\rb' }, TypeError, /event\.event must not contain CR or LF/],
  ['LF in event', { data: 'x', event: 'a\nb' }, TypeError, /event\.event must not contain CR or LF/],
  ['CRLF in id', { data: 'x', id: '1\r\n2' }, TypeError, /event\.id must not contain CR or LF/],
  ['NUL in id', { data: 'x', id: 'a\0b' }, TypeError, /event\.id must not contain NUL/],
  ['negative retry', { data: 'x', retry: -1 }, RangeError, /event\.retry must be a non-negative integer/],
  ['fractional retry', { data: 'x', retry: 1.5 }, RangeError, /event\.retry/],
  ['NaN retry', { data: 'x', retry: NaN }, RangeError, /event\.retry/],
  ['infinite retry', { data: 'x', retry: Infinity }, RangeError, /event\.retry/],
  ['string retry', { data: 'x', retry: '100' }, TypeError, /event\.retry must be a number, got string/],
  ['invalid UTF-8 Buffer data', { data: Buffer.from([0x66, 0xff, 0xfe]) }, TypeError, /event\.data Buffer is not valid UTF-8/],
  ['BigInt data', { data: 10n }, TypeError, /event\.data could not be JSON-encoded/],
  ['function data', { data: () => 1 }, TypeError, /event\.data could not be JSON-encoded/],
  ['non-string event', { data: 'x', event: 5 }, TypeError, /event\.event must be a string, got number/],
  ['object id', { data: 'x', id: {} }, TypeError, /event\.id must be a string or a number/],
  ['unknown field', { data: 'x', evnet: 'typo' }, TypeError, /unknown field 'evnet'/],
  ['missing data', { event: 'e' }, TypeError, /event\.data is required/],
  ['empty object', {}, TypeError, /event\.data is required/],
]

test('every bad event is refused with a clear error and nothing is sent', async (t) => {
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const c = rawStream(port)
  await waitFor('stream', () => server.stats().connections === 1)
  const circular = { data: {} }
  circular.data.self = circular.data
  const cases = [...badEvents, ['circular data', circular, TypeError, /event\.data could not be JSON-encoded/]]
  for (const [name, ev, Type, message] of cases) {
    const err = t.throws(() => server.send(ev), { instanceOf: Type }, name)
    t.regex(err.message, message, name)
    t.regex(err.message, /^send\(\)/, name)
  }
  for (const bad of [undefined, null, 42, true, [1], Symbol('s')]) {
    t.throws(() => server.send(bad), { instanceOf: TypeError, message: /send\(\): event must be a string, a Buffer or an object/ })
  }
  t.throws(() => server.send(Buffer.from([0xc3])), { instanceOf: TypeError, message: /not valid UTF-8/ })
  t.throws(() => server.comment(5), { instanceOf: TypeError, message: /comment\(\): text must be a string/ })
  t.is(server.stats().eventsSent, 0)
  server.send('proof')
  await c.until('data: proof\n\n')
  t.is(c.body().data, 'data: proof\n\n', 'only the good event reached the client')
})

const badOptions = [
  ['non-object options', 'x', TypeError, /options must be an object, got string/],
  ['unknown option', { pth: '/x' }, TypeError, /unknown field 'pth'/],
  ['path not a string', { path: 5 }, TypeError, /options\.path must be a string, got number/],
  ['path without slash', { path: 'events' }, TypeError, /options\.path must be a URL path starting with '\/'/],
  ['path with query', { path: '/e?x=1' }, TypeError, /options\.path/],
  ['empty path array', { path: [] }, TypeError, /options\.path must not be an empty array/],
  ['bad path in array', { path: ['/a', 7] }, TypeError, /options\.path\[1\] must be a string/],
  ['static not a string', { static: 1 }, TypeError, /options\.static must be a string/],
  ['static missing dir', { static: '/no/such/dir/here' }, TypeError, /options\.static must be an existing directory/],
  ['static is a file', { static: new URL(import.meta.url).pathname }, TypeError, /options\.static must be an existing directory/],
  ['keepAlive string', { keepAlive: '15s' }, TypeError, /options\.keepAlive must be a number, got string/],
  ['keepAlive negative', { keepAlive: -5 }, RangeError, /options\.keepAlive must be a non-negative integer/],
  ['keepAlive fractional', { keepAlive: 0.5 }, RangeError, /options\.keepAlive/],
  ['stallTimeout string', { stallTimeout: '30s' }, TypeError, /options\.stallTimeout must be a number, got string/],
  ['stallTimeout negative', { stallTimeout: -1 }, RangeError, /options\.stallTimeout must be a non-negative integer \(milliseconds\), got -1/],
  ['stallTimeout fractional', { stallTimeout: 0.5 }, RangeError, /options\.stallTimeout/],
  ['maxBufferedBytes zero', { maxBufferedBytes: 0 }, RangeError, /options\.maxBufferedBytes must be at least 1, got 0/],
  ['retry negative', { retry: -1 }, RangeError, /options\.retry must be a non-negative integer/],
  ['retry not a number', { retry: null }, TypeError, /options\.retry must be a number, got null/],
  ['headers not an object', { headers: 'x' }, TypeError, /options\.headers must be an object/],
  ['header value not a string', { headers: { 'X-A': 1 } }, TypeError, /options\.headers\['X-A'\] must be a string/],
  ['header with CRLF', { headers: { 'X-A': 'a\r\nSet-Cookie: x' } }, TypeError, /options\.headers\['X-A'\]: not a valid header value/],
  ['invalid header name', { headers: { 'X A': 'v' } }, TypeError, /not a valid header name/],
  ['reserved header', { headers: { 'Content-Type': 'text/plain' } }, TypeError, /set by the server/],
  ['reserved transfer-encoding header', { headers: { 'transfer-encoding': 'gzip' } }, TypeError, /set by the server/],
]

for (const [name, options, Type, message] of badOptions) {
  test(`createServer refuses ${name}`, (t) => {
    t.throws(() => createServer(options), { instanceOf: Type, message })
  })
}

test('createServer accepts every documented option', async (t) => {
  const s = createServer({ path: ['/a', '/b'], static: '.', keepAlive: 0, retry: 1000, headers: { 'X-Test': 'yes' }, maxBufferedBytes: 1 << 20, stallTimeout: 0 })
  t.is(s.port, null)
  await s.close()
  t.notThrows(() => createServer())
  t.notThrows(() => createServer({}))
  t.notThrows(() => createServer(undefined))
})

test('listen rejects a port in use with EADDRINUSE, like Node', async (t) => {
  const { port } = await start(t)
  const other = createServer()
  const err = await t.throwsAsync(other.listen(port, '127.0.0.1'))
  t.is(err.code, 'EADDRINUSE')
  t.is(err.syscall, 'listen')
  t.is(err.port, port)
  t.is(err.address, '127.0.0.1')
  t.is(err.errno, -98)
  t.regex(err.message, /EADDRINUSE/)
  t.true(err instanceof Error)
  // The failed server can still listen elsewhere.
  const { port: second } = await other.listen(0, '127.0.0.1')
  t.true(second > 0 && second !== port)
  await other.close()
})

test('listen rejects an unresolvable host with ENOTFOUND and a privileged port with EACCES when not root', async (t) => {
  const s = createServer()
  const err = await t.throwsAsync(s.listen(0, 'no-such-host.invalid'))
  t.is(err.code, 'ENOTFOUND')
  if (process.getuid && process.getuid() !== 0) {
    const denied = await t.throwsAsync(s.listen(80, '127.0.0.1'))
    t.is(denied.code, 'EACCES')
  }
  const notLocal = await t.throwsAsync(s.listen(0, '192.0.2.1'))
  t.is(notLocal.code, 'EADDRNOTAVAIL')
  await s.close()
})

test('listen validates its arguments', async (t) => {
  const s = createServer()
  t.throws(() => s.listen(-1), { instanceOf: RangeError, message: /port must be an integer from 0 to 65535/ })
  t.throws(() => s.listen(70000), { instanceOf: RangeError })
  t.throws(() => s.listen(1.5), { instanceOf: RangeError })
  t.throws(() => s.listen('80'), { instanceOf: TypeError, message: /port must be a number/ })
  t.throws(() => s.listen(0, 5), { instanceOf: TypeError, message: /host must be a string/ })
  await s.close()
})

test('listen resolves with the bound address; port 0 picks a free port; listening twice is refused', async (t) => {
  const s = createServer()
  const addr = await s.listen(0, '127.0.0.1')
  t.like(addr, { host: '127.0.0.1', family: 'IPv4' })
  t.is(s.port, addr.port)
  await new Promise((resolve, reject) => {
    const sock = net.connect(addr.port, '127.0.0.1', () => sock.end(resolve))
    sock.on('error', reject)
  })
  const again = await t.throwsAsync(s.listen(0, '127.0.0.1'))
  t.is(again.code, 'ERR_SERVER_ALREADY_LISTEN')
  await s.close()
  t.is(s.port, null)
  t.throws(() => s.listen(0), { code: 'ERR_SERVER_CLOSED' })
  t.throws(() => s.send('x'), { code: 'ERR_SERVER_CLOSED', message: /closed/ })
})

test('listen on ::1 works for IPv6 clients', async (t) => {
  const s = createServer()
  let addr
  try {
    addr = await s.listen(0, '::1')
  } catch (e) {
    t.is(e.code, 'EADDRNOTAVAIL', 'only a machine without IPv6 may refuse')
    return
  }
  t.like(addr, { host: '::1', family: 'IPv6' })
  await s.close()
})

// Shared test plumbing: start a server on loopback, talk raw HTTP/1.1 to it,
// and wait for conditions with a deadline. Not a test file (no .spec).
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import http from 'node:http'
import { createParser } from 'eventsource-parser'
import { createServer } from '../index.js'

export { createServer }

/** Starts a server on 127.0.0.1 with any free port; closes it when the test ends. */
export async function start(t, options) {
  const server = createServer(options)
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())
  return { server, port, url: `http://127.0.0.1:${port}` }
}

/** Polls `check` every 10 ms until it is truthy or `ms` pass. */
export async function waitFor(what, check, ms = 5000) {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * A raw TCP client: sends `request` verbatim and collects every byte the
 * server sends back, so tests can assert the exact wire format.
 */
export function rawRequest(port, request) {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const client = {
    socket,
    raw: Buffer.alloc(0),
    closed: false,
    text() {
      return client.raw.toString('utf8')
    },
    head() {
      const end = client.raw.indexOf('\r\n\r\n')
      return end < 0 ? null : client.raw.subarray(0, end).toString('latin1')
    },
    /** The body with chunked framing removed, and whether the final chunk came. */
    body() {
      const start = client.raw.indexOf('\r\n\r\n') + 4
      return dechunk(client.raw.subarray(start))
    },
    until(needle, ms = 5000) {
      return waitFor(`${JSON.stringify(needle)} in ${JSON.stringify(client.text())}`, () => client.raw.includes(needle), ms)
    },
    ended(ms = 5000) {
      return waitFor('the server to close the connection', () => client.closed, ms)
    },
  }
  socket.on('data', (d) => {
    client.raw = Buffer.concat([client.raw, d])
  })
  socket.on('close', () => {
    client.closed = true
  })
  socket.on('error', () => {})
  socket.write(request)
  return client
}

/** Opens an event stream with a raw GET. */
export function rawStream(port, path = '/events', headers = '') {
  return rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${headers}\r\n`)
}

/** Decodes `Transfer-Encoding: chunked`. */
export function dechunk(buf) {
  const parts = []
  let ended = false
  for (;;) {
    const eol = buf.indexOf('\r\n')
    if (eol < 0) break
    const size = parseInt(buf.subarray(0, eol).toString('latin1'), 16)
    if (size === 0) {
      ended = true
      break
    }
    if (buf.length < eol + 2 + size + 2) break
    parts.push(buf.subarray(eol + 2, eol + 2 + size))
    buf = buf.subarray(eol + 4 + size)
  }
  return { data: Buffer.concat(parts).toString('utf8'), ended }
}

/**
 * An SSE client made of Node's http client and eventsource-parser: collects
 * events, remembers the last event id, and can reconnect with Last-Event-ID.
 */
export function sseClient(url, { headers = {}, lastEventId, localAddress, query = '' } = {}) {
  const client = {
    events: [],
    comments: [],
    lastEventId,
    status: undefined,
    headers: undefined,
    open: false,
    ended: false,
    req: undefined,
    close() {
      client.req?.destroy()
    },
  }
  const h = { accept: 'text/event-stream', ...headers }
  if (lastEventId !== undefined) h['last-event-id'] = lastEventId
  client.req = http.get(`${url}${query}`, { headers: h, agent: false, localAddress }, (res) => {
    client.status = res.statusCode
    client.headers = res.headers
    client.open = true
    res.setEncoding('utf8')
    const parser = createParser({
      onEvent: (e) => {
        if (e.id !== undefined) client.lastEventId = e.id
        client.events.push(e)
      },
      onComment: (c) => client.comments.push(c),
    })
    res.on('data', (chunk) => parser.feed(chunk))
    res.on('end', () => (client.ended = true))
    res.on('close', () => (client.ended = true))
  })
  client.req.on('error', () => (client.ended = true))
  return client
}

/** A one-shot HTTP request; resolves with status, headers and body text. */
export function fetchText(url, { method = 'GET', headers = {}, body, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, localAddress }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A seeded PRNG (mulberry32): `rand(n)` is an integer in [0, n). Reproducible tests. */
export function random(seed) {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n | 0
  }
}

/** A fresh self-signed certificate for 127.0.0.1/localhost, made with openssl. */
export function makeCert(cn = 'localhost') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-tls-'))
  const key = path.join(dir, 'key.pem')
  const cert = path.join(dir, 'cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' })
  const out = { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') }
  fs.rmSync(dir, { recursive: true, force: true })
  return out
}


/** Chromium from Debian, headless, with the flags this machine needs; fails clearly when missing. */
export async function launchChromium(t, extraArgs = []) {
  const executablePath = '/usr/bin/chromium'
  if (!fs.existsSync(executablePath)) {
    t.fail(`${executablePath} not found: run scripts/ensure-chromium.sh (as root) to install Chromium`)
    return null
  }
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 20_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', ...extraArgs],
  })
  t.teardown(() => browser.close().catch(() => {}))
  return browser
}

/** A loopback port nothing listens on now (the kernel picks it). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** Whether something accepts connections on loopback `port` now. */
export function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.on('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

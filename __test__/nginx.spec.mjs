// The README's nginx configuration ("Deployment"), run for real: Debian's
// nginx (.ci/run installs it) as a foreground process of this user, on a
// loopback port, in front of a hyper-sse server. The location block is taken
// from the README itself, so the snippet users copy is the one tested; only
// the addresses and proxy_read_timeout are changed (a 5 s timeout and a 1 s
// heartbeat instead of an hour and 15 s, to keep the test short).
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { spawn, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { start, sseClient, fetchText, waitFor, freePort, canConnect } from './helpers.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

function findNginx() {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', ...(process.env.PATH ?? '').split(':')]) {
    const candidate = path.join(dir, 'nginx')
    if (dir && fs.existsSync(candidate)) return candidate
  }
  return null
}

/** The ```nginx block of the README's "Deployment" section. */
function readmeNginxConfig() {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## Deployment'))
  const match = /```nginx\n([\s\S]*?)```/.exec(section)
  if (!match) throw new Error('README.md: no ```nginx block under "## Deployment"')
  return match[1]
}

/** Replaces `from` (which must occur exactly once) with `to`. */
function replaceOnce(text, from, to) {
  const parts = text.split(from)
  if (parts.length !== 2) throw new Error(`README nginx snippet: expected ${JSON.stringify(from)} once, found it ${parts.length - 1} times`)
  return parts.join(to)
}

/**
 * Starts nginx in the foreground with the README's server block, proxying to
 * `upstreamPort`; `edit` may change the block further. Stopped by its PID.
 */
async function startNginx(t, upstreamPort, { readTimeout = '5s', edit = (c) => c } = {}) {
  const nginx = findNginx()
  if (!nginx) {
    t.fail('nginx not found (/usr/sbin/nginx): install Debian\'s nginx package (.ci/run does)')
    return null
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-nginx-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const port = await freePort()
  let site = readmeNginxConfig()
  site = replaceOnce(site, 'server 127.0.0.1:3000;', `server 127.0.0.1:${upstreamPort};`)
  site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${port};`)
  site = replaceOnce(site, 'proxy_read_timeout 1h;', `proxy_read_timeout ${readTimeout};`)
  site = edit(site)
  // As root, nginx would switch its workers to `nobody`; keep them this user.
  const user = process.getuid?.() === 0
    ? `user ${os.userInfo().username} ${execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim()};\n`
    : ''
  const conf = `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${site}
}
`
  fs.writeFileSync(path.join(dir, 'nginx.conf'), conf)
  const child = spawn(nginx, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  let exited = false
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = true
    resolve({ code, signal })
  }))
  t.teardown(async () => {
    if (exited) return
    process.kill(child.pid, 'SIGTERM') // nginx's fast shutdown; the master stops its worker
    const stopped = await Promise.race([exit, new Promise((r) => setTimeout(() => r(null), 5000))])
    if (!stopped) {
      process.kill(child.pid, 'SIGKILL')
      await exit
    }
  })
  const log = () => `${output}${fs.existsSync(path.join(dir, 'error.log')) ? fs.readFileSync(path.join(dir, 'error.log'), 'utf8') : ''}`
  try {
    await waitFor('nginx to accept connections', async () => {
      if (exited) throw new Error(`nginx exited at start:\n${log()}\n--- nginx.conf\n${conf}`)
      return canConnect(port)
    }, 10_000)
  } catch (err) {
    t.fail(err.message)
    return null
  }
  return { url: `http://127.0.0.1:${port}`, log }
}

test('an event goes through nginx at once, and heartbeats keep a quiet stream open past proxy_read_timeout', async (t) => {
  t.timeout(30_000)
  const { server, port } = await start(t, { keepAlive: 1000, history: 0 })
  const proxy = await startNginx(t, port)
  if (!proxy) return
  const c = sseClient(`${proxy.url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream through nginx', () => c.open && server.stats().connections === 1)
  t.is(c.status, 200)
  t.is(c.headers['content-type'], 'text/event-stream')

  let sentAt = Date.now()
  server.send('first')
  await waitFor('the first event through nginx', () => c.events.length === 1, 1000)
  t.log(`first event through nginx after ${Date.now() - sentAt} ms`)
  t.is(c.events[0].data, 'first')

  // Nothing but heartbeats for 7 s: longer than nginx's 5 s read timeout.
  await new Promise((r) => setTimeout(r, 7000))
  t.false(c.ended, `nginx ended the stream during the pause:\n${proxy.log()}`)
  t.true(c.comments.length >= 5, `heartbeats seen through nginx: ${c.comments.length}`)
  t.is(server.stats().connections, 1)

  sentAt = Date.now()
  server.send({ event: 'later', data: 'second' })
  await waitFor('the second event through nginx', () => c.events.length === 2, 1000)
  t.log(`second event through nginx after ${Date.now() - sentAt} ms`)
  t.is(c.events[1].event, 'later')
  t.is(c.events[1].data, 'second')
})

test('without heartbeats nginx ends a quiet stream at proxy_read_timeout (why keepAlive must be shorter)', async (t) => {
  t.timeout(30_000)
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const proxy = await startNginx(t, port, { readTimeout: '2s' })
  if (!proxy) return
  const c = sseClient(`${proxy.url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream through nginx', () => c.open && server.stats().connections === 1)
  const opened = Date.now()
  await waitFor('nginx to time the quiet stream out', () => c.ended, 8000)
  t.true(Date.now() - opened >= 1500, `ended after ${Date.now() - opened} ms`)
  await waitFor('the engine to see the stream go', () => server.stats().connections === 0)
})

test('with nginx\'s default proxy_buffering on, the stream (X-Accel-Buffering: no) still gets every event at once', async (t) => {
  t.timeout(30_000)
  const { server, port } = await start(t, { keepAlive: 0, history: 0 })
  const proxy = await startNginx(t, port, { edit: (c) => replaceOnce(c, 'proxy_buffering off;', 'proxy_buffering on;') })
  if (!proxy) return
  const c = sseClient(`${proxy.url}/events`)
  t.teardown(() => c.close())
  await waitFor('the stream through nginx', () => c.open && server.stats().connections === 1)
  for (let i = 1; i <= 3; i++) {
    server.send(`event ${i}`)
    await waitFor(`event ${i} through nginx`, () => c.events.length === i, 1000)
    await new Promise((r) => setTimeout(r, 300))
  }
  t.deepEqual(c.events.map((e) => e.data), ['event 1', 'event 2', 'event 3'])
})

test('plain requests beside the stream go through the same nginx server block', async (t) => {
  t.timeout(30_000)
  const { port } = await start(t, {
    keepAlive: 0,
    onRequest: (req) => (req.path === '/health' ? { status: 200, body: 'ok' } : undefined),
  })
  const proxy = await startNginx(t, port)
  if (!proxy) return
  const res = await fetchText(`${proxy.url}/health`)
  t.is(res.status, 200)
  t.is(res.body, 'ok')
})

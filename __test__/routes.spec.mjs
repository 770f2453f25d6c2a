// Everything that is not a stream: static files, traversal attempts, 405, 404.
import test from 'ava'
import http from 'node:http'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { start, rawRequest } from './helpers.mjs'

/** A static root with a secret next to it (and a symlink pointing at it). */
function fixture(t) {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-static-'))
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }))
  const root = path.join(base, 'public')
  fs.mkdirSync(path.join(root, 'css'), { recursive: true })
  fs.mkdirSync(path.join(root, 'docs'))
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>home</title>')
  fs.writeFileSync(path.join(root, 'app.js'), 'console.log("app")')
  fs.writeFileSync(path.join(root, 'css', 'site.css'), 'body{}')
  fs.writeFileSync(path.join(root, 'data.json'), '{"a":1}')
  fs.writeFileSync(path.join(root, 'logo.svg'), '<svg/>')
  fs.writeFileSync(path.join(root, 'pic.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]))
  fs.writeFileSync(path.join(root, 'docs', 'index.html'), 'docs')
  fs.writeFileSync(path.join(root, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7))
  fs.writeFileSync(path.join(root, '.env'), 'SECRET=hidden')
  fs.writeFileSync(path.join(base, 'secret.txt'), 'TOP SECRET')
  fs.symlinkSync(path.join(base, 'secret.txt'), path.join(root, 'escape.txt'))
  fs.symlinkSync(base, path.join(root, 'up'))
  return { base, root }
}

function get(port, urlPath, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('static files are served with the right MIME types; / serves index.html', async (t) => {
  const { root } = fixture(t)
  const { port } = await start(t, { static: root, path: '/sendMessage' })
  const cases = [
    ['/', 'text/html; charset=utf-8', '<!doctype html><title>home</title>'],
    ['/index.html', 'text/html; charset=utf-8', '<!doctype html><title>home</title>'],
    ['/app.js', 'text/javascript; charset=utf-8', 'console.log("app")'],
    ['/css/site.css', 'text/css; charset=utf-8', 'body{}'],
    ['/data.json', 'application/json; charset=utf-8', '{"a":1}'],
    ['/logo.svg', 'image/svg+xml; charset=utf-8', '<svg/>'],
    ['/docs/', 'text/html; charset=utf-8', 'docs'],
    ['/app.js?v=3', 'text/javascript; charset=utf-8', 'console.log("app")'],
  ]
  for (const [p, type, body] of cases) {
    const res = await get(port, p)
    t.is(res.status, 200, p)
    t.is(res.headers['content-type'], type, p)
    t.is(res.body.toString(), body, p)
    t.is(res.headers['x-content-type-options'], 'nosniff')
  }
  const png = await get(port, '/pic.png')
  t.is(png.headers['content-type'], 'image/png')
  t.deepEqual([...png.body], [0x89, 0x50, 0x4e, 0x47])
})

test('a large file streams whole; HEAD sends its length and no body; If-Modified-Since gives 304', async (t) => {
  const { root } = fixture(t)
  const { port } = await start(t, { static: root })
  const big = await get(port, '/big.bin')
  t.is(big.status, 200)
  t.is(big.body.length, 3 * 1024 * 1024 + 17)
  t.true(big.body.every((b) => b === 7))
  const head = await get(port, '/big.bin', 'HEAD')
  t.is(head.headers['content-length'], String(3 * 1024 * 1024 + 17))
  t.is(head.body.length, 0)
  const lastModified = big.headers['last-modified']
  t.truthy(lastModified)
  const cached = await new Promise((resolve) => {
    http.get({ host: '127.0.0.1', port, path: '/big.bin', headers: { 'if-modified-since': lastModified }, agent: false }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
  })
  t.is(cached, 304)
})

test('a directory without its trailing slash redirects to it', async (t) => {
  const { root } = fixture(t)
  const { port } = await start(t, { static: root })
  const res = await get(port, '/docs?x=1')
  t.is(res.status, 301)
  t.is(res.headers.location, '/docs/?x=1')
})

test('no request reads outside the static root: .., %2e%2e, %2f, backslash, absolute, symlinks, dotfiles', async (t) => {
  const { base, root } = fixture(t)
  const { port } = await start(t, { static: root })
  const attempts = [
    '/../secret.txt',
    '/docs/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/.%2e/secret.txt',
    '/%2e%2e%2fsecret.txt',
    '/docs%2f..%2f..%2fsecret.txt',
    '/..%5csecret.txt',
    '/..\\secret.txt',
    '//secret.txt',
    `/${base}/secret.txt`,
    `${base}/secret.txt`,
    '/escape.txt',
    '/up/secret.txt',
    '/.env',
    '/%2eenv',
    '/index.html%00.txt',
  ]
  for (const p of attempts) {
    // Raw bytes, so nothing normalises the path on the way.
    const c = rawRequest(port, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    await c.ended()
    const status = Number(c.text().slice(9, 12))
    t.true([400, 404].includes(status), `${p} -> ${status}`)
    t.false(c.text().includes('TOP SECRET'), p)
    t.false(c.text().includes('SECRET=hidden'), p)
  }
})

test('a non-GET on the stream path is 405 with Allow; unknown paths are 404', async (t) => {
  const { root } = fixture(t)
  const { port } = await start(t, { static: root, path: '/sendMessage' })
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
    const res = await get(port, '/sendMessage', method)
    t.is(res.status, 405, method)
    t.is(res.headers.allow, 'GET, HEAD')
  }
  t.is((await get(port, '/index.html', 'POST')).status, 405)
  t.is((await get(port, '/missing.html')).status, 404)
})

test('without a static directory every other path is 404', async (t) => {
  const { port } = await start(t)
  const res = await get(port, '/')
  t.is(res.status, 404)
  t.is((await get(port, '/anything')).status, 404)
})

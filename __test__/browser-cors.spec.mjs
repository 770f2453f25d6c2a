// CORS in a real browser: a page on one origin opens an EventSource with
// `withCredentials` to a stream on another origin, cookie and all.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { launchChromium, start } from './helpers.mjs'

test('a cross-origin page receives events with withCredentials; a page from another origin is refused', async (t) => {
  t.timeout(60_000)
  const pageHtml = `<!doctype html><meta charset="utf-8"><title>cors</title><body><script>
    const params = new URLSearchParams(location.search)
    window.log = []
    const es = new EventSource(params.get('stream'), { withCredentials: true })
    es.onopen = () => log.push('open')
    es.onmessage = (e) => log.push('message:' + e.data)
    es.onerror = () => { log.push('error'); es.close() }
  </script></body>`
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-cors-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(path.join(dir, 'index.html'), pageHtml)

  // Two page origins (two ports), and the stream server on a third.
  const allowedPage = await start(t, { static: dir })
  const otherPage = await start(t, { static: dir })
  const cookies = []
  const streams = await start(t, {
    keepAlive: 0,
    cors: { origin: [allowedPage.url], credentials: true },
    onRequest: (req) => (req.path === '/login' ? { headers: { 'Set-Cookie': 'session=s3cret; Path=/; SameSite=Lax' }, body: 'logged in' } : undefined),
    onConnect: (req) => {
      cookies.push(req.headers.cookie)
      return req.headers.cookie?.includes('session=s3cret') ? true : { status: 401 }
    },
    onConnection: () => setTimeout(() => streams.server.send('hello cross-origin'), 50),
  })

  const browser = await launchChromium(t, [])
  if (!browser) return
  const context = await browser.newContext()
  const page = await context.newPage()
  // Log in on the stream origin: its cookie is now in the browser.
  await page.goto(`${streams.url}/login`)
  t.regex(await page.textContent('body'), /logged in/)

  await page.goto(`${allowedPage.url}/?stream=${encodeURIComponent(`${streams.url}/events`)}`)
  await page.waitForFunction(() => window.log.includes('message:hello cross-origin'), null, { timeout: 15_000 })
  t.deepEqual(await page.evaluate(() => window.log), ['open', 'message:hello cross-origin'])
  t.true(cookies[0]?.includes('session=s3cret'), 'the cookie was sent with the stream request')

  const other = await context.newPage()
  await other.goto(`${otherPage.url}/?stream=${encodeURIComponent(`${streams.url}/events`)}`)
  await other.waitForFunction(() => window.log.includes('error'), null, { timeout: 15_000 })
  t.deepEqual(await other.evaluate(() => window.log), ['error'])
  t.is(streams.server.stats().denied, 1, 'the other origin was refused')
})

// A browser holding 10 EventSources on one HTTPS origin: over HTTP/2 they
// share one connection instead of starving at HTTP/1.1's 6 per origin.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createServer, launchChromium, makeCert, waitFor } from './helpers.mjs'

test('Chromium holds 10 EventSources on one origin over h2, all receiving live events', async (t) => {
  t.timeout(60_000)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-h2-page-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  fs.writeFileSync(
    path.join(dir, 'index.html'),
    `<!doctype html><meta charset="utf-8"><title>ten streams</title><script>
      window.got = Array.from({ length: 10 }, () => [])
      window.opened = 0
      for (let i = 0; i < 10; i++) {
        const es = new EventSource('/events?n=' + i)
        es.onopen = () => window.opened++
        es.onmessage = (e) => window.got[i].push(e.data)
      }
    </script>`,
  )
  const versions = []
  const server = createServer({ static: dir, keepAlive: 0, tls: makeCert(), onConnection: (c) => versions.push(c.httpVersion) })
  const { port } = await server.listen(0, '127.0.0.1')
  t.teardown(() => server.close())

  const browser = await launchChromium(t, ['--ignore-certificate-errors'])
  if (!browser) return
  const page = await browser.newPage()
  await page.goto(`https://127.0.0.1:${port}/`)
  await page.waitForFunction(() => window.opened === 10, null, { timeout: 15_000 })
  await waitFor('10 streams on the server', () => server.stats().connections === 10)
  for (let i = 0; i < 3; i++) server.send(`tick ${i}`)
  await page.waitForFunction(() => window.got.every((g) => g.length === 3), null, { timeout: 15_000 })
  const got = await page.evaluate(() => window.got)
  t.true(got.every((g) => g.join() === 'tick 0,tick 1,tick 2'))
  t.is(await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol), 'h2')
  t.is(versions.length, 10)
  t.true(versions.every((v) => v === '2'), `all streams over HTTP/2: ${versions}`)
})

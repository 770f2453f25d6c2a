// CORS: the right Access-Control-Allow-* headers on streams and routes,
// preflights, and never `*` together with credentials.
import test from 'ava'
import { createServer, start, fetchText, waitFor } from './helpers.mjs'

const from = (origin, extra = {}) => ({ headers: { origin, ...extra } })

test("origin '*' without credentials answers *", async (t) => {
  const { url } = await start(t, { cors: { origin: '*' }, onRequest: () => ({ body: 'ok' }) })
  const res = await fetchText(`${url}/api`, from('http://a.test'))
  t.is(res.headers['access-control-allow-origin'], '*')
  t.is(res.headers['access-control-allow-credentials'], undefined)
  const noOrigin = await fetchText(`${url}/api`)
  t.is(noOrigin.headers['access-control-allow-origin'], '*', 'on every response, as the cors middleware does')
})

test('credentials echo the origin, never *, and vary on Origin', async (t) => {
  const { server, url } = await start(t, { keepAlive: 0, cors: { origin: '*', credentials: true } })
  const req = await new Promise((resolve) => {
    import('node:http').then(({ default: http }) => {
      const r = http.get(`${url}/events`, { headers: { origin: 'http://app.test' }, agent: false }, (res) => {
        resolve(res.headers)
        r.destroy()
      })
    })
  })
  t.is(req['access-control-allow-origin'], 'http://app.test')
  t.is(req['access-control-allow-credentials'], 'true')
  t.is(req.vary, 'Origin')
  t.is(req['content-type'], 'text/event-stream')
  await waitFor('gone', () => server.stats().connections === 0)
})

test('a list of origins allows only those; others get 403 on streams and routes', async (t) => {
  const { server, url } = await start(t, {
    cors: { origin: ['http://ok.test', 'https://also.ok'] },
    onRequest: () => ({ body: 'route' }),
  })
  const ok = await fetchText(`${url}/api`, from('https://also.ok'))
  t.is(ok.status, 200)
  t.is(ok.headers['access-control-allow-origin'], 'https://also.ok')
  const bad = await fetchText(`${url}/api`, from('http://evil.test'))
  t.is(bad.status, 403)
  t.is(bad.headers['access-control-allow-origin'], undefined)
  const badStream = await fetchText(`${url}/events`, from('http://evil.test'))
  t.is(badStream.status, 403)
  t.is(server.stats().denied, 1)
  // Same-origin requests (a page's own fetch sends Origin too) are not cross-origin.
  const port = new URL(url).port
  const same = await fetchText(`${url}/api`, from(`http://127.0.0.1:${port}`))
  t.is(same.status, 200)
})

test('an origin function (sync or async) decides; preflights answer 204 with the allowed methods and headers', async (t) => {
  const asked = []
  const { url } = await start(t, {
    cors: {
      origin: async (origin) => {
        asked.push(origin)
        return origin.endsWith('.trusted.test')
      },
      maxAge: 120,
    },
    onRequest: () => ({ body: 'ok' }),
  })
  const pre = await fetchText(`${url}/publish`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.trusted.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, last-event-id' },
  })
  t.is(pre.status, 204)
  t.is(pre.headers['access-control-allow-origin'], 'https://app.trusted.test')
  t.regex(pre.headers['access-control-allow-methods'], /POST/)
  t.is(pre.headers['access-control-allow-headers'], 'content-type, last-event-id')
  t.is(pre.headers['access-control-max-age'], '120')
  const denied = await fetchText(`${url}/publish`, { method: 'OPTIONS', headers: { origin: 'https://evil.test', 'access-control-request-method': 'POST' } })
  t.is(denied.status, 403)
  t.deepEqual(asked, ['https://app.trusted.test', 'https://evil.test'])
})

test('cors options are validated', (t) => {
  t.throws(() => createServer({ cors: true }), { instanceOf: TypeError, message: /options\.cors must be an object/ })
  t.throws(() => createServer({ cors: { origin: 'example.com' } }), { instanceOf: TypeError, message: /cors\.origin entries must be origins/ })
  t.throws(() => createServer({ cors: { origin: '*', credentials: 'yes' } }), { instanceOf: TypeError, message: /cors\.credentials must be a boolean/ })
  t.throws(() => createServer({ cors: { orgin: '*' } }), { instanceOf: TypeError, message: /unknown field 'orgin'/ })
})

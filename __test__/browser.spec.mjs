// End-to-end: the clock demo (examples/clock) in a real headless Chromium.
// Needs /usr/bin/chromium; install it with scripts/ensure-chromium.sh.
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const CHROMIUM = '/usr/bin/chromium'
const DEMO = fileURLToPath(new URL('../examples/clock/server.mjs', import.meta.url))
const COMMENT = "'这是注释！'"

const withTimeout = (promise, ms, what) => {
  let timer
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** Start the demo as a child process; resolve with its URL once it prints the listening line. */
function startDemo(t) {
  const child = spawn(process.execPath, [DEMO], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', INTERVAL_MS: '200' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const output = { text: '' }
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])))

  // Fallback cleanup: kill exactly this child, by its PID (via the ChildProcess handle).
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await withTimeout(exited, 5000, 'demo exit after SIGKILL').catch(() => {})
    }
  })

  const url = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output.text += chunk
      const m = /hyper-sse clock demo listening on (http:\/\/\S+\/)/.exec(output.text)
      if (m) resolve(m[1])
    }
    child.stdout.setEncoding('utf8').on('data', onData)
    child.stderr.setEncoding('utf8').on('data', onData)
    child.on('error', reject)
    child.on('exit', (code, signal) =>
      reject(new Error(`demo exited early (code ${code}, signal ${signal}); output:\n${output.text}`)),
    )
  })
  return { child, exited, output, url: withTimeout(url, 15000, 'demo listening line') }
}

/** Read the raw text/event-stream until `needle` appears (or the time runs out). */
async function readRawStream(url, needle, ms) {
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(), ms)
  let text = ''
  let res
  try {
    res = await fetch(url, { headers: { accept: 'text/event-stream' }, signal: ac.signal })
    const decoder = new TextDecoder()
    for await (const chunk of res.body) {
      text += decoder.decode(chunk, { stream: true })
      if (text.includes(needle)) break
    }
  } catch (err) {
    if (err.name !== 'AbortError') throw err
  } finally {
    clearTimeout(timer)
    ac.abort()
  }
  return { status: res?.status, contentType: res?.headers.get('content-type'), text }
}

test('clock demo: EventSource in Chromium receives messages and myEvent events', async (t) => {
  t.timeout(55000)

  if (!existsSync(CHROMIUM)) {
    t.fail(`${CHROMIUM} not found: run scripts/ensure-chromium.sh (as root) to install Chromium, then re-run this test`)
    return
  }

  const demo = startDemo(t)
  const base = await demo.url
  t.regex(base, /^http:\/\/127\.0\.0\.1:\d+\/$/)
  t.log(`demo at ${base}`)

  // The wire format: comment line and named event, as in the original Node server.
  const raw = await readRawStream(new URL('/sendMessage', base), 'event: myEvent', 10000)
  t.is(raw.status, 200)
  t.regex(raw.contentType ?? '', /^text\/event-stream/)
  t.true(raw.text.includes(`: ${COMMENT}`), `comment line missing in raw stream:\n${raw.text}`)
  t.regex(raw.text, /event: ?myEvent\r?\n(id: ?[^\n]*\r?\n)?data: ?\S/)

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 20000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
  })
  t.teardown(() => withTimeout(browser.close(), 10000, 'browser.close()').catch(() => {}))

  const page = await browser.newPage()
  const consoleLines = []
  page.on('console', (msg) => consoleLines.push(msg.text()))
  const pageErrors = []
  page.on('pageerror', (err) => pageErrors.push(err.message))

  const response = await page.goto(base, { waitUntil: 'domcontentloaded', timeout: 15000 })
  t.is(response?.status(), 200)
  t.regex(response?.headers()['content-type'] ?? '', /^text\/html/)
  t.regex(await page.title(), /hyper-sse/)

  // onopen fired
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'open', null, {
    timeout: 15000,
  })
  // at least 3 unnamed messages and 3 myEvent events
  await page.waitForFunction(
    () =>
      document.querySelectorAll('#messages li').length >= 3 &&
      document.querySelectorAll('#myEvents li').length >= 3,
    null,
    { timeout: 15000 },
  )

  const messages = await page.$$eval('#messages li', (els) => els.map((el) => el.textContent))
  const myEvents = await page.$$eval('#myEvents li', (els) => els.map((el) => el.textContent))
  t.log(`messages: ${messages.length} (latest ${JSON.stringify(messages[0])}), myEvents: ${myEvents.length} (latest ${JSON.stringify(myEvents[0])})`)

  for (const data of [...messages, ...myEvents]) {
    t.true(data.length > 0, 'empty event data')
    t.false(data.includes('这是注释'), `the comment must not be delivered as data: ${data}`)
  }
  // toLocaleTimeString() vs toLocaleString(): the date string carries more than the time string
  t.true(myEvents[0].length > messages[0].length, `myEvent ${myEvents[0]} vs message ${messages[0]}`)

  // The seed's console.log calls ran: "Server open", and e.data for both kinds of events.
  t.true(consoleLines.includes('Server open'), `console: ${JSON.stringify(consoleLines.slice(0, 10))}`)
  for (const data of [...messages, ...myEvents]) {
    t.true(consoleLines.includes(data), `console.log(e.data) not seen for ${JSON.stringify(data)}`)
  }
  t.false(consoleLines.includes('Error'), `onerror fired: ${JSON.stringify(consoleLines)}`)
  t.deepEqual(pageErrors, [])
  t.is(await page.textContent('#status'), 'open')

  // Graceful shutdown of the demo on SIGTERM (the teardown SIGKILLs it if this fails).
  await browser.close()
  demo.child.kill('SIGTERM')
  const [code, signal] = await withTimeout(demo.exited, 10000, 'demo exit after SIGTERM')
  t.is(signal, null, `demo output:\n${demo.output.text}`)
  t.is(code, 0, `demo output:\n${demo.output.text}`)
})

// The README's examples are programs a TypeScript user will paste: every
// ```js and ```ts block of README.md must compile with `tsc --strict` against
// the package as installed (node_modules/hyper-sse is a symlink to this repo,
// so `exports` and index.d.ts resolve as they would for a user), under both
// `moduleResolution: node16` (module node16) and `bundler` (module esnext).
//
// Checked: fences ```js, ```javascript, ```mjs, ```ts, ```typescript, ```mts.
// Not checked: ```sh (shell), fences with no language (the source layout,
// the backplane diagram) and any other language (output, config).
//
// A snippet may elide context that the text around it explains (`server`
// and `sse` are servers made earlier; `app` is the Express app; `sessions`,
// `parseCookie`, `llm`, `currentState` and `page` are "your code"). For
// each such identifier the snippet uses without declaring, PRELUDE below
// gives it a minimal type, prepended to that snippet only; nothing is
// typed `any`. Everything else a snippet must declare or import itself.
//
// Also here: index.d.ts names Node's types itself (`/// <reference
// types="node" />`), so it compiles where @types/node is installed but not
// in the program's `types`; and the shapes the README documents agree with
// what the addon returns at run time.
import test from 'ava'
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from '../index.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const tscBin = fs.realpathSync(path.join(root, 'node_modules', '.bin', 'tsc'))

const CHECKED = new Set(['js', 'javascript', 'mjs', 'ts', 'typescript', 'mts'])

/** Every fenced block of a Markdown text: its language and first line. */
function codeBlocks(markdown) {
  const blocks = []
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i])
    if (!open) continue
    const fence = open[1]
    const body = []
    let j = i + 1
    while (j < lines.length && !lines[j].startsWith(fence)) body.push(lines[j++])
    blocks.push({ lang: open[2].toLowerCase(), line: i + 2, code: body.join('\n') })
    i = j
  }
  return blocks
}

// Identifiers some snippets take from the surrounding text, with the
// smallest honest type for each. `needs` pulls in other entries first.
const PRELUDE = {
  createServer: { code: "import { createServer } from 'hyper-sse'" },
  server: { code: "declare const server: import('hyper-sse').Server" },
  sse: { code: "declare const sse: import('hyper-sse').Server" },
  http: { code: "import http from 'node:http'" },
  // The Express app of the first "keep your server" example.
  app: { code: "declare const app: import('express').Express" },
  requireUser: { code: "declare const requireUser: import('express').RequestHandler" },
  page: { code: 'declare const page: string' },
  sessions: { code: 'declare const sessions: { lookup(token: string): Promise<User | undefined> }' },
  // Like the `cookie` package's parse().
  parseCookie: { code: 'declare function parseCookie(header: string): Record<string, string | undefined>' },
  llm: { code: 'declare const llm: { stream(prompt: string): AsyncIterable<string> }' },
  currentState: { code: 'declare function currentState(): unknown' },
}

// Shared by every snippet: the app's user, and what its auth middleware
// adds to Express's request (after `requireUser`, `req.user` is set).
const GLOBALS = `interface User { id: string; banned?: boolean }
declare namespace Express { interface Request { user: User } }
`

const escape = (s) => s.replace(/[$]/g, '\\$&')

/** `name` appears as an identifier (not as a property after a dot). */
const uses = (code, name) => new RegExp(`(?<![\\w$.])${escape(name)}(?![\\w$])`).test(code)

/** The snippet binds `name` itself (a declaration or an import). */
const declares = (code, name) =>
  new RegExp(`\\b(?:const|let|var|function|class)\\s+${escape(name)}(?![\\w$])`).test(code) ||
  new RegExp(`\\bimport\\s[^;]*?(?<![\\w$])${escape(name)}(?![\\w$])[^;]*?\\bfrom\\b`).test(code)

function preludeFor(code) {
  return Object.entries(PRELUDE)
    .filter(([name]) => uses(code, name) && !declares(code, name))
    .map(([, entry]) => entry.code)
}

const MODES = [
  { name: 'node16', module: 'node16', moduleResolution: 'node16' },
  { name: 'bundler', module: 'esnext', moduleResolution: 'bundler' },
]

/** A scratch project whose node_modules has hyper-sse (this repo) and the repo's own packages. */
function makeProject(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-readme-types-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const modules = path.join(dir, 'node_modules')
  fs.mkdirSync(modules)
  for (const entry of fs.readdirSync(path.join(root, 'node_modules'))) {
    if (entry.startsWith('.')) continue
    fs.symlinkSync(path.join(root, 'node_modules', entry), path.join(modules, entry))
  }
  fs.symlinkSync(root, path.join(modules, 'hyper-sse'), 'dir')
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'readme-types', private: true, type: 'module' }))
  return dir
}

function tsc(dir, config) {
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(config, null, 2))
  return new Promise((resolve) => {
    execFile(process.execPath, [tscBin, '-p', dir, '--strict', '--noEmit', '--pretty', 'false'],
      { cwd: dir, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        resolve({ code: error ? error.code : 0, out: stdout + stderr })
      })
  })
}

const compilerOptions = (mode) => ({
  strict: true,
  noEmit: true,
  target: 'es2022',
  lib: ['es2022'],
  module: mode.module,
  moduleResolution: mode.moduleResolution,
  moduleDetection: 'force',
  // As in most projects: the frameworks' own .d.ts files need the DOM
  // library (hono) or other @types versions (@types/koa); they are not
  // ours. index.d.ts itself is checked with skipLibCheck off below.
  skipLibCheck: true,
})

const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
const snippets = codeBlocks(readme).filter((b) => CHECKED.has(b.lang))

test('the README has code examples to check', (t) => {
  t.true(snippets.length >= 10, `found ${snippets.length} js/ts blocks`)
})

test('index.d.ts starts with a reference to Node\'s types', (t) => {
  const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8')
  t.true(dts.startsWith('/// <reference types="node" />\n'), dts.slice(0, 200))
})

for (const mode of MODES) {
  test(`every README example compiles under tsc --strict (moduleResolution ${mode.name})`, async (t) => {
    const dir = makeProject(t)
    const files = []
    fs.writeFileSync(path.join(dir, 'globals.d.ts'), GLOBALS)
    for (const [i, s] of snippets.entries()) {
      const prelude = preludeFor(s.code)
      const file = `readme-${String(i + 1).padStart(2, '0')}-line-${s.line}.mts`
      fs.writeFileSync(path.join(dir, file), [...prelude, s.code, ''].join('\n'))
      files.push({ file, snippet: s, offset: prelude.length })
    }
    const { code, out } = await tsc(dir, { compilerOptions: compilerOptions(mode), files: ['globals.d.ts', ...files.map((f) => f.file)] })
    // Point each error at its README line.
    const report = out.split('\n').filter(Boolean).map((line) => {
      const m = /^(readme-\d+-line-\d+\.mts)\((\d+),(\d+)\): (.*)$/.exec(line)
      const f = m && files.find((x) => x.file === m[1])
      if (!f) return line
      const inSnippet = Number(m[2]) - f.offset
      const where = inSnippet >= 1 ? `README.md:${f.snippet.line + inSnippet - 1}` : `prelude of README.md:${f.snippet.line}`
      return `${where}:${m[3]} ${m[4]}`
    })
    t.is(code, 0, report.join('\n'))
    t.deepEqual(report, [])
  })
}

test('index.d.ts compiles where @types/node is installed but not listed in types', async (t) => {
  const dir = makeProject(t)
  fs.writeFileSync(path.join(dir, 'main.mts'), [
    "import { createServer, type ServerStats } from 'hyper-sse'",
    'const stats: ServerStats = createServer().stats()',
    'export const open: number = stats.connections',
    '',
  ].join('\n'))
  for (const mode of MODES) {
    const { code, out } = await tsc(dir, { compilerOptions: { ...compilerOptions(mode), types: [], skipLibCheck: false }, files: ['main.mts'] })
    t.is(code, 0, `${mode.name}:\n${out}`)
  }
})

test('stats().backplane.lastError is null until Redis fails, then the error text, as documented', async (t) => {
  // Nothing listens on port 1: the backplane cannot reach Redis.
  const errors = []
  const server = createServer({ redis: { url: 'redis://127.0.0.1:1' }, onError: (e, where) => errors.push(where) })
  t.teardown(() => server.close())
  const before = server.stats().backplane
  t.true(Object.hasOwn(before, 'lastError'))
  t.is(before.lastError, null)
  // A process that only sends connects in the background on its first send.
  server.send('x')
  const deadline = Date.now() + 10000
  while ((server.stats().backplane.lastError === null || errors.length === 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const after = server.stats().backplane
  t.is(typeof after.lastError, 'string')
  t.regex(after.lastError, /cannot connect to Redis/)
  t.is(after.state, 'reconnecting')
  t.deepEqual(errors, ['redis'])
})

test('a second listen() rejects with ERR_SERVER_ALREADY_LISTEN, as documented', async (t) => {
  const server = createServer()
  t.teardown(() => server.close())
  await server.listen(0, '127.0.0.1')
  const err = await t.throwsAsync(server.listen(0, '127.0.0.1'))
  t.is(err.code, 'ERR_SERVER_ALREADY_LISTEN')
  t.true(readme.includes("'ERR_SERVER_ALREADY_LISTEN'"), 'README.md documents it')
  t.true(fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8').includes("'ERR_SERVER_ALREADY_LISTEN'"), 'index.d.ts documents it')
})

// examples/docker/Dockerfile is not built here (CI's machine has no Docker
// daemon); this checks what can be checked without one: every instruction is
// one Docker knows, the stages are the ones the README describes (a Debian
// Node 20 runtime that installs hyper-sse from npm, no Rust anywhere), and
// every file it copies is in the build context and not excluded by
// .dockerignore. The registry test runs its server.mjs and HEALTHCHECK.
import test from 'ava'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const context = path.join(root, 'examples', 'docker')
const KNOWN = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL'])

/** Instructions with line continuations joined and comments dropped: [{ op, args, line }]. */
function parseDockerfile(text) {
  const out = []
  let pending = null
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim()
    if (pending === null && (line === '' || line.startsWith('#'))) return
    if (pending !== null && line.startsWith('#')) return
    const joined = pending === null ? { text: line, line: i + 1 } : { ...pending, text: `${pending.text} ${line}` }
    if (line.endsWith('\\')) {
      pending = { ...joined, text: joined.text.slice(0, -1).trimEnd() }
      return
    }
    pending = null
    const m = /^(\S+)\s*(.*)$/.exec(joined.text)
    out.push({ op: m[1].toUpperCase(), args: m[2], line: joined.line })
  })
  if (pending !== null) throw new Error(`line ${pending.line}: a continuation with nothing after it`)
  return out
}

const dockerfile = fs.readFileSync(path.join(context, 'Dockerfile'), 'utf8')
const instructions = parseDockerfile(dockerfile)
const stages = []
for (const ins of instructions) {
  if (ins.op === 'FROM') stages.push({ from: ins, body: [] })
  else stages.at(-1)?.body.push(ins)
}

test('every instruction is a Dockerfile instruction, and the file starts with FROM', (t) => {
  for (const ins of instructions) t.true(KNOWN.has(ins.op), `line ${ins.line}: unknown instruction ${ins.op}`)
  t.is(instructions[0].op, 'FROM')
})

test('two named stages; the runtime is node:20-bookworm-slim, runs as node, exec-form CMD', (t) => {
  t.is(stages.length, 2)
  for (const s of stages) t.regex(s.from.args, /^node:20-bookworm-slim AS \w+$/i, `line ${s.from.line}`)
  const runtime = stages.at(-1)
  t.regex(runtime.from.args, / AS runtime$/i)
  const ops = (s, op) => s.body.filter((i) => i.op === op)
  t.deepEqual(ops(runtime, 'USER').map((i) => i.args), ['node'])
  const cmd = ops(runtime, 'CMD')
  t.is(cmd.length, 1)
  t.deepEqual(JSON.parse(cmd[0].args), ['node', 'server.mjs'])
  t.deepEqual(ops(runtime, 'STOPSIGNAL').map((i) => i.args), ['SIGTERM'])
  t.true(ops(runtime, 'EXPOSE').some((i) => i.args === '3000'))
  t.regex(ops(runtime, 'ENV').map((i) => i.args).join(' '), /\bPORT=3000\b/)
  // COPY --from names an earlier stage.
  const names = stages.map((s) => / AS (\w+)$/i.exec(s.from.args)[1])
  for (const ins of runtime.body.filter((i) => i.op === 'COPY' && i.args.startsWith('--from='))) {
    t.true(names.slice(0, -1).includes(/^--from=(\S+)/.exec(ins.args)[1]), `line ${ins.line}`)
  }
})

test('hyper-sse comes from the npm registry: npm install in the image, no Rust toolchain in any stage', (t) => {
  const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args)
  t.true(runs.some((r) => /^npm (install|ci)\b.*--omit=dev/.test(r)), runs.join('\n'))
  t.false(/cargo|rustup|rustc|build-essential/.test(instructions.map((i) => i.args).join('\n')))
  const app = JSON.parse(fs.readFileSync(path.join(context, 'package.json'), 'utf8'))
  t.regex(app.dependencies?.['hyper-sse'] ?? '', /^\^?\d+\.\d+\.\d+$/)
  t.is(app.type, 'module')
})

test('every file a COPY takes from the context exists and is not excluded by .dockerignore', (t) => {
  const ignored = fs.readFileSync(path.join(context, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  const matches = (pattern, file) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`).test(file)
  const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from='))
  t.true(copies.length > 0)
  for (const ins of copies) {
    const sources = ins.args.split(/\s+/).slice(0, -1)
    for (const file of sources) {
      t.true(fs.existsSync(path.join(context, file)), `line ${ins.line}: ${file} is not in examples/docker/`)
      t.false(ignored.some((p) => matches(p, file)), `line ${ins.line}: ${file} is excluded by .dockerignore`)
    }
  }
  t.true(ignored.includes('node_modules'), 'node_modules (this machine\'s platform binaries) must stay out of the image')
})

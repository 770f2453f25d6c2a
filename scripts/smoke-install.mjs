#!/usr/bin/env node
// Installs the tarballs in DIR (what scripts/release.mjs wrote) into a fresh
// project and checks that the package works there as a user gets it: it
// loads through `require` and `import`, and a server it creates answers an
// EventSource request with the event it was sent. The release workflow runs
// this on every runner that can execute a target (Linux in old-glibc and
// Alpine containers, macOS, Windows), so each binary is proved on its own
// platform before anything is published. Needs only node and npm.
//
// Usage: node scripts/smoke-install.mjs DIR
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'

// Run inside the fresh project: a stream request must get the event sent.
const CHECK = `
const http = require('node:http')
const { createServer } = require('hyper-sse')
async function main() {
  const esm = await import('hyper-sse')
  if (esm.createServer !== createServer) throw new Error('import and require disagree')
  const server = createServer({ path: '/events', keepAlive: 0 })
  const { port } = await server.listen(0, '127.0.0.1')
  const body = await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/events' }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
        if (text.includes('\\n\\n')) { res.destroy(); resolve(text) }
      })
      setTimeout(() => server.send('smoke'), 100)
    }).on('error', reject)
  })
  await server.close()
  if (!/^data: ?smoke$/m.test(body)) throw new Error('unexpected stream: ' + JSON.stringify(body))
  console.log('smoke-install: ' + process.platform + ' ' + process.arch + ' node ' + process.version + ': loaded, streamed an event')
}
main().catch((err) => { console.error(err); process.exit(1) })
`

function main(dir) {
  if (!dir) throw new Error('usage: node scripts/smoke-install.mjs DIR')
  const tarballs = fs.readdirSync(dir).filter((f) => f.endsWith('.tgz')).map((f) => path.resolve(dir, f))
  if (tarballs.length === 0) throw new Error(`smoke-install: no .tgz in ${dir}`)
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-smoke-'))
  try {
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'smoke', version: '1.0.0', private: true }))
    run('npm', ['install', '--no-audit', '--no-fund', ...tarballs], project)
    fs.writeFileSync(path.join(project, 'check.cjs'), CHECK)
    run(process.execPath, ['check.cjs'], project)
  } finally {
    fs.rmSync(project, { recursive: true, force: true })
  }
}

function run(command, args, cwd) {
  const r = spawnSync(command, args, { cwd, stdio: 'inherit', shell: process.platform === 'win32' && command === 'npm' })
  if (r.error || r.status !== 0) throw new Error(`smoke-install: ${command} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`)
}

try {
  main(process.argv[2])
} catch (error) {
  console.error(error.message)
  process.exitCode = 1
}

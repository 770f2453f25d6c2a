// What a user gets from `npm install hyper-sse`, proved end to end: the
// tarballs the release would publish (`npm run release:local`, for this
// machine's target: the root package and the linux-x64-gnu one) are published
// to a private registry (verdaccio 6.8.0 on loopback, with no uplinks, so
// nothing can come from elsewhere), then installed into a fresh project whose
// PATH has no cargo or rustc. The installed package must load from ESM and
// CommonJS, type-check under `tsc --strict` (node16 and bundler resolution)
// and run the clock demo, answering a stream.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { sseClient, fetchText, waitFor, freePort } from './helpers.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const VERDACCIO = '6.8.0'
// Cached in the repository's ignored tmp/, so reruns skip the install.
const verdaccioDir = path.join(root, 'tmp', `verdaccio-${VERDACCIO}`)
const verdaccioBin = path.join(verdaccioDir, 'node_modules', 'verdaccio', 'bin', 'verdaccio')
const tsc = path.join(root, 'node_modules', '.bin', 'tsc')
// Only node's own directory and the system's: no ~/.cargo/bin.
const cleanPath = [...new Set([path.dirname(process.execPath), '/usr/bin', '/bin'])].join(':')

/** Runs a command to completion; throws with its output when it fails. */
function run(command, args, { cwd, env, timeout = 300_000 } = {}) {
  const r = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 })
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`
  if (r.error || r.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${r.error?.message ?? `exit ${r.status}`}\n${output}`)
  }
  return output
}

/** The verdaccio package, installed once into tmp/ (6.8.0 exactly: 6.10 needs Node 22). */
function ensureVerdaccio() {
  const installed = path.join(verdaccioDir, 'node_modules', 'verdaccio', 'package.json')
  if (fs.existsSync(installed) && JSON.parse(fs.readFileSync(installed, 'utf8')).version === VERDACCIO) return
  fs.mkdirSync(verdaccioDir, { recursive: true })
  run('npm', ['install', '--prefix', verdaccioDir, `verdaccio@${VERDACCIO}`, '--no-audit', '--no-fund'], { cwd: root })
}

/** Starts verdaccio on a loopback port with no uplinks; stops it by its PID when the test ends. */
async function startRegistry(t, dir) {
  ensureVerdaccio()
  const port = await freePort()
  const config = path.join(dir, 'verdaccio.yaml')
  fs.writeFileSync(config, `storage: ${path.join(dir, 'storage')}
auth:
  htpasswd:
    file: ${path.join(dir, 'htpasswd')}
    max_users: 10
packages:
  '**':
    access: $all
    publish: $all
    unpublish: $all
listen: 127.0.0.1:${port}
web:
  enable: false
log: { type: stdout, format: pretty, level: warn }
`)
  const child = spawn(process.execPath, [verdaccioBin, '--config', config], {
    cwd: dir,
    env: { PATH: cleanPath, HOME: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  let exited = false
  const exit = new Promise((resolve) => child.on('exit', () => resolve((exited = true))))
  t.teardown(async () => {
    if (exited) return
    process.kill(child.pid, 'SIGTERM')
    const stopped = await Promise.race([exit, new Promise((r) => setTimeout(() => r(false), 5000))])
    if (!stopped) {
      process.kill(child.pid, 'SIGKILL')
      await exit
    }
  })
  const url = `http://127.0.0.1:${port}`
  await waitFor('verdaccio to answer /-/ping', async () => {
    if (exited) throw new Error(`verdaccio exited at start:\n${output}`)
    return fetchText(`${url}/-/ping`).then((r) => r.status === 200, () => false)
  }, 30_000)

  // A user through the registry's own API, for the token npm publish needs.
  const body = JSON.stringify({ name: 'ci', password: 'ci-password-1', type: 'user', roles: [], date: new Date().toISOString() })
  const res = await fetchText(`${url}/-/user/org.couchdb.user:ci`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    body,
  })
  if (res.status !== 201) throw new Error(`verdaccio refused the user: ${res.status} ${res.body}`)
  const { token } = JSON.parse(res.body)
  const npmrc = path.join(dir, '.npmrc')
  fs.writeFileSync(npmrc, `registry=${url}/\n//127.0.0.1:${port}/:_authToken=${token}\n`)
  return { url, npmrc, output: () => output }
}

/** What npm run in the fresh project sees: no cargo, no rustc, no npm settings from this run. */
function cleanEnv(home) {
  return { PATH: cleanPath, HOME: home, npm_config_cache: path.join(home, '.npm'), npm_config_update_notifier: 'false' }
}

function whichOnCleanPath(command) {
  return spawnSync('/bin/sh', ['-c', `command -v ${command}`], { env: { PATH: cleanPath }, encoding: 'utf8' })
}

function packageJsonIn(tgz) {
  return JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }))
}

test('the release tarballs install from a registry with no Rust, load from ESM and CJS, type-check and run the clock demo', async (t) => {
  t.timeout(600_000)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-registry-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const home = path.join(dir, 'home')
  fs.mkdirSync(home)

  // No Rust on the PATH the install and the project run with.
  for (const tool of ['cargo', 'rustc']) {
    const found = whichOnCleanPath(tool)
    t.not(found.status, 0, `${tool} is on the clean PATH (${cleanPath}): ${found.stdout}`)
  }

  // 1. The tarballs the release would publish for this target.
  let started = Date.now()
  const out = path.join(dir, 'release')
  fs.mkdirSync(out)
  run('npm', ['run', 'release:local', '--', out], { cwd: root, timeout: 480_000 })
  t.log(`release:local took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const files = fs.readdirSync(out)
  const rootTgz = path.join(out, `hyper-sse-${pkg.version}.tgz`)
  const platformTgz = files.map((f) => path.join(out, f)).find((f) => /^hyper-sse-linux-x64-gnu-.+\.tgz$/.test(path.basename(f)))
  t.true(fs.existsSync(rootTgz), `no hyper-sse-${pkg.version}.tgz in ${JSON.stringify(files)}`)
  t.truthy(platformTgz, `no linux-x64-gnu tarball in ${JSON.stringify(files)}`)
  if (!fs.existsSync(rootTgz) || !platformTgz) return
  const rootManifest = packageJsonIn(rootTgz)
  const platformManifest = packageJsonIn(platformTgz)
  t.is(rootManifest.optionalDependencies?.[platformManifest.name], platformManifest.version,
    `the root package's optionalDependencies do not pin ${platformManifest.name}@${platformManifest.version}: ${JSON.stringify(rootManifest.optionalDependencies)}`)
  for (const script of ['preinstall', 'install', 'postinstall']) {
    t.falsy(rootManifest.scripts?.[script], `the published root package has an ${script} script`)
    t.falsy(platformManifest.scripts?.[script], `the published platform package has an ${script} script`)
  }

  // 2. A private registry with nothing in it but what is published here.
  started = Date.now()
  const registry = await startRegistry(t, dir)
  t.log(`verdaccio ${VERDACCIO} answering after ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const npmArgs = ['--registry', registry.url, '--userconfig', registry.npmrc]
  for (const tgz of [platformTgz, rootTgz]) {
    run('npm', ['publish', tgz, ...npmArgs], { cwd: dir, env: cleanEnv(home) })
  }

  // 3. A fresh project installs it, with no Rust toolchain in reach.
  const app = path.join(dir, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }, null, 2))
  started = Date.now()
  const installLog = run('npm', ['install', 'hyper-sse', '--no-audit', '--no-fund', ...npmArgs], { cwd: app, env: cleanEnv(home) })
  t.log(`npm install took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  t.false(/script/i.test(installLog), `npm install printed a warning about scripts:\n${installLog}`)
  t.false(/\bnpm (warn|error)\b/i.test(installLog), `npm install warned:\n${installLog}`)
  const installed = path.join(app, 'node_modules')
  t.is(JSON.parse(fs.readFileSync(path.join(installed, 'hyper-sse', 'package.json'), 'utf8')).version, pkg.version)
  t.true(fs.existsSync(path.join(installed, platformManifest.name, platformManifest.main)),
    `${platformManifest.name}/${platformManifest.main} was not installed`)
  t.deepEqual(fs.readdirSync(path.join(installed, 'hyper-sse')).filter((f) => f.endsWith('.node')), [],
    'the root package carries a .node binary of its own')
  const appEnv = cleanEnv(home)
  const node = (args) => run(process.execPath, args, { cwd: app, env: appEnv, timeout: 60_000 })

  // 4. ESM and CommonJS.
  fs.writeFileSync(path.join(app, 'esm.mjs'), `import { createServer } from 'hyper-sse'
import { createRequire } from 'node:module'
const server = createServer({ keepAlive: 0 })
const { port } = await server.listen(0, '127.0.0.1')
server.send('hello')
await server.close()
console.log(JSON.stringify({ type: typeof createServer, port, from: createRequire(import.meta.url).resolve('hyper-sse') }))
`)
  const esm = JSON.parse(node(['esm.mjs']).trim().split('\n').pop())
  t.is(esm.type, 'function')
  t.true(esm.port > 0)
  t.true(esm.from.startsWith(path.join(installed, 'hyper-sse') + path.sep), esm.from)
  fs.writeFileSync(path.join(app, 'cjs.cjs'), `const { createServer } = require('hyper-sse')
const server = createServer({ keepAlive: 0 })
server.listen(0, '127.0.0.1').then(async ({ port }) => {
  await server.close()
  console.log(JSON.stringify({ type: typeof createServer, port, from: require.resolve('hyper-sse') }))
})
`)
  const cjs = JSON.parse(node(['cjs.cjs']).trim().split('\n').pop())
  t.is(cjs.type, 'function')
  t.true(cjs.port > 0)
  t.true(cjs.from.startsWith(path.join(installed, 'hyper-sse') + path.sep), cjs.from)

  // 5. The installed types under tsc --strict, both module resolutions.
  fs.writeFileSync(path.join(app, 'server.ts'), `import { createServer } from 'hyper-sse'

const server = createServer({
  path: '/events',
  keepAlive: 15_000,
  onConnect: (req) => ({ channels: ['default', \`user:\${req.headers['x-user'] ?? 'anonymous'}\`] }),
  onDisconnect: (client, reason) => console.log(client.id, reason),
})

async function main(): Promise<void> {
  const { port } = await server.listen(0, '127.0.0.1')
  const id: number = port
  server.send({ event: 'tick', data: { at: Date.now() } }, { channel: 'default' })
  server.comment('hello')
  const open: number = server.stats().connections
  console.log(id, open)
  await server.close()
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
`)
  const typeRoots = [path.join(root, 'node_modules', '@types')]
  for (const [name, module, moduleResolution] of [['node16', 'node16', 'node16'], ['bundler', 'esnext', 'bundler']]) {
    const tsconfig = path.join(app, `tsconfig.${name}.json`)
    fs.writeFileSync(tsconfig, JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', module, moduleResolution, types: ['node'], typeRoots },
      files: ['server.ts'],
    }, null, 2))
    try {
      run(process.execPath, [tsc, '-p', tsconfig], { cwd: app, env: appEnv, timeout: 120_000 })
      t.pass(`tsc --strict (${name})`)
    } catch (err) {
      t.fail(`tsc --strict with module ${module}, moduleResolution ${moduleResolution}:\n${err.message}`)
    }
  }

  // 6. The clock demo, as an application that installed the package runs it.
  for (const f of ['server.mjs', 'index.html']) fs.copyFileSync(path.join(root, 'examples', 'clock', f), path.join(app, f))
  const demo = await startApp(t, app, 'server.mjs', { ...appEnv, PORT: '0', HOST: '127.0.0.1', INTERVAL_MS: '200' },
    /listening on (http:\/\/127\.0\.0\.1:\d+)\//)
  const page = await fetchText(`${demo.url}/`)
  t.is(page.status, 200)
  t.true(page.body.includes('new EventSource("/sendMessage")'))
  const c = sseClient(`${demo.url}/sendMessage`)
  t.teardown(() => c.close())
  await waitFor('a message and a myEvent from the installed clock demo', () =>
    c.events.some((e) => e.event === undefined) && c.events.some((e) => e.event === 'myEvent'), 10_000)
  t.is(c.status, 200)
  t.is(c.headers['content-type'], 'text/event-stream')
  c.close()
  t.deepEqual(await demo.stop(), { code: 0, signal: null }, demo.output())

  // 7. The Docker example's application (examples/docker), and its HEALTHCHECK command.
  fs.copyFileSync(path.join(root, 'examples', 'docker', 'server.mjs'), path.join(app, 'docker-server.mjs'))
  const docker = await startApp(t, app, 'docker-server.mjs', { ...appEnv, PORT: '0', HOST: '127.0.0.1' }, /listening on (\d+)/)
  const dockerPort = /listening on (\d+)/.exec(docker.output())[1]
  const health = await fetchText(`http://127.0.0.1:${dockerPort}/health`)
  t.is(health.status, 200)
  t.is(JSON.parse(health.body).ok, true)
  const healthcheck = /^HEALTHCHECK\b.*?\bCMD (\[.*\])$/m.exec(fs.readFileSync(path.join(root, 'examples', 'docker', 'Dockerfile'), 'utf8'))
  t.truthy(healthcheck, 'no HEALTHCHECK ... CMD [...] in examples/docker/Dockerfile')
  if (healthcheck) {
    const [command, ...args] = JSON.parse(healthcheck[1])
    t.is(command, 'node')
    const probe = spawnSync(process.execPath, args, { env: { ...appEnv, PORT: dockerPort }, encoding: 'utf8', timeout: 10_000 })
    t.is(probe.status, 0, `the HEALTHCHECK command failed: ${probe.stdout}${probe.stderr}`)
  }
  const ticks = sseClient(`http://127.0.0.1:${dockerPort}/events`)
  t.teardown(() => ticks.close())
  await waitFor('a tick from the Docker example', () => ticks.events.some((e) => e.event === 'tick'), 5000)
  t.deepEqual(await docker.stop(), { code: 0, signal: null }, docker.output())
  await waitFor('the Docker example\'s stream to end on SIGTERM', () => ticks.ended, 5000)
})

/**
 * Runs `script` in `cwd` until its output matches `ready` (group 1: the URL);
 * `stop()` sends SIGTERM by its PID and resolves with the exit. Killed in teardown if still running.
 */
async function startApp(t, cwd, script, env, ready) {
  const child = spawn(process.execPath, [script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  let exit = null
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve((exit = { code, signal }))))
  t.teardown(async () => {
    if (exit) return
    process.kill(child.pid, 'SIGKILL')
    await exited
  })
  await waitFor(`${script} to listen`, () => {
    if (exit) throw new Error(`${script} exited: ${JSON.stringify(exit)}\n${out}`)
    return ready.test(out)
  }, 15_000)
  return {
    url: ready.exec(out)[1],
    output: () => out,
    async stop() {
      if (!exit) process.kill(child.pid, 'SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
      return exit
    },
  }
}

// What `npm run release:local` packs, read back from the tarballs: the root
// manifest a user's npm sees (no install scripts, every platform package
// pinned to this version, every file the entry loads), the linux-x64-gnu
// package (its binary needs at most glibc 2.28), and the error the entry
// throws when no binary fits.
import test from 'ava'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { checkGlibc } from '../scripts/check-glibc.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare', 'prepack', 'postpack']

let packed
/** The release tarballs, packed once for every test in this file. */
function release() {
  if (packed) return packed
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-package-'))
  const out = path.join(dir, 'out')
  const r = spawnSync(process.execPath, ['scripts/release.mjs', out], { cwd: root, encoding: 'utf8', timeout: 540_000 })
  if (r.status !== 0) throw new Error(`release.mjs failed (${r.error?.message ?? r.status}):\n${r.stdout}${r.stderr}`)
  const rootTgz = path.join(out, `${pkg.name}-${pkg.version}.tgz`)
  const platformTgz = path.join(out, `${pkg.name}-linux-x64-gnu-${pkg.version}.tgz`)
  packed = { dir, rootTgz, platformTgz, rootFiles: list(rootTgz), platformFiles: list(platformTgz), manifest: manifestOf(rootTgz) }
  return packed
}

test.after.always(() => {
  if (packed) fs.rmSync(packed.dir, { recursive: true, force: true })
})

function list(tgz) {
  return execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n').map((f) => f.replace(/^package\//, ''))
}

function manifestOf(tgz) {
  return JSON.parse(execFileSync('tar', ['-xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }))
}

/** The root tarball unpacked as npm would install it, without any platform package. */
function installRootOnly(name, edit = (m) => m) {
  const { dir, rootTgz } = release()
  const modules = path.join(dir, name, 'node_modules')
  const target = path.join(modules, pkg.name)
  fs.mkdirSync(target, { recursive: true })
  execFileSync('tar', ['-xzf', rootTgz, '-C', target, '--strip-components=1'])
  const manifestPath = path.join(target, 'package.json')
  fs.writeFileSync(manifestPath, JSON.stringify(edit(JSON.parse(fs.readFileSync(manifestPath, 'utf8')))))
  return path.dirname(modules)
}

/** Loads the package from `project` in a fresh node, reporting what it threw. */
function loadError(project) {
  const script = `try { require('${pkg.name}'); console.log('{}') } catch (e) {
    console.log(JSON.stringify({ code: e.code, message: e.message, cause: e.cause && e.cause.message })) }`
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: project, env, encoding: 'utf8' }))
}

test('the published root manifest runs no install-time script', (t) => {
  t.timeout(600_000)
  const { manifest } = release()
  for (const script of INSTALL_SCRIPTS) t.falsy(manifest.scripts?.[script], `scripts.${script} is published`)
  t.is(manifest.devDependencies, undefined)
})

test('the root manifest pins every napi target\'s package at exactly this version', (t) => {
  t.timeout(600_000)
  const { manifest } = release()
  const expected = Object.fromEntries(
    fs.readdirSync(path.join(root, 'npm')).map((dir) => [JSON.parse(fs.readFileSync(path.join(root, 'npm', dir, 'package.json'), 'utf8')).name, pkg.version]),
  )
  t.is(Object.keys(expected).length, pkg.napi.targets.length)
  t.deepEqual(manifest.optionalDependencies, expected)
})

test('the root tarball holds every file the entry and the types point at, and no binary', (t) => {
  t.timeout(600_000)
  const { manifest, rootFiles } = release()
  const needed = [manifest.main, manifest.types, manifest.exports['.'].default, manifest.exports['.'].types, 'index.js', 'package.json']
  for (const file of needed) t.true(rootFiles.includes(file.replace(/^\.\//, '')), `${file} is not in the tarball: ${rootFiles.join(', ')}`)
  t.deepEqual(rootFiles.filter((f) => f.endsWith('.node')), [])
})

test('the linux-x64-gnu package carries its stripped binary, which needs at most glibc 2.28', (t) => {
  t.timeout(600_000)
  const { dir, platformTgz, platformFiles } = release()
  const manifest = manifestOf(platformTgz)
  t.deepEqual([manifest.os, manifest.cpu, manifest.libc], [['linux'], ['x64'], ['glibc']])
  t.true(platformFiles.includes(manifest.main), `${manifest.main} is not in ${platformFiles.join(', ')}`)
  const unpacked = path.join(dir, 'platform')
  fs.mkdirSync(unpacked)
  execFileSync('tar', ['-xzf', platformTgz, '-C', unpacked])
  const binary = path.join(unpacked, 'package', manifest.main)
  const glibc = checkGlibc(binary)
  t.true(glibc.ok, `needs GLIBC_${glibc.highest}`)
  t.false(execFileSync('readelf', ['-S', '-W', binary], { encoding: 'utf8' }).includes('.symtab'), 'the binary keeps its symbol table')
})

test('without its optional dependency, the entry says which package is missing and how to get it', (t) => {
  t.timeout(600_000)
  const error = loadError(installRootOnly('omitted'))
  t.is(error.code, 'ERR_HYPER_SSE_NO_BINDING')
  t.true(error.message.includes(`${pkg.name}-linux-x64-gnu@${pkg.version}`), error.message)
  t.true(error.message.includes(process.version), error.message)
  t.regex(error.message, /linux x64, glibc \d/)
  t.true(error.message.includes('--omit=optional'), error.message)
  t.regex(error.cause, /^Cannot find native binding/)
})

test('on a platform with no prebuilt binary, the entry says to build from source with Rust', (t) => {
  t.timeout(600_000)
  const project = installRootOnly('unsupported', (m) => {
    delete m.optionalDependencies[`${pkg.name}-linux-x64-gnu`]
    return m
  })
  const error = loadError(project)
  t.is(error.code, 'ERR_HYPER_SSE_NO_BINDING')
  t.true(error.message.includes('no prebuilt binary for this platform'), error.message)
  t.true(error.message.includes('Rust >= 1.88'), error.message)
  t.true(error.message.includes(`git clone ${pkg.repository.url.replace(/^git\+/, '')}`), error.message)
})

test('an install from git: prepare says to install Rust when cargo is missing, and the binary it builds is packed', (t) => {
  // Without cargo on PATH (node's own directory and the system's only).
  const bare = [...new Set([path.dirname(process.execPath), '/usr/bin', '/bin'])].join(':')
  t.not(spawnSync('sh', ['-c', 'command -v cargo'], { env: { PATH: bare } }).status, 0, 'cargo is on the bare PATH')
  const r = spawnSync(process.execPath, ['scripts/require-rust.mjs'], { cwd: root, env: { PATH: bare }, encoding: 'utf8' })
  t.is(r.status, 1)
  t.regex(r.stderr, /building from source needs Rust >= 1\.88 \(cargo was not found on PATH\)/)
  t.regex(r.stderr, /https:\/\/rustup\.rs/)
  t.regex(r.stderr, /npm install hyper-sse/)
  // With cargo it lets the build go on.
  t.is(spawnSync(process.execPath, ['scripts/require-rust.mjs'], { cwd: root }).status, 0)
  t.is(pkg.scripts.prepare.split('&&')[0].trim(), 'node scripts/require-rust.mjs')
  // What npm packs from a clone after its build (as a git install does) keeps the binary.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  const files = info.files.map((f) => f.path)
  t.true(files.includes(`${pkg.napi.binaryName}.linux-x64-gnu.node`), files.join(', '))
  for (const file of ['binding.js', 'index.js', 'index.d.ts']) t.true(files.includes(file), `${file} is not packed`)
})

test('the published manifest lists no binary in its files (they come in the platform packages)', (t) => {
  t.timeout(600_000)
  const { manifest } = release()
  t.deepEqual(manifest.files.filter((f) => f.endsWith('.node')), [])
  t.true(pkg.files.some((f) => f.endsWith('.node')), 'the clone\'s files keep its build, for installs from git')
})

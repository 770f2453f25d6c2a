#!/usr/bin/env node
// Writes into DIR the npm tarballs a release publishes, so that a release
// made by hand and one made by .github/workflows/release.yml are the same
// files, made by the same steps:
//
//   hyper-sse-<platform>-<version>.tgz  one per target whose binary is at hand (npm/<platform>/ + the .node)
//   hyper-sse-<version>.tgz             the root package: binding.js, index.js, index.d.ts, README, and a
//                                       manifest with optionalDependencies on every target at <version>
//                                       and no scripts (npm runs none and prints no install-script warning)
//
// Why not `napi artifacts` + `napi pre-publish`: they refuse to run without
// every target's binary, so nothing can be tried before CI has built all
// eight, and they publish from the repository, whose manifest keeps
// `prepare` (a clone builds the addon with cargo on `npm install`).
//
//   npm run release:local -- DIR
//       Builds this machine's target (linux gnu: cargo-zigbuild against glibc
//       2.28, installed quietly if missing), checks its glibc needs, packs it
//       and the root package, and names the targets it could not pack.
//   node scripts/release.mjs DIR --artifacts ARTIFACTS [--all]
//       What the workflow runs: takes the binaries from ARTIFACTS (any depth,
//       as actions/download-artifact lays them out) instead of building;
//       with --all, a missing target is an error.
//
// Everything is packed with `npm pack --ignore-scripts` from a staging copy
// under the system's temporary directory; the repository is not written to
// (cargo's build cache under target/ aside).
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { checkGlibc, MAX_GLIBC } from './check-glibc.mjs'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const require = createRequire(import.meta.url)
// Lifecycle and development fields a user's install must never see.
const DEV_ONLY_FIELDS = ['scripts', 'devDependencies', 'ava']
// Its own target directory: cargo-zigbuild's compiler settings would
// otherwise invalidate the cache of the plain `napi build` every clone runs.
const ZIG_TARGET_DIR = path.join(root, 'target', `zig-glibc-${MAX_GLIBC}`)

function main(argv) {
  const options = parseArgs(argv)
  const pkg = readJson(path.join(root, 'package.json'))
  const targets = pkg.napi.targets.map((triple) => describeTarget(pkg, triple))
  checkRepository(pkg)
  prepareOutDir(options.outDir)
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-release-'))
  try {
    const binaries = options.artifacts ? findArtifacts(options.artifacts, targets) : buildLocal(pkg, targets, stage)
    const missing = targets.filter((t) => !binaries.has(t.platform))
    if (options.all && missing.length > 0) {
      throw new Error(`release: no binary for ${missing.map((t) => t.triple).join(', ')} under ${options.artifacts}`)
    }
    const packed = []
    for (const target of targets.filter((t) => binaries.has(t.platform))) {
      checkBinary(target, binaries.get(target.platform))
      packed.push(npmPack(stagePlatformPackage(pkg, target, binaries.get(target.platform), stage), options.outDir))
    }
    packed.push(npmPack(stageRootPackage(pkg, targets, stage), options.outDir))
    report(packed, missing, options.outDir)
  } finally {
    fs.rmSync(stage, { recursive: true, force: true })
  }
}

function parseArgs(argv) {
  const options = { outDir: null, artifacts: null, all: false }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--artifacts') options.artifacts = path.resolve(argv[++i] ?? '')
    else if (arg === '--all') options.all = true
    else if (!arg.startsWith('-') && options.outDir === null) options.outDir = path.resolve(arg)
    else throw usage(`unexpected argument ${arg}`)
  }
  if (options.outDir === null) throw usage('DIR is missing')
  if (options.all && !options.artifacts) throw usage('--all needs --artifacts')
  return options
}

function usage(problem) {
  return new Error(`release: ${problem}\nusage: npm run release:local -- DIR\n       node scripts/release.mjs DIR --artifacts ARTIFACTS [--all]`)
}

/** A target as the packages name it: `x86_64-unknown-linux-gnu` -> linux-x64-gnu, hyper-sse-linux-x64-gnu, hyper-sse.linux-x64-gnu.node. */
function describeTarget(pkg, triple) {
  const { parseTriple } = require('@napi-rs/cli')
  const { platformArchABI, platform, abi } = parseTriple(triple)
  return {
    triple,
    platform: platformArchABI,
    linuxGnu: platform === 'linux' && abi === 'gnu',
    packageName: `${pkg.name}-${platformArchABI}`,
    binaryFile: `${pkg.napi.binaryName}.${platformArchABI}.node`,
    npmDir: path.join(root, 'npm', platformArchABI),
  }
}

/**
 * npm's provenance check rejects a package whose `repository` is not the
 * repository the workflow runs in; say so before anything is built.
 */
function checkRepository(pkg) {
  const running = process.env.GITHUB_REPOSITORY
  if (!running || !process.env.GITHUB_ACTIONS) return
  const url = String(pkg.repository?.url ?? pkg.repository ?? '')
  if (!url.toLowerCase().includes(`github.com/${running.toLowerCase()}`)) {
    throw new Error(`release: package.json's repository (${url || 'none'}) is not github.com/${running}; npm publish --provenance would refuse it`)
  }
}

/** DIR is created if needed; old tarballs in it would be published along with the new ones, so they are refused. */
function prepareOutDir(outDir) {
  fs.mkdirSync(outDir, { recursive: true })
  const stale = fs.readdirSync(outDir).filter((f) => f.endsWith('.tgz'))
  if (stale.length > 0) throw new Error(`release: ${outDir} already holds ${stale.join(', ')}; give an empty directory`)
}

/** The binaries under ARTIFACTS, by platform; a file name can only belong to one target. */
function findArtifacts(dir, targets) {
  const byName = new Map(targets.map((t) => [t.binaryFile, t]))
  const found = new Map()
  for (const file of walk(dir)) {
    const target = byName.get(path.basename(file))
    if (!target) continue
    if (found.has(target.platform)) throw new Error(`release: two ${target.binaryFile} under ${dir}: ${found.get(target.platform)} and ${file}`)
    found.set(target.platform, file)
  }
  return found
}

function* walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) yield* walk(full)
    else if (entry.isFile()) yield full
  }
}

/** Builds the one target this machine can build, the way the workflow builds it. */
function buildLocal(pkg, targets, stage) {
  const host = hostTriple()
  const target = targets.find((t) => t.triple === host)
  if (!target) {
    console.error(`release: this machine (${host}) is none of napi.targets; only the root package is packed`)
    return new Map()
  }
  const outDir = path.join(stage, 'build')
  const args = ['build', '--platform', '--release', '--output-dir', outDir, '--no-js', '--dts', 'index.d.ts']
  if (target.linuxGnu) {
    ensureZigbuild()
    // cargo-zigbuild links against glibc 2.28's symbol versions, whatever this machine's glibc is.
    args.push('--target', `${target.triple}.${MAX_GLIBC}`, '--cross-compile', '--target-dir', ZIG_TARGET_DIR)
  } else {
    args.push('--target', target.triple)
  }
  const started = Date.now()
  console.error(`release: building ${target.triple}${target.linuxGnu ? ` for glibc ${MAX_GLIBC}` : ''} (napi ${args.join(' ')})`)
  run(process.execPath, [napiBin(), ...args], { cwd: root, quiet: true })
  console.error(`release: built in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  return new Map([[target.platform, path.join(outDir, target.binaryFile)]])
}

function hostTriple() {
  const out = run('rustc', ['-vV'], { cwd: root, capture: true })
  const host = /^host: (\S+)$/m.exec(out)
  if (!host) throw new Error(`release: rustc -vV printed no host line:\n${out}`)
  return host[1]
}

/** cargo-zigbuild and a zig for it (the PyPI wheel, which cargo-zigbuild finds as `python3 -m ziglang`). */
function ensureZigbuild() {
  if (!succeeds('cargo', ['zigbuild', '--help'])) {
    console.error('release: installing cargo-zigbuild (cargo install --locked, once)')
    run('cargo', ['install', 'cargo-zigbuild', '--locked', '--quiet'], { cwd: root, quiet: true })
  }
  if (!succeeds('zig', ['version']) && !succeeds('python3', ['-m', 'ziglang', 'version'])) {
    console.error('release: installing zig (pip install ziglang, once)')
    run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', 'ziglang'], { cwd: root, quiet: true })
  }
}

function napiBin() {
  const cliPkgPath = require.resolve('@napi-rs/cli/package.json')
  const { bin } = readJson(cliPkgPath)
  return path.join(path.dirname(cliPkgPath), typeof bin === 'string' ? bin : bin.napi)
}

/** What a published binary must be; the linux gnu ones load on glibc 2.28. */
function checkBinary(target, file) {
  if (!target.linuxGnu) return
  const { highest, ok } = checkGlibc(file)
  if (!ok) throw new Error(`release: ${file} needs GLIBC_${highest}, newer than ${MAX_GLIBC}; build it with cargo-zigbuild (${target.triple}.${MAX_GLIBC}) or --use-napi-cross`)
}

/** npm/<platform>/ plus its binary, in a directory of its own. */
function stagePlatformPackage(pkg, target, binary, stage) {
  const manifest = readJson(path.join(target.npmDir, 'package.json'))
  const problems = [
    manifest.name !== target.packageName && `name is ${manifest.name}, not ${target.packageName}`,
    manifest.version !== pkg.version && `version is ${manifest.version}, not ${pkg.version} (run \`npx napi version\`)`,
    manifest.main !== target.binaryFile && `main is ${manifest.main}, not ${target.binaryFile}`,
  ].filter(Boolean)
  if (problems.length > 0) throw new Error(`release: npm/${target.platform}/package.json: ${problems.join('; ')}`)
  const dir = path.join(stage, target.platform)
  fs.mkdirSync(dir)
  fs.copyFileSync(binary, path.join(dir, target.binaryFile))
  copyIfPresent(path.join(target.npmDir, 'README.md'), dir)
  writeJson(path.join(dir, 'package.json'), manifest)
  return dir
}

/** The root package: its `files`, README, and the manifest as published. */
function stageRootPackage(pkg, targets, stage) {
  const dir = path.join(stage, 'root')
  fs.mkdirSync(dir)
  for (const entry of publishedFiles(pkg)) {
    if (/[*?{[]/.test(entry)) throw new Error(`release: package.json files entry ${entry} is a glob; list the files`)
    fs.cpSync(path.join(root, entry), path.join(dir, entry), { recursive: true })
  }
  for (const extra of ['README.md', 'LICENSE']) copyIfPresent(path.join(root, extra), dir)
  writeJson(path.join(dir, 'package.json'), publishedManifest(pkg, targets))
  return dir
}

/** The committed manifest minus what only a clone needs, plus every platform package at exactly this version. */
export function publishedManifest(pkg, targets) {
  const manifest = { ...pkg }
  for (const field of DEV_ONLY_FIELDS) delete manifest[field]
  manifest.files = publishedFiles(pkg)
  manifest.optionalDependencies = Object.fromEntries(targets.map((t) => [t.packageName, pkg.version]))
  return manifest
}

/**
 * `files` without the clone's own build (`hyper-sse.*.node`, listed so that
 * an install from git keeps the binary its `prepare` built): published, the
 * binaries come in the platform packages.
 */
function publishedFiles(pkg) {
  return pkg.files.filter((entry) => !entry.endsWith('.node'))
}

/** `npm pack` into DIR; returns what it wrote. */
function npmPack(dir, outDir) {
  const out = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', outDir], { cwd: dir, capture: true })
  const [info] = JSON.parse(out.slice(out.indexOf('[')))
  return { file: info.filename, size: fs.statSync(path.join(outDir, info.filename)).size, entries: info.entryCount }
}

function report(packed, missing, outDir) {
  console.log(`release: wrote ${packed.length} tarball(s) to ${outDir}`)
  for (const { file, size, entries } of packed) console.log(`  ${file}  ${(size / 1024).toFixed(0)} KiB, ${entries} files`)
  if (missing.length > 0) {
    console.log(`release: not packed (no binary here; the release workflow builds them): ${missing.map((t) => t.packageName).join(', ')}`)
  }
}

function copyIfPresent(file, dir) {
  if (fs.existsSync(file)) fs.copyFileSync(file, path.join(dir, path.basename(file)))
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

function writeJson(file, value) {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n')
}

function succeeds(command, args) {
  const r = spawnSync(command, args, { stdio: 'ignore', shell: process.platform === 'win32' })
  return !r.error && r.status === 0
}

/**
 * Runs a command to completion and throws with its output when it fails.
 * `quiet` keeps a long build's output unless it fails; `capture` returns stdout.
 */
function run(command, args, { cwd, quiet = false, capture = false }) {
  const r = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: quiet || capture ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    shell: process.platform === 'win32',
  })
  if (r.error || r.status !== 0) {
    const output = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-60).join('\n')
    throw new Error(`release: ${command} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})\n${output}`)
  }
  return r.stdout
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2))
  } catch (error) {
    console.error(error.message)
    process.exitCode = 1
  }
}

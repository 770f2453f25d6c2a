#!/usr/bin/env node
// Fails when a Linux binary needs a newer glibc than the oldest distribution
// the gnu packages promise to load on (2.28: Debian 10, RHEL 8, Ubuntu 18.10,
// Amazon Linux 2023). A binary linked on the build machine silently picks up
// that machine's glibc (2.34+ here), and users only find out at dlopen time.
//
// Usage: node scripts/check-glibc.mjs FILE... [--max 2.28]
//
// Reads the binary's version needs with `readelf -V` (binutils), which reads
// ELF files of every architecture, so one x64 job can check the arm64 build too.
import { spawnSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'

export const MAX_GLIBC = '2.28'

/** Every GLIBC_x.y the file's dynamic symbols are versioned against, sorted, oldest first. */
export function glibcVersions(file) {
  const r = spawnSync('readelf', ['-V', '-W', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (r.error) throw new Error(`check-glibc: cannot run readelf (install binutils): ${r.error.message}`)
  if (r.status !== 0) throw new Error(`check-glibc: readelf -V ${file} failed: ${r.stderr.trim()}`)
  const found = new Set(r.stdout.match(/GLIBC_\d+(\.\d+)+/g) ?? [])
  return [...found].map((v) => v.slice('GLIBC_'.length)).sort(compareVersions)
}

/** `2.28` < `2.34`, compared field by field as numbers (`2.3` < `2.28`). */
export function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d !== 0) return d
  }
  return 0
}

/** The newest glibc the file needs (null when it needs none), and whether that is within `max`. */
export function checkGlibc(file, max = MAX_GLIBC) {
  const versions = glibcVersions(file)
  const highest = versions.at(-1) ?? null
  return { file, highest, ok: highest === null || compareVersions(highest, max) <= 0, max }
}

function main(argv) {
  const files = []
  let max = MAX_GLIBC
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--max') max = argv[++i]
    else files.push(argv[i])
  }
  if (files.length === 0 || !max) {
    console.error('usage: node scripts/check-glibc.mjs FILE... [--max 2.28]')
    return 2
  }
  let failed = 0
  for (const file of files) {
    const { highest, ok } = checkGlibc(file, max)
    console.log(`check-glibc: ${file}: needs ${highest ? `GLIBC_${highest}` : 'no versioned glibc symbol'} (limit ${max}) ${ok ? 'ok' : 'TOO NEW'}`)
    if (!ok) failed++
  }
  return failed === 0 ? 0 : 1
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2))

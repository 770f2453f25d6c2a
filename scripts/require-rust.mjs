// Runs before every build of a clone (`prepare`, so `npm install` in a clone
// and an install from git): without cargo, napi's own failure ("cargo
// metadata failed to run") does not say what is missing. This says it, and
// points at the published package, which needs no Rust.
import { spawnSync } from 'node:child_process'

const MIN_RUST = '1.88'

const probe = spawnSync('cargo', ['--version'], { encoding: 'utf8' })
if (probe.error || probe.status !== 0) {
  console.error(
    [
      `hyper-sse: building from source needs Rust >= ${MIN_RUST} (cargo was not found on PATH).`,
      'Install it from https://rustup.rs and run the install again,',
      'or install the published package, which comes prebuilt: npm install hyper-sse',
    ].join('\n'),
  )
  process.exit(1)
}

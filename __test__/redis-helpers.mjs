// Redis for the backplane tests: the server .ci/run started (HYPER_SSE_REDIS_URL),
// or a redis-server this test process starts and stops itself, by PID.
// Not a test file (no .spec).
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn, execFileSync } from 'node:child_process'

/** A port below the ephemeral range that nothing listens on right now. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 10000)
    const free = await new Promise((resolve) => {
      const s = net.createServer()
      s.once('error', () => resolve(false))
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
    })
    if (free) return port
  }
  throw new Error('no free port found')
}

/** Sends one command in RESP and resolves with the raw reply text. */
export function redisCommand(port, ...args) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let reply = ''
    socket.setEncoding('utf8')
    socket.on('error', reject)
    socket.on('data', (d) => {
      reply += d
      if (reply.endsWith('\r\n')) {
        socket.end()
        resolve(reply)
      }
    })
    const parts = args.map(String)
    socket.write(`*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join(''))
  })
}

function binary() {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  } catch {
    throw new Error('redis-server is not installed: the Redis backplane tests need it (Debian package redis-server; .ci/run installs it)')
  }
}

/**
 * Starts a redis-server owned by this test process on a loopback port, with
 * an append-only file synced on every write (so a kill loses nothing it
 * acknowledged). `kill()` and `restart()` act on its PID only.
 */
export async function ownRedis(teardown) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hyper-sse-redis-'))
  const port = await freePort()
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: undefined,
    async start() {
      const proc = spawn(
        binary(),
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes',
          '--appendfsync', 'always', '--dir', dir, '--daemonize', 'no', '--protected-mode', 'no'],
        { stdio: 'ignore' },
      )
      redis.proc = proc
      const deadline = Date.now() + 10000
      for (;;) {
        try {
          if ((await redisCommand(port, 'PING')).startsWith('+PONG')) return
        } catch {}
        if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
    /** SIGKILL, then wait until the port is closed. */
    async kill() {
      const proc = redis.proc
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return
      const exited = new Promise((r) => proc.once('exit', r))
      process.kill(proc.pid, 'SIGKILL')
      await exited
    },
    async restart() {
      await redis.kill()
      await redis.start()
    },
  }
  await redis.start()
  teardown(async () => {
    await redis.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return redis
}

/**
 * The Redis the suite shares: .ci/run's (HYPER_SSE_REDIS_URL), else one
 * started for this test file (stopped by `teardown`'s callback). Every test
 * uses its own key prefix.
 */
export async function sharedRedis(teardown) {
  const url = process.env.HYPER_SSE_REDIS_URL
  if (url) return { url, port: Number(new URL(url).port) }
  return ownRedis(teardown)
}

let prefixes = 0
/** A key prefix no other test uses. */
export function uniquePrefix() {
  return `t${process.pid}-${Date.now().toString(36)}-${prefixes++}`
}

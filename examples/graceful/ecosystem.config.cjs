// PM2: `pm2 start examples/graceful/ecosystem.config.cjs`. PM2 stops a process
// with SIGINT by default and SIGKILLs it 1.6 s later; server.mjs handles both
// SIGINT and SIGTERM, and close() may take up to 5 s for a client that does
// not read, so kill_timeout gives it 15 s.
module.exports = {
  apps: [
    {
      name: 'hyper-sse',
      script: './server.mjs',
      cwd: __dirname,
      exec_mode: 'fork', // the engine listens on its own socket, not through PM2's cluster mode
      kill_timeout: 15000,
      env: { NODE_ENV: 'production', PORT: '3000', HOST: '127.0.0.1' },
    },
  ],
}

/// <reference types="node" />
/**
 * Which binding artifact the generated loader actually loaded: `'native'` for
 * a native addon, otherwise the `platformArchABI` of the WASI flavor. Every
 * flavor napi-rs can build is listed, because `NAPI_RS_NATIVE_LIBRARY_PATH`
 * can point the loader at a WASI artifact this package does not build itself.
 */
export declare const __napiBindingTarget: 'native' | 'wasm32-wasi' | 'wasm32-wasip1'

/** A Server-Sent Events server. Create one with {@link createServer}. */
export declare class Server {
  /**
   * Starts listening on `port` (0 or omitted: any free port) and `host`
   * (omitted: every interface). Resolves with the bound address. Rejects
   * with an `Error` carrying Node's `code` (`'EADDRINUSE'`, `'EACCES'`,
   * `'ENOTFOUND'`, …) and `syscall`, `address`, `port`; with code
   * `'ERR_SERVER_ALREADY_LISTEN'` when `listen()` was called before,
   * `'ERR_REDIS_UNAVAILABLE'` when the `redis` option's Redis cannot be
   * reached, `'ERR_SERVER_CLOSED'` when `close()` came while binding.
   * Throws at once (no promise): an `Error` with code `'ERR_SERVER_CLOSED'`
   * after `close()`, a `RangeError`/`TypeError` for a bad `port`/`host`.
   *
   * While listening the server keeps the process alive, like `http.Server`,
   * unless {@link Server.unref} was called.
   */
  listen(port?: number, host?: string): Promise<ListenAddress>
  /**
   * Sends an event to every stream reading its channel (the default
   * channel unless `{ channel }` says otherwise; a list sends it once to
   * each stream reading any of them). A string is the data of an unnamed
   * event (the browser's `onmessage`); an object may also name the event,
   * set its id or a retry delay. The event is encoded once and shared by
   * every client; the call's cost does not depend on how many clients
   * there are.
   *
   * ```js
   * server.send(new Date().toLocaleTimeString())
   * server.send({ event: 'price', data: { price: 42 } }, { channel: 'ticker' })
   * ```
   *
   * Throws (and sends nothing) on bad input: a `TypeError` for a wrong type,
   * CR/LF in `event` or `id`, NUL in `id`, a Buffer that is not UTF-8, an
   * unknown field; a `RangeError` for a negative, fractional or huge
   * `retry`. Throws an `Error` with code `'ERR_SERVER_CLOSED'` after `close()`.
   *
   * With `redis`, the event is queued for Redis and reaches every
   * instance's clients (this one's too) from there; `await server.flush()`
   * tells when it is stored. While Redis is unreachable sends wait in
   * memory, up to `redis.maxPending`; beyond that `send()` throws an
   * `Error` with code `'ERR_REDIS_UNAVAILABLE'` and sends nothing.
   */
  send(event: string | Buffer | SseEvent, options?: SendOptions): void
  /**
   * Sends a comment: one `:` line per line of `text`, to the default
   * channel or `{ channel }`. Browsers ignore comments; they show up in
   * the network inspector.
   */
  comment(text: string, options?: SendOptions): void
  /**
   * Sends an event to one client only (its `id` from `onConnect` /
   * `onConnection`), e.g. one user's LLM response. Returns `false` when
   * that client is not connected (nothing was queued). Events sent this
   * way are not kept in any history; for replay across reconnects use a
   * per-user channel instead.
   */
  sendTo(clientId: string, event: string | Buffer | SseEvent): boolean
  /**
   * Ends one client's stream cleanly (its events so far are written
   * first). The browser will reconnect unless `onConnect` then denies it,
   * e.g. with status 204. Returns `false` when that client is not connected.
   */
  disconnect(clientId: string): boolean
  /**
   * Replaces the TLS certificate and key (e.g. after renewal) without a
   * restart: new connections use them, open ones keep theirs. Throws a
   * `TypeError` naming the field when the PEM is bad (the old certificate
   * stays), and an `Error` when the server was created without `tls`.
   */
  setSecureContext(context: { cert: string | Buffer, key: string | Buffer, ca?: string | Buffer | Array<string | Buffer> }): void
  /**
   * Takes over a request that your own Node server accepted (`http`,
   * `https`, or `http2`'s compatibility API; Express, Fastify after
   * `reply.hijack()`, Koa with `ctx.respond = false`) and streams to it,
   * on your port, with everything a stream from {@link Server.listen}
   * has: channels, history and `Last-Event-ID` replay, budgets, heartbeats,
   * CORS, limits, hooks, the Redis backplane, and `close()`.
   *
   * ```js
   * app.get('/events', requireUser, (req, res) => {
   *   sse.handle(req, res, { channels: ['news', `user:${req.user.id}`] })
   * })
   * ```
   *
   * With `options.channels` the stream reads those channels and
   * `onConnect` is not called (your middleware decided); without it the
   * query and `onConnect` decide, as for `listen()`.
   *
   * On plaintext HTTP/1.x (Linux, macOS) the engine takes the socket
   * from Node and serves the stream itself (`transport: 'native'`); on
   * TLS, HTTP/2, Windows, or a response whose `write` a framework wrapped,
   * each batch goes through `res.write()` (`transport: 'bridged'`).
   *
   * Resolves with the client once the stream head is written, or `null`
   * when the request was answered without a stream (denied, a limit,
   * CORS, HEAD, 405). Rejects with a `TypeError` when `req`/`res` are not
   * a live request and response, or `res` has sent headers or ended; with
   * an `Error` with code `'ERR_SERVER_CLOSED'` after `close()` (the
   * response is answered 503).
   */
  handle(req: import('node:http').IncomingMessage | import('node:http2').Http2ServerRequest, res: import('node:http').ServerResponse | import('node:http2').Http2ServerResponse, options?: HandleOptions): Promise<StreamClient | null>
  /**
   * Streams to a web `Request` in a fetch-style server (Hono, Next.js
   * route handlers, any `(request) => Response` handler on Node): resolves
   * with a `Response` whose body is a `ReadableStream` the engine feeds
   * (`text/event-stream`, with everything a stream from `listen()` has).
   * `request.signal` aborting, or the reader cancelling, ends the client.
   * A request answered without a stream (denied, a limit, CORS, HEAD,
   * 405) resolves with that answer; after `close()`, with a 503.
   *
   * ```js
   * app.get('/events', (c) => sse.fetch(c.req.raw, { channels: 'news' }))
   * ```
   *
   * Rejects with a `TypeError` when `request` is not a web `Request`.
   * `maxConnectionsPerIp` does not apply: a `Request` does not say who
   * the client is (`maxConnections` does).
   */
  fetch(request: Request, options?: HandleOptions): Promise<Response>
  /**
   * Resolves once everything sent so far is stored in Redis (at once
   * without `redis`); a send Redis refuses for good (a wrong key type,
   * say) is reported to `onError` and does not hold it up. Rejects when
   * the server closes first.
   */
  flush(): Promise<void>
  /** The server's counters right now. */
  stats(): ServerStats
  /**
   * The server's counters as Prometheus text (exposition format 0.0.4),
   * for a `/metrics` route: serve it with `Content-Type: text/plain;
   * version=0.0.4`. Names start with `hyper_sse_`: connections, streams
   * opened, events, comments, deliveries, bytes, evictions by `reason`
   * (`'budget'`, `'stall'`, `'gap'`), denials, channels, and with `redis`
   * the backplane's state and counters.
   *
   * Only the `maxChannels` channels with the most subscribers (default
   * 100, at most 10000) get a `channel` label of their own; the rest are
   * summed as `channel="_other"`, so a channel per user cannot flood the
   * scraper.
   *
   * ```js
   * createServer({ onRequest: (req) => req.path === '/metrics'
   *   ? { headers: { 'content-type': 'text/plain; version=0.0.4' }, body: server.metrics() }
   *   : undefined })
   * ```
   *
   * Throws a `TypeError` for an unknown option or a `maxChannels` that is
   * not a number, a `RangeError` for one that is not an integer from 0 to 10000.
   */
  metrics(options?: { maxChannels?: number }): string
  /** The port the server listens on, or `null` when it is not listening. */
  get port(): number | null
  /**
   * Stops accepting connections, ends every open stream cleanly (events
   * already sent are still written, then the terminating chunk), and
   * resolves once every connection is closed. Clients that do not read are
   * dropped after a 5 s grace period. Afterwards the process can exit.
   * Calling it again, or before `listen()`, is harmless.
   */
  close(): Promise<void>
  /**
   * Lets the process exit even while this server is listening, like
   * `http.Server#unref()`. Returns the server.
   */
  unref(): this
  /**
   * Undoes {@link Server.unref}: a listening server keeps the process
   * alive again. Returns the server.
   */
  ref(): this
}

/** The Redis backplane's health in {@link ServerStats}. */
export interface BackplaneStats {
  /**
   * `'connected'`, `'reconnecting'` (Redis unreachable or failing; retrying
   * with backoff), `'idle'` (not started: `listen()`, the first handed-over
   * stream or the first send connects) or `'closed'`.
   */
  state: 'idle' | 'connected' | 'reconnecting' | 'closed'
  /** Sends accepted and not yet stored in Redis. */
  pending: number
  /** Events this instance stored in Redis. */
  published: number
  /** Events read from Redis for this instance's clients (sent by any instance). */
  received: number
  /** Connections to Redis re-established after a failure. */
  reconnects: number
  /**
   * Sends Redis refused for good, or still waiting when the server closed
   * (each reported to `onError` with where = `'redis'`).
   */
  failed: number
  /** Times events were trimmed from a stream before this instance read them. */
  lost: number
  /**
   * The text of the last failure the backplane met while running (Redis
   * unreachable, a refused send), or `null` when there has been none. It
   * stays after a recovery: `state` says whether Redis is reachable now.
   * (A `listen()` that cannot reach Redis rejects with the error instead.)
   */
  lastError: string | null
}

/** One channel's figures in {@link ServerStats}. */
export interface ChannelStats {
  /** Streams reading the channel now. */
  subscribers: number
  /** Events in its history now. */
  history: number
}

/** What `onConnect` may return. */
export interface ConnectResult {
  /** Channels this stream reads (accept). */
  channels?: string | string[]
  /**
   * Extra response headers for this stream (accept or deny); an array
   * sends the header once per value.
   */
  headers?: Record<string, string | string[]>
  /** Deny with this HTTP status (e.g. 401, 403, 204, 429). */
  status?: number
  /** The body of a denial: string, Buffer or JSON value. */
  body?: string | Buffer | unknown
}

/**
 * Creates a server. Nothing is bound until {@link Server.listen}; events sent
 * before that go to the history (and are replayed to clients that ask).
 *
 * ```js
 * const server = createServer({ path: '/sendMessage', static: './public' })
 * const { port } = await server.listen(3000, '127.0.0.1')
 * setInterval(() => server.send(new Date().toLocaleTimeString()), 1000)
 * ```
 *
 * Throws a `TypeError` or `RangeError` naming the option when an option is
 * unknown or has the wrong type or value.
 */
export declare function createServer(options?: ServerOptions): Server

/**
 * Evictions by reason in {@link ServerStats}: the total alone cannot tell a
 * budget that is too small from frozen tabs or an instance behind Redis.
 */
export interface EvictionStats {
  /** Over the byte budget (`maxBufferedBytes`) with its socket full. */
  budget: number
  /** No progress for `stallTimeout` while data waited. */
  stall: number
  /**
   * The Redis backplane trimmed events of its channel before this
   * instance read them.
   */
  gap: number
}

/** How {@link Server.handle} and {@link Server.fetch} stream a request. */
export interface HandleOptions {
  /**
   * The channel or channels the stream reads, chosen by your own code
   * (an auth middleware, a route parameter); `onConnect` is then not
   * called. Without it the `?channel=` query (with `channelsFromQuery`)
   * and `onConnect` decide, as for `listen()`.
   */
  channels?: string | string[]
}

/** What `onRequest` may return. */
export interface HttpReply {
  /**
   * The status, default 200. A 204 or 304 reply has no body (and no
   * `Content-Length`).
   */
  status?: number
  /**
   * Response headers; an array sends the header once per value
   * (`{ 'Set-Cookie': ['a=1', 'b=2'] }`). `Content-Length` is set for you;
   * `Connection: 'close'` closes the connection after this reply (no
   * other `Connection` value is allowed).
   */
  headers?: Record<string, string | string[]>
  /**
   * A string (text/plain), a Buffer (application/octet-stream) or any
   * other value (application/json) unless `Content-Type` is given.
   */
  body?: string | Buffer | unknown
}

/** A plain (non-stream) request, for `onRequest`. */
export interface HttpRequest {
  /** `GET`, `POST`, … */
  method: string
  /** The path, without the query. */
  path: string
  /** Query parameters; a repeated parameter is an array. */
  query: Record<string, string | string[]>
  /** Request headers, lower-case names. */
  headers: Record<string, string>
  /** The client's IP address. */
  remoteAddress: string
  /** The client's port. */
  remotePort: number
  /** The HTTP version: `'1.0'`, `'1.1'` or `'2'`. */
  httpVersion: string
  /** The request body (empty for GET); `body.toString()` for text. */
  body: Buffer
}

/** Where a server listens, as resolved by {@link Server.listen}. */
export interface ListenAddress {
  /** The bound port (the real one when 0 was asked for). */
  port: number
  /** The bound address, e.g. `'127.0.0.1'` or `'::'`. */
  host: string
  /** `'IPv4'` or `'IPv6'`. */
  family: string
}

/**
 * The `redis` option of {@link ServerOptions}: where Redis is and what
 * the keys are called.
 */
export interface RedisOptions {
  /**
   * `'redis://[user:password@]host[:port][/db]'`, `'rediss://…'` for TLS
   * (checked against the system's trust roots unless `tls.ca` is given),
   * or `'unix:///path/to/redis.sock'`.
   */
  url: string
  /**
   * Prefix of every key (default `'sse'`), so several applications can
   * share one Redis.
   */
  prefix?: string
  /**
   * Sends kept while Redis is unreachable (default 100000); beyond it
   * `send()` throws.
   */
  maxPending?: number
  /**
   * TLS settings for a `rediss://` URL (a `TypeError` with any other
   * URL). Bad PEM, or a key that does not match `cert`, throws a
   * `TypeError` naming the field.
   */
  tls?: RedisTlsOptions
}

/**
 * TLS to Redis ({@link RedisOptions.tls}). `ca`, `cert` and `key` are PEM
 * text or a Buffer of it. The name checked in Redis's certificate is the
 * URL's host unless `servername` says otherwise.
 */
export interface RedisTlsOptions {
  /**
   * The CA certificate(s) to trust instead of the system's roots, for a
   * Redis whose certificate a private CA signed.
   */
  ca?: string | Buffer | Array<string | Buffer>
  /**
   * A client certificate (optionally followed by its chain), for a Redis
   * that checks its clients (`tls-auth-clients yes`). Needs `key`.
   */
  cert?: string | Buffer
  /** The private key of `cert` (PKCS#8, PKCS#1 or SEC1). Needs `cert`. */
  key?: string | Buffer
  /**
   * The name to check in Redis's certificate (and send as SNI) instead
   * of the URL's host: for a Redis reached by IP address or through an
   * alias whose certificate names the service, e.g.
   * `{ url: 'rediss://10.0.0.5:6380', tls: { ca, servername: 'redis.internal' } }`.
   */
  servername?: string
}

/** Where {@link Server.send} delivers. */
export interface SendOptions {
  /**
   * The channel or channels; default `'default'`, the channel every
   * stream reads unless `onConnect` or the query chose others. A channel
   * name is non-empty, has no control characters and is at most 256
   * bytes long.
   */
  channel?: string | string[]
}

/** Options for {@link createServer}. Every field is optional. */
export interface ServerOptions {
  /**
   * The request path(s) that open an event stream, e.g. `'/sendMessage'`.
   * Matched exactly, query string ignored. Default `'/events'`.
   */
  path?: string | string[]
  /**
   * A directory served for every other GET/HEAD request (`/` serves
   * `index.html`). Requests can never read outside it; dotfiles are not served.
   * Without it, other paths answer 404.
   */
  static?: string
  /**
   * Milliseconds of silence after which a stream gets a `:` heartbeat
   * comment, so proxies and load balancers do not drop idle streams.
   * Default 15000; 0 turns heartbeats off.
   */
  keepAlive?: number
  /**
   * Reconnection delay (ms) sent as `retry:` when each stream opens; the
   * browser waits this long before reconnecting. Default: not sent.
   */
  retry?: number
  /**
   * Extra response headers for event streams; an array sends the header
   * once per value. Headers that would break the stream (`Content-Type`,
   * `Content-Length`, `Transfer-Encoding`, `Connection`, …) are refused.
   */
  headers?: Record<string, string | string[]>
  /**
   * Events kept per channel for `Last-Event-ID` replay. Default 1000.
   * With history on, events sent without an `id` get an automatic one;
   * 0 turns history and automatic ids off.
   */
  history?: number
  /**
   * A stream's byte budget: how far (in bytes of its event stream) one
   * client may fall behind. A client further behind than this whose
   * socket is full, or whose `sendTo()` queue would grow beyond it, is
   * disconnected (reason `'slow'`) and can resume from history with
   * `Last-Event-ID`. Being behind costs no memory of its own (every
   * client reads one shared log per channel); the budget bounds how much
   * of the log one client may hold back. Default 16777216 (16 MiB).
   */
  maxBufferedBytes?: number
  /**
   * Milliseconds a client with data waiting may go without its
   * connection taking a single byte; then it is disconnected (reason
   * `'slow'`). Checked every tenth of it (at most every second), so the
   * disconnect comes at most two such checks later. This is what drops a
   * client that stopped reading (a frozen tab, a dead network) even when
   * the channel then goes quiet. A client with nothing waiting is never
   * stalled. Default 30000; 0 turns it off.
   */
  stallTimeout?: number
  /**
   * Let clients pick channels with repeated `?channel=` query parameters
   * (when `onConnect` does not choose them). Default false.
   */
  channelsFromQuery?: boolean
  /** A comment written first on every stream, e.g. `'ok'` (sent as `: ok`). */
  firstComment?: string
  /**
   * Decides whether a stream opens. Gets the request (with `id`,
   * `lastEventId`, `lastEventIdStale`); returns (or resolves to) `true` or
   * `undefined` (accept, default channel), `{ channels, headers }` (accept),
   * or `false` / `{ status, body?, headers? }` (deny, e.g. 401, 403, 204 to
   * stop the browser reconnecting, 429). A throw or rejection answers 500
   * and is reported to `onError`.
   */
  onConnect?: (request: StreamClient) => ConnectResult | boolean | undefined | Promise<ConnectResult | boolean | undefined>
  /** Told when a stream has opened. */
  onConnection?: (client: StreamClient) => void
  /**
   * Told when a stream has ended, and why: `'closed'` (the client left),
   * `'slow'` (over its byte budget), `'disconnected'` (`disconnect(id)`),
   * `'shutdown'` (`close()`), or `'denied'` (refused by `onConnect`,
   * CORS or a connection limit; `onConnection` never ran for it).
   */
  onDisconnect?: (client: StreamClient, reason: 'closed' | 'slow' | 'disconnected' | 'shutdown' | 'denied') => void
  /**
   * Handles requests that are not streams, before static files: returns
   * (or resolves to) `{ status?, headers?, body? }`, or `undefined` to fall
   * through to static files / 404. `body` may be a string, a Buffer or any
   * value (sent as JSON).
   */
  onRequest?: (request: HttpRequest) => HttpReply | undefined | Promise<HttpReply | undefined>
  /**
   * Receives what your hooks threw or rejected with (the value as it is),
   * with where it happened (`'onConnect'`, `'onConnection'`,
   * `'onDisconnect'`, `'onRequest'`, `'cors.origin'`), and Redis backplane
   * problems (`'redis'`). Without it they go to `console.error`. No hook
   * failure stops the server: if `onError` itself throws or rejects, that
   * goes to `console.error` (and to standard error if that fails too).
   */
  onError?: (error: Error, where: string) => void
  /**
   * Cross-origin access for streams and routes. `origin`: `'*'` (default),
   * an origin, a list of origins, or a function `(origin) => boolean`
   * (may be async). `credentials: true` allows cookies
   * (`new EventSource(url, { withCredentials: true })`); the origin is
   * then echoed, never `*`. `maxAge`: preflight cache seconds (600).
   */
  cors?: { origin?: '*' | string | string[] | ((origin: string) => boolean | Promise<boolean>), credentials?: boolean, maxAge?: number }
  /**
   * Most streams held at once: open streams plus stream requests still
   * waiting for `onConnect` or a `cors.origin` function. Beyond it new
   * stream requests get 503 with `Retry-After`. Routes (`onRequest`,
   * static files) are not counted. Default unlimited.
   */
  maxConnections?: number
  /**
   * The same count per client IP address; beyond it 429 with
   * `Retry-After`. Default unlimited.
   */
  maxConnectionsPerIp?: number
  /**
   * Milliseconds a client may take to send its request head; then 408
   * and the connection is closed (slowloris). Default 10000; 0 = off.
   */
  headerTimeout?: number
  /** Largest request head in bytes (431 beyond). Default 16384, minimum 8192. */
  maxHeaderBytes?: number
  /** Largest request body read for `onRequest` (413 beyond). Default 1048576. */
  maxBodyBytes?: number
  /**
   * Milliseconds a request waits for `onConnect`, `onRequest` or a
   * `cors.origin` function to settle. Then it is answered without the hook
   * (503 with `Retry-After` for a stream request, 504 for a route), the
   * hook's late result is discarded, and `onError` gets an `Error` with
   * `code: 'ERR_HOOK_TIMEOUT'`. Default 10000; 0 waits as long as it takes.
   */
  hookTimeout?: number
  /**
   * Serve HTTPS: `cert` and `key` as PEM text or Buffers, `ca` for
   * intermediate certificates. ALPN offers `h2` and `http/1.1`, so
   * browsers get HTTP/2 (many EventSources share one connection) and older
   * clients HTTP/1.1, on the same port. Bad PEM or a key that does not
   * match the certificate throws a `TypeError`.
   */
  tls?: { cert: string | Buffer, key: string | Buffer, ca?: string | Buffer | Array<string | Buffer> }
  /**
   * On a plaintext server, also accept HTTP/2 with prior knowledge (h2c)
   * beside HTTP/1.1. Default false.
   */
  http2?: boolean
  /**
   * Run several instances as one through Redis (see {@link RedisOptions}).
   * Events go through one Redis Stream per channel and reach every
   * instance's clients; ids are global, so a client resumes on any
   * instance. `listen()` rejects with code `'ERR_REDIS_UNAVAILABLE'` when
   * Redis cannot be reached (or its TLS handshake fails); at run time
   * problems go to `onError(error, 'redis')` and `stats().backplane`.
   */
  redis?: RedisOptions
}

/** A snapshot of a server's counters, from {@link Server.stats}. */
export interface ServerStats {
  /** Event streams open right now. */
  connections: number
  /** Event streams opened since the server started. */
  totalConnections: number
  /**
   * Events accepted by `send()`/`sendTo()`, each counted once however many
   * clients get it.
   */
  eventsSent: number
  /** Comments accepted by `comment()`. */
  commentsSent: number
  /** Events and comments handed to client connections, one per client. */
  deliveries: number
  /**
   * Stream bytes handed to client connections, summed over all clients
   * (events, comments, heartbeats, retry hints; not HTTP framing).
   */
  bytesSent: number
  /**
   * Streams closed because their client fell too far behind: the sum of
   * {@link ServerStats.evictions}.
   */
  evicted: number
  /** The same streams by why they were evicted. */
  evictions: EvictionStats
  /** Stream requests refused by `onConnect`, CORS or a connection limit. */
  denied: number
  /** Per channel: subscribers and history size. */
  channels: Record<string, ChannelStats>
  /** The Redis backplane, when `redis` is set. */
  backplane?: BackplaneStats
}

/** An event for {@link Server.send}. */
export interface SseEvent {
  /**
   * The payload. A string is sent as is (one `data:` line per line), a
   * Buffer must hold UTF-8, and any other value is sent as its
   * `JSON.stringify` text. May be omitted only when `id` or `retry` is set.
   */
  data?: string | Buffer | unknown
  /**
   * The event type: the browser dispatches it to
   * `addEventListener(event)` instead of `onmessage`. No CR or LF.
   */
  event?: string
  /**
   * The event id, stored by the browser and sent back as `Last-Event-ID`
   * when it reconnects. `''` resets it. No CR, LF or NUL. Without it (and
   * with history on) the server assigns one.
   */
  id?: string | number
  /** Reconnection delay in milliseconds for this client from now on. */
  retry?: number
}

/**
 * A stream's client as JavaScript sees it: in `onConnect`, `onConnection`
 * and `onDisconnect`.
 */
export interface StreamClient {
  /** The client's id, for `sendTo()` and `disconnect()`. */
  id: string
  /**
   * The channels it reads (for `onConnect`: what it gets unless the hook
   * chooses others).
   */
  channels: Array<string>
  /** The request method (`GET`). */
  method: string
  /** The request path, without the query. */
  path: string
  /** Query parameters; a repeated parameter is an array. */
  query: Record<string, string | string[]>
  /** Request headers, lower-case names; repeated headers joined with `, `. */
  headers: Record<string, string>
  /** The client's IP address. */
  remoteAddress: string
  /** The client's port. */
  remotePort: number
  /** The HTTP version of the request: `'1.0'`, `'1.1'` or `'2'`. */
  httpVersion: string
  /** The `Last-Event-ID` it sent (header, or `lastEventId` query parameter). */
  lastEventId?: string
  /**
   * True when that id is unknown or older than the history: nothing was
   * replayed, so send the client a fresh snapshot.
   */
  lastEventIdStale: boolean
  /**
   * How a stream from `handle()` or `fetch()` is carried: `'native'` when
   * the engine took the connection's socket and writes it itself,
   * `'bridged'` when each batch goes through the other server (TLS,
   * HTTP/2, a wrapped response, `fetch()`). Absent in hooks.
   */
  transport?: 'native' | 'bridged'
}

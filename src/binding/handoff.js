// The JavaScript half of `handle()` and `fetch()`: what has to touch Node's
// request and response objects. The binding evaluates this once per server;
// it returns the functions below, closed over one `notify(key, what)` that
// tells the engine when a response drains or goes away. Everything about
// events (channels, history, budgets, fan-out) stays in the engine; this
// only reads requests, writes heads and hands batches to `res.write()`.
(function (notify) {
  'use strict'
  const TAKEN = 0
  const FULL = 1
  const GONE = 2
  // Per handed-over request, by the binding's key: its response while the
  // engine still needs to hear about it.
  const watched = new Map()

  function kind(v) {
    if (v === null) return 'null'
    if (Array.isArray(v)) return 'an array'
    return typeof v === 'object' ? 'a plain object' : typeof v
  }

  function fail(message) {
    const e = new TypeError(message)
    e.code = 'ERR_INVALID_ARG_TYPE'
    throw e
  }

  // Node's request and response pair (http, https, or http2's compatibility
  // API), checked; what the engine needs of the request; and whether its
  // socket could be taken (plaintext HTTP/1.x with a file descriptor).
  function describe(key, req, res) {
    if (req === null || typeof req !== 'object') {
      fail(`handle(): req must be the request Node's server passed (http.IncomingMessage), got ${kind(req)}`)
    }
    if (res === null || typeof res !== 'object') {
      fail(`handle(): res must be the response Node's server passed (http.ServerResponse), got ${kind(res)}`)
    }
    if (typeof req.method !== 'string' || typeof req.url !== 'string' || !Array.isArray(req.rawHeaders) || typeof req.httpVersion !== 'string') {
      fail('handle(): req is not a request: it needs method, url, rawHeaders and httpVersion, as http.IncomingMessage has')
    }
    if (typeof res.writeHead !== 'function' || typeof res.write !== 'function' || typeof res.end !== 'function' || typeof res.on !== 'function') {
      fail('handle(): res is not a response: it needs writeHead(), write(), end() and on(), as http.ServerResponse has')
    }
    const socket = req.socket
    if (!socket || socket.destroyed || res.destroyed) {
      fail("handle(): req's socket is already destroyed (the client went away)")
    }
    if (res.writableEnded) fail('handle(): res has already ended')
    if (res.headersSent) fail('handle(): res has already sent its headers; call handle() before writing anything')
    const h2 = req.httpVersionMajor === 2
    const headers = []
    const raw = req.rawHeaders
    let host = null
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = String(raw[i])
      if (name[0] === ':') {
        if (name === ':authority') host = String(raw[i + 1])
        continue
      }
      if (name.toLowerCase() === 'host') host = null
      headers.push(name, String(raw[i + 1]))
    }
    if (h2 && host !== null) headers.push('host', host)
    watched.set(key, res)
    res.once('close', () => {
      if (watched.delete(key)) notify(key, 'gone')
    })
    return {
      method: req.method,
      url: req.url,
      headers,
      version: h2 ? '2' : req.httpVersion,
      remoteAddress: socket.remoteAddress || '',
      remotePort: socket.remotePort || 0,
      takeable: !h2 && !socket.encrypted && process.platform !== 'win32',
    }
  }

  // The socket's file descriptor when the engine may take it now, or -1:
  // nothing written or buffered by Node, no other request parsed behind this
  // one (pipelined: it must be answered, so the stream is bridged and Node
  // answers it after the stream), and a response that is Node's own (a
  // framework that wrapped `write` wants to see the bytes).
  function takeable(req, res) {
    const socket = req.socket
    const handle = socket && socket._handle
    if (!handle || typeof handle.fd !== 'number' || handle.fd < 0 || typeof handle.readStop !== 'function') return -1
    if (socket.destroyed || res.destroyed || res.headersSent || res.writableEnded) return -1
    if (Object.prototype.hasOwnProperty.call(res, 'write') || Object.prototype.hasOwnProperty.call(res, 'end')) return -1
    if (socket._httpMessage !== res) return -1
    if (socket.writableLength > 0 || socket.readableLength > 0) return -1
    const parser = socket.parser
    if (parser && parser.incoming && parser.incoming !== req) return -1
    return handle.fd
  }

  // The engine holds its own descriptor of the socket and has written the
  // stream head: Node stops reading and lets go of its handle. Closing one
  // of two descriptors sends neither FIN nor RST; Node writes nothing more.
  function release(key, req) {
    watched.delete(key)
    const socket = req.socket
    socket._handle.readStop()
    socket.destroy()
  }

  // An answer without a stream (a denial, a limit, CORS, HEAD, 405, 503).
  function reply(key, res, status, headers, body) {
    watched.delete(key)
    if (res.destroyed || res.writableEnded) return
    if (!res.headersSent) res.writeHead(status, headers)
    res.end(body.length > 0 ? body : undefined)
  }

  // A bridged stream over Node's response: the head now, then one write per
  // batch the engine hands over.
  const sinks = new Map()
  function bridge(key, res, status, headers) {
    res.writeHead(status, headers)
    if (typeof res.flushHeaders === 'function') res.flushHeaders()
    sinks.set(key, {
      write: (chunk) => res.write(chunk),
      end: (clean) => (clean ? res.end() : res.destroy()),
    })
    res.on('drain', () => notify(key, 'drain'))
    res.once('close', () => sinks.delete(key))
  }

  function write(key, chunk) {
    const sink = sinks.get(key)
    if (sink === undefined) return GONE
    try {
      return sink.write(chunk) ? TAKEN : FULL
    } catch {
      return GONE
    }
  }

  function end(key, clean) {
    const sink = sinks.get(key)
    sinks.delete(key)
    watched.delete(key)
    if (sink !== undefined) {
      try {
        sink.end(clean)
      } catch {}
    }
  }

  // fetch(): a web Request, checked; what the engine needs of it.
  function describeFetch(key, request) {
    if (request === null || typeof request !== 'object' || typeof request.url !== 'string' || typeof request.method !== 'string' || !request.headers || typeof request.headers.forEach !== 'function') {
      fail(`fetch(): request must be a web Request, got ${kind(request)}`)
    }
    let url
    try {
      url = new URL(request.url)
    } catch {
      fail(`fetch(): request.url is not an absolute URL: ${JSON.stringify(request.url)}`)
    }
    const headers = []
    let host = false
    request.headers.forEach((value, name) => {
      if (name === 'host') host = true
      headers.push(name, value)
    })
    if (!host) headers.push('host', url.host)
    const signal = request.signal
    if (signal && typeof signal.addEventListener === 'function') {
      watched.set(key, signal)
      const gone = () => {
        if (watched.delete(key)) notify(key, 'gone')
      }
      if (signal.aborted) queueMicrotask(gone)
      else signal.addEventListener('abort', gone, { once: true })
    }
    return { method: request.method, url: url.pathname + url.search, headers, version: '1.1', remoteAddress: '', remotePort: 0, takeable: false }
  }

  function fetchReply(key, status, headers, body) {
    watched.delete(key)
    const empty = status === 204 || status === 304 || body.length === 0
    return new Response(empty ? null : body, { status, headers: pairs(headers) })
  }

  // A web Response whose body the engine feeds: a batch per chunk, a few
  // chunks of buffer, more when the reader pulls. Cancelling the reader or
  // aborting the request ends the client.
  function fetchStream(key, status, headers) {
    let controller
    let full = false
    const gone = () => {
      sinks.delete(key)
      watched.delete(key)
      notify(key, 'gone')
    }
    const body = new ReadableStream(
      {
        start(c) {
          controller = c
        },
        pull() {
          if (full) {
            full = false
            notify(key, 'drain')
          }
        },
        cancel: gone,
      },
      { highWaterMark: 8 },
    )
    sinks.set(key, {
      write(chunk) {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        full = controller.desiredSize <= 0
        return !full
      },
      end(clean) {
        if (clean) controller.close()
        else controller.error(new Error('hyper-sse: the client fell too far behind and was disconnected'))
      },
    })
    return new Response(body, { status, headers: pairs(headers) })
  }

  // `{ name: value | value[] }` as `[name, value]` pairs, for `Headers`.
  function pairs(headers) {
    const out = []
    for (const name of Object.keys(headers)) {
      const v = headers[name]
      if (Array.isArray(v)) for (const one of v) out.push([name, one])
      else out.push([name, v])
    }
    return out
  }

  return { describe, takeable, release, reply, bridge, write, end, describeFetch, fetchReply, fetchStream }
})

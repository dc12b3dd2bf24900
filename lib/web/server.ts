/**
 * The status page's HTTP server (PROTOCOL.md §14): `om discover` runs it when `http = ADDR:PORT`
 * is set. Read-only: the page, `GET /api/nodes`, `/api/jobs`, `/api/migrations`, `/api/history`,
 * and `/api/events`, the Server-Sent Events stream of changes. GET and HEAD only (405 with Allow
 * otherwise), unknown paths 404, no request body (400), a Host header naming another site 421
 * (DNS rebinding: a page elsewhere must not read the API through a browser on the management
 * network).
 *
 * Everything is bounded: connections (`maxConnections`, the rest refused at once), streams
 * (`maxWatchers`, then 503), request headers (`maxHeaderBytes`, then 431), the time to send them
 * (`headersTimeoutMs`, then 408), idle keep-alive connections, and what a slow stream may leave
 * unsent (`maxBuffered`, then it is closed). It is built on Deno's `node:http` rather than
 * `Deno.serve`, which has no way to bound or count connections or to time out a slow request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../base/log.ts";
import type { ClusterCollector } from "./collector.ts";
import type { ChangeEvent } from "./diff.ts";
import { pageHtml, pagePolicy } from "./page.ts";

/** The server's limits. */
export interface WebLimits {
  /** Connections open at once; more are closed as they come. */
  readonly maxConnections: number;
  /** Event streams open at once; more get 503. */
  readonly maxWatchers: number;
  /** Bytes of request line and headers; more get 431. */
  readonly maxHeaderBytes: number;
  /** Time to send the request line and headers; then 408 and the connection closes. */
  readonly headersTimeoutMs: number;
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveMs: number;
  /** Bytes a stream may have unsent (a reader that does not read); then it is closed. */
  readonly maxBuffered: number;
}

/** The default limits (PROTOCOL.md §14.1). */
export const DEFAULT_WEB_LIMITS: WebLimits = {
  maxConnections: 64,
  maxWatchers: 16,
  maxHeaderBytes: 8192,
  headersTimeoutMs: 5000,
  keepAliveMs: 5000,
  maxBuffered: 1024 * 1024,
};

/** The server's counters (`omdiscd.stats` under `http`). */
export interface WebStats {
  /** Requests answered (any status). */
  requests: number;
  /** Answered 404. */
  notFound: number;
  /** Refused: 400, 405, 421, 503. */
  refused: number;
  /** Event streams open now. */
  watchers: number;
  /** Event streams opened in all. */
  streams: number;
  /** Events sent (snapshots and changes). */
  events: number;
  /** Streams closed for leaving too much unsent. */
  slow: number;
}

/** Options of {@linkcode serveWeb}. */
export interface WebServerOptions {
  readonly hostname: string;
  /** 0: any free port (tests). */
  readonly port: number;
  readonly collector: Pick<ClusterCollector, "fresh" | "watch" | "history">;
  readonly logger: Logger;
  readonly limits?: Partial<WebLimits>;
  /** Host names the Host header may carry besides addresses and `localhost` (the machine's). */
  readonly hostNames?: readonly string[];
}

/** A running server. */
export interface WebServer {
  readonly hostname: string;
  readonly port: number;
  readonly stats: Readonly<WebStats>;
  close(): Promise<void>;
}

/** Where the page and the API are. */
const ROUTES = ["/", "/index.html", "/api/nodes", "/api/jobs", "/api/migrations", "/api/history"];

/** What the Host header names, without its port; undefined when it has none. */
export function hostOf(header: string | undefined): string | undefined {
  if (header === undefined || header === "") return undefined;
  const bracket = /^\[([^\]]*)\](?::\d*)?$/.exec(header);
  if (bracket) return `[${bracket[1].toLowerCase()}]`;
  return header.replace(/:\d*$/, "").toLowerCase();
}

/** Whether a Host header may reach the server: an address, localhost, or one of `names`. */
export function hostAllowed(header: string | undefined, names: readonly string[]): boolean {
  const host = hostOf(header);
  if (host === undefined) return true;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host) || /^\[[0-9a-f:.]+\]$/.test(host)) return true;
  return host === "localhost" || names.some((n) => n.toLowerCase() === host);
}

/** One event of the stream, as SSE text: `event:`, `id:`, one `data:` line (JSON has no newline). */
export function sseEvent(name: string, id: number, data: unknown): string {
  return `event: ${name}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Starts the server on `hostname:port`; resolves once it listens. Throws with the reason when it
 * cannot (the address is not this machine's, the port is taken).
 */
export async function serveWeb(options: WebServerOptions): Promise<WebServer> {
  const limits = { ...DEFAULT_WEB_LIMITS, ...options.limits };
  const { collector, logger } = options;
  const hostNames = options.hostNames ?? [];
  const page = pageHtml();
  const policy = `${await pagePolicy("'self'")}; frame-ancestors 'none'`;
  const stats: WebStats = {
    requests: 0,
    notFound: 0,
    refused: 0,
    watchers: 0,
    streams: 0,
    events: 0,
    slow: 0,
  };
  const streams = new Set<() => void>();
  let eventId = 0;

  const common = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };

  function send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string>,
  ): void {
    stats.requests++;
    const bytes = new TextEncoder().encode(body);
    res.writeHead(status, { ...common, ...headers, "content-length": String(bytes.length) });
    res.end(req.method === "HEAD" ? undefined : bytes);
  }

  const json = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    value: unknown,
    headers: Record<string, string> = {},
  ) =>
    send(req, res, status, JSON.stringify(value) + "\n", {
      ...headers,
      "content-type": "application/json; charset=utf-8",
    });

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    error: string,
    headers: Record<string, string> = {},
  ) => {
    stats.refused++;
    if (headers.connection === "close") {
      // The request's body is not read: the connection goes once the answer is out.
      res.on("finish", () => req.socket?.destroy());
    }
    json(req, res, status, { error }, headers);
  };

  async function stream(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (stats.watchers >= limits.maxWatchers) {
      refuse(req, res, 503, `Cannot open another event stream: ${limits.maxWatchers} are open`, {
        "retry-after": "10",
      });
      return;
    }
    stats.requests++;
    res.writeHead(200, {
      ...common,
      "content-type": "text/event-stream; charset=utf-8",
      "x-accel-buffering": "no",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    stats.watchers++;
    stats.streams++;
    let closed = false;
    let stop = () => {};
    const end = () => {
      if (closed) return;
      closed = true;
      stats.watchers--;
      streams.delete(end);
      stop();
      if (!res.writableEnded) res.end();
    };
    streams.add(end);
    res.on("close", end);
    const write = (name: string, data: unknown) => {
      if (closed) return;
      if (res.writableLength > limits.maxBuffered) {
        stats.slow++;
        res.destroy();
        end();
        return;
      }
      stats.events++;
      res.write(sseEvent(name, ++eventId, data));
    };
    try {
      const watch = await collector.watch((change: ChangeEvent) => write("change", change));
      stop = watch.stop;
      if (closed) {
        stop();
        return;
      }
      res.write("retry: 2000\n\n");
      write("snapshot", { view: watch.view, history: watch.history });
    } catch (error) {
      logger.warn("status page: cannot gather the cluster: {error}", { error: String(error) });
      res.destroy();
      end();
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "";
    if (method !== "GET" && method !== "HEAD") {
      return refuse(req, res, 405, `Cannot ${method} here: the status page is read-only`, {
        allow: "GET, HEAD",
        connection: "close",
      });
    }
    if (!hostAllowed(req.headers.host, hostNames)) {
      return refuse(req, res, 421, `Cannot serve host "${req.headers.host}": not this node`);
    }
    const length = req.headers["content-length"];
    if ((length !== undefined && length !== "0") || req.headers["transfer-encoding"]) {
      return refuse(req, res, 400, `Cannot take a body with ${method}`, { connection: "close" });
    }
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/api/events") return await stream(req, res);
    if (!ROUTES.includes(path)) {
      stats.notFound++;
      return json(req, res, 404, { error: `Cannot find "${path.slice(0, 200)}" here` });
    }
    if (path === "/" || path === "/index.html") {
      return send(req, res, 200, page, {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": policy,
        "x-frame-options": "DENY",
      });
    }
    if (path === "/api/history") return json(req, res, 200, collector.history());
    const view = await collector.fresh();
    const value = path === "/api/nodes"
      ? view.nodes
      : path === "/api/jobs"
      ? view.jobs
      : view.moves;
    return json(req, res, 200, value);
  }

  const server: Server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.headersTimeoutMs * 2,
    keepAliveTimeout: limits.keepAliveMs,
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  }, (req, res) => {
    handle(req, res).catch((error) => {
      logger.warn("status page: {method} {url}: {error}", {
        method: req.method,
        url: req.url,
        error: String(error),
      });
      if (!res.headersSent) json(req, res, 500, { error: "Cannot answer: see the node's log" });
      else res.destroy();
    });
  });
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    server.once("error", failed);
    server.listen(options.port, options.hostname, () => {
      server.off("error", failed);
      resolve();
    });
  });
  server.on(
    "error",
    (error: Error) => logger.warn("status page: {error}", { error: String(error) }),
  );
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    hostname: options.hostname,
    port,
    stats,
    async close() {
      for (const end of [...streams]) end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

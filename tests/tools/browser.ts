/// <reference lib="dom" />
/**
 * Real headless Chromium for the browser tests: Debian's `chromium` (scripts/test installs it),
 * driven by puppeteer-core over the DevTools pipe. `withBrowser(fn)` starts one, hands `fn` a
 * {@linkcode TestBrowser}, and takes everything down afterwards, whether `fn` succeeded or not.
 *
 * How it runs, and why:
 * - As root Chromium needs `--no-sandbox` (its sandbox refuses root). The tests run as root.
 * - It runs under `unshare --pid --fork --kill-child`: Chromium is PID 1 of its own PID namespace,
 *   so when it goes, the kernel kills and reaps every process it started (zygotes, renderers,
 *   crashpad handlers). Started plainly, those are orphaned to this machine's PID 1, which reaps
 *   them late: they linger as zombies after the test. Killing `unshare` kills the whole namespace.
 * - The DevTools protocol goes over `--remote-debugging-pipe` (Chromium reads fd 3, writes fd 4;
 *   a one-line sh maps them to its stdin and stdout, since Deno passes a child no other file
 *   descriptors), not over a TCP port: the pipe works the same when Chromium runs in a lab node's
 *   network namespace, where a port would be out of the host's reach.
 * - A lab node's address is not reachable from the host's namespace (the lab gives the host no
 *   interface or route: lib/lab/netns.ts), so for a page served on a lab node, pass `namespace`
 *   (a node's network namespace, `lab.record.nodes[i].namespace`): Chromium enters it with
 *   `nsenter --net` only. It does not join the node's cgroups, so its CPU and memory do not count
 *   in the figures the node publishes (which the status page shows).
 * - Its profile, caches and crash database go to a temporary directory, removed afterwards; no
 *   proxy is used (`--no-proxy-server`: a proxy from the environment would swallow lab addresses).
 *
 * puppeteer-core is a test-only dependency: nothing in lib/ or commands/ imports it
 * (tests/architecture_test.ts checks), so the product's start-up does not pay for it. The `dom`
 * library reference above types the functions that tests send into the page.
 */
import puppeteer, { type Browser, type ConnectionTransport, type Page } from "puppeteer-core";
import { withTimeout } from "../../lib/base/time.ts";

/**
 * The Chromium binary: `$OM_CHROMIUM`, else Debian's real binary (its `/usr/bin/chromium` is a sh
 * wrapper that adds flags from /etc/chromium.d and whose shared-memory check misparses `findmnt`
 * here), else `chromium` or `chromium-browser` on PATH. Undefined when there is none.
 */
export function findChromium(): string | undefined {
  const candidates = [Deno.env.get("OM_CHROMIUM"), "/usr/lib/chromium/chromium"];
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").filter(Boolean)) {
    candidates.push(`${dir}/chromium`, `${dir}/chromium-browser`);
  }
  for (const path of candidates) {
    if (!path) continue;
    try {
      const info = Deno.statSync(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch { /* not there */ }
  }
  return undefined;
}

/** The Chromium the tests use, found once (undefined when none is installed). */
export const CHROMIUM: string | undefined = findChromium();

/** Options of {@linkcode withBrowser}. */
export interface BrowserOptions {
  /** A network namespace under /run/netns to run Chromium in (a lab node's); default the host's. */
  readonly namespace?: string;
  /** The pages' viewport; default 1280x800. */
  readonly viewport?: { readonly width: number; readonly height: number };
  /** How long Chromium may take to start and answer; default 20 s. */
  readonly startTimeoutMs?: number;
}

/** Options of {@linkcode TestPage.waitFor}. */
export interface WaitOptions {
  /** Default 10 s. */
  readonly timeoutMs?: number;
  /** What is awaited, for the failure message ("node 3 to turn down"). */
  readonly what?: string;
}

/** How much of the page's text a failure message quotes. */
const SHOWN_CHARS = 2000;
/** How many page errors and console errors a page keeps (the latest). */
const KEPT_ERRORS = 50;

/** One tab of the browser, with the few things a test of a web page does. */
export class TestPage {
  /**
   * The page's uncaught exceptions ("page: ...") and console errors ("console: ..."), latest
   * last (at most 50); a test of a page that should have none asserts this is empty.
   */
  readonly errors: string[] = [];

  /** `page` is puppeteer's, for anything this class does not cover. */
  constructor(readonly page: Page, readonly browser: TestBrowser) {
    page.on("pageerror", (error) => this.#keep(`page: ${(error as Error).message ?? error}`));
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      const url = message.location().url ?? "";
      // The browser's own request for an icon the page never asked for is not the page's error.
      if (url.endsWith("/favicon.ico")) return;
      this.#keep(`console: ${message.text()}${url ? ` (${url})` : ""}`);
    });
  }

  #keep(error: string): void {
    this.errors.push(error);
    if (this.errors.length > KEPT_ERRORS) this.errors.shift();
  }

  /** Opens `url` in this tab and waits for its load event; an HTTP error status throws. */
  async goto(url: string, options: { timeoutMs?: number } = {}): Promise<void> {
    const response = await this.page.goto(url, {
      waitUntil: "load",
      timeout: options.timeoutMs ?? 10_000,
    });
    if (response && !response.ok()) {
      throw new Error(`Cannot open "${url}": HTTP ${response.status()} ${response.statusText()}`);
    }
  }

  /**
   * Waits until `condition`, evaluated in the page (a function or an expression), is truthy, and
   * returns its value. A function is sent to the page as its source, so it sees none of the test's
   * variables: pass them in `options.args` (JSON-like values). Polled every 50 ms, so that it also
   * works in a hidden tab (which runs no animation frames). On timeout the error says what was
   * awaited and what the page showed: its address, visibility, text and errors.
   */
  async waitFor<T, A extends unknown[] = []>(
    condition: string | ((...args: A) => T | Promise<T>),
    options: WaitOptions & { readonly args?: A } = {},
  ): Promise<Awaited<T>> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    try {
      const handle = await this.page.waitForFunction(
        condition as string | ((...args: unknown[]) => unknown),
        { timeout: timeoutMs, polling: 50 },
        ...(options.args ?? []),
      );
      const value = await handle.jsonValue();
      await handle.dispose();
      return value as Awaited<T>;
    } catch (error) {
      const what = options.what ?? (typeof condition === "string" ? condition : "the condition");
      throw new Error(
        `Cannot wait for ${what}: not met after ${(timeoutMs / 1000).toFixed(2)} s; ` +
          await this.describe(),
        { cause: error },
      );
    }
  }

  /** What the page shows now, for failure messages: address, visibility, text, errors. */
  async describe(): Promise<string> {
    let shown: { text: string; visibility: string };
    try {
      shown = await this.page.evaluate(() => ({
        text: document.body?.innerText ?? "",
        visibility: document.visibilityState,
      }));
    } catch (error) {
      return `the page (${this.page.url()}) could not be read: ${(error as Error).message}`;
    }
    const text = shown.text.length > SHOWN_CHARS
      ? `${shown.text.slice(0, SHOWN_CHARS)}...`
      : shown.text;
    const errors = this.errors.length ? `; its errors: ${this.errors.join(" | ")}` : "";
    return `the page (${this.page.url()}, ${shown.visibility}) showed: ${
      JSON.stringify(text)
    }${errors}`;
  }

  /** Evaluates `fn` in the page (puppeteer's `evaluate`). */
  evaluate<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): Promise<Awaited<R>> {
    // deno-lint-ignore no-explicit-any
    return this.page.evaluate(fn as any, ...args) as Promise<Awaited<R>>;
  }

  /** The rendered text of the first element matching `selector`; throws when none does. */
  async text(selector: string): Promise<string> {
    const texts = await this.texts(selector);
    if (texts.length === 0) throw new Error(await this.#noMatch(selector));
    return texts[0];
  }

  /** The rendered text of every element matching `selector`, in document order. */
  texts(selector: string): Promise<string[]> {
    return this.page.$$eval(
      selector,
      (elements) => elements.map((e) => (e as HTMLElement).innerText ?? e.textContent ?? ""),
    );
  }

  /** How many elements match `selector`. */
  count(selector: string): Promise<number> {
    return this.page.$$eval(selector, (elements) => elements.length);
  }

  /** Attribute `name` of the first element matching `selector` (null if it has none). */
  async attribute(selector: string, name: string): Promise<string | null> {
    const values = await this.page.$$eval(
      selector,
      (elements, name) => elements.map((e) => e.getAttribute(name)),
      name,
    );
    if (values.length === 0) throw new Error(await this.#noMatch(selector));
    return values[0];
  }

  async #noMatch(selector: string): Promise<string> {
    return `Cannot find "${selector}": no element matches; ${await this.describe()}`;
  }

  /**
   * Writes a PNG of the page (the whole page unless `fullPage` is false) to `path`. Not while the
   * tab is hidden: Chromium draws no frame then, and the capture waits (until puppeteer gives up,
   * after 3 minutes).
   */
  async screenshot(path: string, options: { fullPage?: boolean } = {}): Promise<string> {
    await this.page.screenshot({ path, type: "png", fullPage: options.fullPage ?? true });
    return path;
  }

  /** `document.visibilityState`: "visible" or "hidden". */
  visibility(): Promise<string> {
    return this.page.evaluate(() => document.visibilityState);
  }

  /**
   * Hides the tab as a user's minimized window does (CDP `Browser.setWindowBounds`, window state
   * "minimized"): `document.visibilityState` becomes "hidden" and the page gets its
   * `visibilitychange` event, and its scripts and timers keep running. The whole window is
   * minimized, so every tab of this browser is hidden. (Opening another tab hides this one too,
   * as in a desktop browser; headless Chromium otherwise keeps every page visible.) Returns once
   * the page says it is hidden.
   */
  async hide(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.#windowState("minimized");
    await this.waitFor(() => document.visibilityState === "hidden", {
      what: "the tab to be hidden",
      timeoutMs: options.timeoutMs ?? 5000,
    });
  }

  /** Shows the tab again (the window restored, this tab in front); returns once it is visible. */
  async show(options: { timeoutMs?: number } = {}): Promise<void> {
    await this.#windowState("normal");
    await this.page.bringToFront();
    await this.waitFor(() => document.visibilityState === "visible", {
      what: "the tab to be visible",
      timeoutMs: options.timeoutMs ?? 5000,
    });
  }

  async #windowState(windowState: "minimized" | "normal"): Promise<void> {
    const session = await this.page.createCDPSession();
    try {
      const { windowId } = await session.send("Browser.getWindowForTarget");
      await session.send("Browser.setWindowBounds", { windowId, bounds: { windowState } });
    } finally {
      await session.detach().catch(() => {});
    }
  }
}

/** A running Chromium, as handed to {@linkcode withBrowser}'s function. */
export interface TestBrowser {
  /** puppeteer's browser, for anything this helper does not cover. */
  readonly puppeteer: Browser;
  /** The temporary directory of its profile (every one of its processes names it). */
  readonly dir: string;
  /** The PID of its outermost process (`unshare`); Chromium is PID 1 of the namespace below. */
  readonly pid: number;
  /** Opens a new tab, at `url` if given. */
  open(url?: string): Promise<TestPage>;
  /** What Chromium wrote to its standard error lately (the last 8 KiB). */
  stderr(): string;
}

/** How much of Chromium's standard error is kept for messages. */
const STDERR_KEEP = 8192;

/**
 * Starts headless Chromium (in `options.namespace` if given), runs `fn` with it, and always
 * takes it down: closed through the protocol, killed if it does not exit within seconds, its
 * processes reaped (its PID namespace dies with it) and its directory removed. Returns `fn`'s
 * value; `fn`'s error is rethrown as it was.
 */
export async function withBrowser<T>(
  fn: (browser: TestBrowser) => Promise<T>,
  options: BrowserOptions = {},
): Promise<T> {
  const chromium = CHROMIUM;
  if (!chromium) {
    throw new Error(
      "Cannot start Chromium: none found (scripts/test installs Debian's chromium; " +
        "OM_CHROMIUM names another)",
    );
  }
  const dir = await Deno.makeTempDir({ prefix: "om-chromium-" });
  try {
    return await runBrowser(chromium, dir, fn, options);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** withBrowser's work once its directory is made: start, connect, run `fn`, take it all down. */
async function runBrowser<T>(
  chromium: string,
  dir: string,
  fn: (browser: TestBrowser) => Promise<T>,
  options: BrowserOptions,
): Promise<T> {
  const flags = await puppeteer.defaultArgs({
    browser: "chrome",
    headless: true,
    userDataDir: `${dir}/profile`,
    args: ["--no-sandbox", "--remote-debugging-pipe", "--no-proxy-server"],
  });
  const enter = options.namespace ? ["nsenter", `--net=/run/netns/${options.namespace}`, "--"] : [];
  const argv = [
    ...enter,
    "unshare",
    "--pid",
    "--fork",
    "--kill-child",
    "--",
    "sh",
    "-c",
    'exec "$@" 3<&0 4>&1 1>&2 0</dev/null',
    "sh",
    chromium,
    ...flags,
  ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { XDG_CONFIG_HOME: `${dir}/config`, XDG_CACHE_HOME: `${dir}/cache` },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let stderr = "";
  const stderrDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + chunk).slice(-STDERR_KEEP);
    }
  })().catch(() => {});
  const { transport, done: stdoutDone } = pipeTransport(child);
  const where = `${chromium}${options.namespace ? ` in ${options.namespace}` : ""}`;

  let browser: Browser | undefined;
  try {
    const startMs = options.startTimeoutMs ?? 20_000;
    try {
      browser = await withTimeout(
        Promise.race([
          puppeteer.connect({
            transport,
            defaultViewport: options.viewport ?? { width: 1280, height: 800 },
          }),
          child.status.then((s) => Promise.reject(new Error(`it exited with status ${s.code}`))),
        ]),
        startMs,
        `no answer after ${startMs / 1000} s`,
      );
    } catch (error) {
      // The pipe may close (puppeteer's "Target closed") a moment before the exit is seen: an
      // exit that follows within a second is what to tell.
      const exited = await withTimeout(child.status, 1000, "").then(
        (s) => `it exited with status ${s.code}`,
        () => (error as Error).message,
      );
      await withTimeout(stderrDone, 1000, "").catch(() => {});
      throw new Error(
        `Cannot start Chromium (${where}): ${exited}; its stderr ends: ${stderr.slice(-1500)}`,
      );
    }
    const connected = browser;
    const testBrowser: TestBrowser = {
      puppeteer: connected,
      dir,
      pid: child.pid,
      async open(url?: string) {
        const page = new TestPage(await connected.newPage(), testBrowser);
        if (url !== undefined) await page.goto(url);
        return page;
      },
      stderr: () => stderr,
    };
    return await fn(testBrowser);
  } finally {
    // Closed through the protocol; killed if it does not go (its PID namespace goes with it).
    if (browser) await withTimeout(browser.close(), 5000, "").catch(() => {});
    const exited = await withTimeout(child.status, 3000, "").then(() => true, () => false);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone meanwhile */ }
    }
    await child.status;
    transport.close();
    await Promise.all([stdoutDone, stderrDone]);
  }
}

/**
 * puppeteer's transport over Chromium's pipe: each message is JSON followed by a NUL byte, both
 * ways (a NUL never occurs inside JSON text).
 */
function pipeTransport(child: Deno.ChildProcess): {
  transport: ConnectionTransport;
  done: Promise<void>;
} {
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let open = true;
  const transport: ConnectionTransport = {
    send(message: string) {
      if (open) writer.write(encoder.encode(`${message}\0`)).catch(() => {});
    },
    close() {
      if (!open) return;
      open = false;
      writer.close().catch(() => {});
    },
  };
  const done = (async () => {
    let pending = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      for (let end = pending.indexOf("\0"); end >= 0; end = pending.indexOf("\0")) {
        const message = pending.slice(0, end);
        pending = pending.slice(end + 1);
        transport.onmessage?.(message);
      }
    }
  })().catch(() => {}).finally(() => transport.onclose?.());
  return { transport, done };
}

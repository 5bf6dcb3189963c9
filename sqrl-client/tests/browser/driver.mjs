// Drives a real headless Chromium for the end-to-end login test (main.rs).
//
//   node driver.mjs <base-url> <artifact-dir> <sse|poll|held|rotate|elsewhere>
//
// The Rust test talks to this script in lines: each line this script prints
// on standard output is one JSON object; each line it reads on standard input
// is one command.
//
//   prints  {"event":"ready", "url", "link", "status", "screenshot"}
//           once the login page shows its code (screenshot: a PNG of the
//           page as a person sees it, the image the `sqrl` CLI then scans);
//   reads   "expect-account <unix-ms>"  (the CLI finished at that time)
//   prints  {"event":"account", "fingerprint", "text", "latencyMs", ...}
//           once the page has signed itself in, or {"event":"error", ...};
//   reads   "expect-check"
//   prints  {"event":"check", "fingerprint", "status", ...} once the page
//           shows the identity a sign-in from another network would use;
//   reads   "expect-local-app"
//   prints  {"event":"local-app", "text", "linkClass"} once the page shows
//           that a SQRL app answers on this computer;
//   reads   "expect-path <path>"
//   prints  {"event":"page", ...} once the page has got to that path by
//           itself;
//   reads   "click <selector>"  (clicks the first match, as a person would)
//           "goto <url or path>"
//   prints  {"event":"page", "pageUrl", "text", "status"?, ...} for the
//           document that follows;
//   reads   "expect-expired"
//   prints  {"event":"expired", "qrHidden", "linkHidden", "siteName",
//           "help", "text"} once the page shows that its code expired;
//   reads   "layout <width>"
//   prints  {"event":"layout", "innerWidth", "scrollWidth", "overflowing",
//           "times", "text"} for the current page on a screen that wide;
//   reads   "quit" (or end of input): closes the browser and exits.
//
// Nothing here navigates the page after the first load unless told to
// ("click", "goto"): if the page reaches the account page after
// "expect-account", it got there on its own.
//
// In "poll" mode the page's Server-Sent Events request is refused at the
// network layer (as by a proxy that does not pass event streams), so the
// page has to fall back to polling /pag.sqrl. In "held" mode the stream is
// accepted but nothing ever comes through (as behind a proxy that buffers
// responses until they end). In "rotate" mode the page is photographed only
// once it has replaced its first code with a fresh one.

import { createInterface } from "node:readline";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, out, mode] = process.argv.slice(2);
if (!base || !out || !["sse", "poll", "held", "rotate", "elsewhere"].includes(mode)) {
  console.error("usage: node driver.mjs <base-url> <artifact-dir> <sse|poll|held|rotate|elsewhere>");
  process.exit(2);
}

// Everything the Rust test needs arrives as one JSON object per line.
function send(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

// A hard stop, so that a stuck browser never outlives the test.
const watchdog = setTimeout(() => {
  send({ event: "error", message: "driver watchdog: 50 s passed" });
  process.exit(3);
}, 50_000);

const lines = createInterface({ input: process.stdin });
const commands = lines[Symbol.asyncIterator]();
async function command() {
  const next = await commands.next();
  return next.done ? "quit" : next.value.trim();
}

const browser = await chromium.launch({
  executablePath: process.env.SQRL_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Chromium otherwise reaches for the (absent) network at start-up.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

// What the browser did, for the assertions and for a failure's diagnosis.
const requests = [];
const entries = new Map();
const navigations = [];
const consoleMessages = [];
const pageErrors = [];

// In "elsewhere" mode the browser is on another network than the device
// that confirms: the site (trusting 127.0.0.1 as its proxy) sees it at the
// address this header names.
// A time zone with a half-hour offset, so that a time shown in the
// viewer's zone can be told from UTC by its minutes alone.
const context = await browser.newContext({
  viewport: { width: 900, height: 900 },
  timezoneId: "Asia/Kolkata",
  extraHTTPHeaders: mode === "elsewhere" ? { "X-Forwarded-For": "198.51.100.7" } : {},
});
const page = await context.newPage();
// Each request with its response status, and how it failed if it did (an
// event stream the page closes ends as "net::ERR_ABORTED" after its 200).
page.on("request", (request) => {
  const entry = {
    method: request.method(),
    url: request.url(),
    type: request.resourceType(),
    navigation: request.isNavigationRequest(),
  };
  entries.set(request, entry);
  requests.push(entry);
});
page.on("response", (response) => {
  const entry = entries.get(response.request());
  if (entry) {
    entry.status = response.status();
  }
});
page.on("requestfailed", (request) => {
  const entry = entries.get(request);
  if (entry) {
    entry.failed = request.failure()?.errorText ?? "failed";
  }
});
page.on("framenavigated", (frame) => {
  if (frame === page.mainFrame()) {
    navigations.push({ url: frame.url(), at: Date.now() });
  }
});
page.on("console", (message) => {
  consoleMessages.push({ type: message.type(), text: message.text(), url: message.location()?.url ?? "" });
});
page.on("pageerror", (error) => pageErrors.push(String(error)));

if (mode === "poll") {
  await context.route(/\/login\/events(\?|$)/, (route) => route.abort("connectionrefused"));
} else if (mode === "held") {
  await context.route(/\/login\/events(\?|$)/, () => {});
}

// Waits until `test()` holds, checking every 20 ms.
async function until(test, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const png = (name) => join(out, name);

// Saves what the page shows now (screenshot, text, HTML) under `name`.
async function keep(name) {
  const saved = { screenshot: png(`${name}.png`) };
  try {
    await page.screenshot({ path: saved.screenshot });
    writeFileSync(join(out, `${name}.txt`), await page.innerText("body"));
    writeFileSync(join(out, `${name}.html`), await page.content());
  } catch (error) {
    saved.error = String(error);
  }
  return saved;
}

// The document the page shows now: where, its text, what a person sees.
async function pageReport(name) {
  const saved = await keep(`${name}-${navigations.length}`);
  return { pageUrl: page.url(), text: await page.innerText("body"), saved, ...record() };
}

function record() {
  return {
    pageUrl: page.url(),
    requests,
    navigations,
    console: consoleMessages,
    pageErrors,
  };
}

async function fail(message) {
  const saved = await keep("failure");
  send({ event: "error", message, saved, ...record() });
}

try {
  await page.goto(`${base}/`, { waitUntil: "load" });
  // The code is drawn and the page script has started following the login.
  await page.locator("#qr svg").waitFor({ state: "visible", timeout: 10_000 });
  const live = mode === "poll" ? /\/pag\.sqrl\?/ : /\/login\/events\?/;
  await until(() => requests.some((r) => live.test(r.url)), 10_000, `a request matching ${live}`);
  const firstUrl = (await page.locator("#url").textContent())?.trim() ?? "";
  if (mode === "rotate") {
    // The open page swaps in a fresh code by itself (code and text at once).
    await page.waitForFunction(
      (first) => document.getElementById("url").textContent.trim() !== first,
      firstUrl,
      { timeout: 20_000, polling: 50 },
    );
  }
  const url = (await page.locator("#url").textContent())?.trim() ?? "";
  const link = (await page.locator("#link").getAttribute("href")) ?? "";
  const status = (await page.locator("#status").textContent())?.trim() ?? "";
  // The camera's view: the visible page, not the DOM.
  const shot = await keep("login");
  send({ event: "ready", firstUrl, url, link, status, screenshot: shot.screenshot, pageUrl: page.url() });

  // Then commands, one per line, until "quit".
  for (let line = await command(); line !== "quit"; line = await command()) {
    const [verb, ...rest] = line.split(/\s+/);
    const arg = rest.join(" ");
    try {
      if (verb === "expect-account") {
        const cliDoneAt = Number(arg);
        await page.waitForURL((u) => u.pathname === "/account", { timeout: 15_000 });
        await page.locator("#fingerprint").waitFor({ state: "visible", timeout: 5_000 });
        const arrived = navigations.findLast((n) => new URL(n.url).pathname === "/account");
        const saved = await keep("account");
        send({
          event: "account",
          fingerprint: (await page.locator("#fingerprint").textContent())?.trim() ?? "",
          text: await page.innerText("body"),
          latencyMs: arrived ? arrived.at - cliDoneAt : null,
          saved,
          ...record(),
        });
      } else if (verb === "expect-check") {
        // The page waits for a click before a sign-in confirmed from
        // another network, showing whose identity it is.
        await page.locator("#check").waitFor({ state: "visible", timeout: 15_000 });
        const saved = await keep("check");
        send({
          event: "check",
          fingerprint: (await page.locator("#check-fingerprint").textContent())?.trim() ?? "",
          status: (await page.locator("#status").textContent())?.trim() ?? "",
          saved,
          ...record(),
        });
      } else if (verb === "expect-local-app") {
        // The page found a SQRL app on this computer and says so.
        await page.locator("#local-app").waitFor({ state: "visible", timeout: 10_000 });
        send({
          event: "local-app",
          text: (await page.locator("#local-app").textContent())?.trim() ?? "",
          linkClass: (await page.locator("#link").getAttribute("class")) ?? "",
          ...record(),
        });
      } else if (verb === "expect-path") {
        // The page got to this path by itself (a login that returns the
        // browser where it came from).
        await page.waitForURL((u) => u.pathname === arg, { timeout: 15_000 });
        await page.waitForLoadState("load");
        send({ event: "page", ...(await pageReport("arrived")) });
      } else if (verb === "click") {
        // Clicks the first element matching the selector, as a person
        // would, and reports the document it leads to.
        const before = navigations.length;
        await page.locator(arg).first().click({ timeout: 5_000 });
        await until(() => navigations.length > before, 10_000, `a navigation after clicking ${arg}`);
        await page.waitForLoadState("load");
        send({ event: "page", ...(await pageReport(`click`)) });
      } else if (verb === "expect-expired") {
        // The page's code expired: it should take the code away and offer
        // a fresh one.
        await page.locator("#expired").waitFor({ state: "visible", timeout: 25_000 });
        const saved = await keep("expired");
        send({
          event: "expired",
          qrHidden: await page.locator("#qr").isHidden(),
          linkHidden: await page.locator("#link").isHidden(),
          siteName: (await page.locator("#site-name").textContent())?.trim() ?? "",
          help: (await page.locator("#help").getAttribute("href")) ?? "",
          text: await page.innerText("body"),
          saved,
          ...record(),
        });
      } else if (verb === "layout") {
        // The current page on a screen `arg` CSS pixels wide (a phone is
        // 390): whether anything runs off its side, and the times it shows.
        await page.setViewportSize({ width: Number(arg), height: 844 });
        await page.waitForLoadState("load");
        const layout = await page.evaluate(() => ({
          innerWidth: window.innerWidth,
          scrollWidth: document.documentElement.scrollWidth,
          overflowing: [...document.querySelectorAll("body *")]
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
            .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""))
            .slice(0, 10),
          times: [...document.querySelectorAll("time[datetime]")].map((t) => ({
            text: t.textContent,
            title: t.title,
            datetime: t.getAttribute("datetime"),
          })),
        }));
        const saved = await keep(`layout-${arg}`);
        send({ event: "layout", ...layout, text: await page.innerText("body"), saved });
      } else if (verb === "goto") {
        const response = await page.goto(new URL(arg, base).href, { waitUntil: "load" });
        send({ event: "page", status: response?.status() ?? null, ...(await pageReport("goto")) });
      } else {
        send({ event: "error", message: `unknown command ${line}` });
      }
    } catch (error) {
      await fail(`${line}: ${error.message ?? error}`);
    }
  }
} catch (error) {
  await fail(String(error.message ?? error));
  await command();
} finally {
  clearTimeout(watchdog);
  lines.close();
  await browser.close();
}

/**
 * A real headless Chromium for tests that look at a page as a person would (the admin status
 * page), driven by playwright-core (a devDependency: the driver only, no browser download).
 * The browser is Debian's `chromium` package, installed when missing (`apt-get update` once,
 * then `apt-get install -y --no-install-recommends chromium`, as root); `prepareBrowser` says
 * why when that is not possible, so the caller can skip with the reason.
 */
import type { Browser, BrowserType } from "playwright-core";
import { findTool, run } from "./real-dns.js";

/** The Debian package that provides the browser. */
export const PACKAGE = "chromium";

/** Names the Chromium binary goes by (Debian's first). */
const BINARIES = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"];

const tail = (text: string, n = 1500) => text.trim().slice(-n);

const findChromium = () => BINARIES.map((name) => findTool(name)).find((path) => path !== undefined);

/** A browser that can be launched: where it is, its version, and playwright's launcher. */
export interface BrowserTools {
  executablePath: string;
  version: string;
  chromium: BrowserType;
}

let prepared: Promise<{ ok: true; tools: BrowserTools } | { ok: false; reason: string }>;

/**
 * Find Chromium, installing the Debian package when it is missing, and load playwright-core.
 * Resolves with both, or with the reason they cannot be had (the caller skips and prints it).
 * Called twice in one process, it runs once.
 */
export function prepareBrowser(): typeof prepared {
  prepared ??= (async () => {
    let playwright: typeof import("playwright-core");
    try {
      playwright = await import("playwright-core");
    } catch (err) {
      return {
        ok: false as const,
        reason: `playwright-core cannot be loaded (a devDependency: run npm ci): ${(err as Error).message}`,
      };
    }
    let executablePath = findChromium();
    if (!executablePath) {
      if (process.getuid?.() !== 0)
        return {
          ok: false as const,
          reason: `chromium not installed and not root, so apt-get cannot install ${PACKAGE}`,
        };
      if (!findTool("apt-get"))
        return { ok: false as const, reason: "chromium not installed and there is no apt-get" };
      const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
      // Another test file may be installing at the same moment: wait for dpkg's lock.
      const lock = ["-o", "DPkg::Lock::Timeout=300"];
      const update = await run("apt-get", [...lock, "update"], { timeoutMs: 180_000, env });
      if (update.code !== 0)
        return {
          ok: false as const,
          reason: `apt-get update failed (${update.timedOut ? "timed out" : `exit ${update.code}`}): ${tail(update.stderr || update.stdout)}`,
        };
      const install = await run("apt-get", [...lock, "install", "-y", "--no-install-recommends", PACKAGE], {
        timeoutMs: 400_000,
        env,
      });
      if (install.code !== 0)
        return {
          ok: false as const,
          reason: `apt-get install ${PACKAGE} failed (${install.timedOut ? "timed out" : `exit ${install.code}`}): ${tail(install.stderr || install.stdout)}`,
        };
      executablePath = findChromium();
      if (!executablePath)
        return { ok: false as const, reason: "chromium still missing after apt-get install" };
    }
    const version = await run(executablePath, ["--version"], { timeoutMs: 30_000 });
    return {
      ok: true as const,
      tools: {
        executablePath,
        // Debian's wrapper script may print shell noise on stderr: the version is on stdout.
        version: version.stdout.trim() || `unknown (${tail(version.stderr, 200)})`,
        chromium: playwright.chromium,
      },
    };
  })();
  return prepared;
}

/**
 * Launch headless Chromium. `--no-sandbox`: tests run as root, where Chromium's sandbox
 * refuses to start. Close it with `browser.close()`, which ends its processes.
 */
export function launchBrowser(tools: BrowserTools): Promise<Browser> {
  return tools.chromium.launch({
    executablePath: tools.executablePath,
    headless: true,
    args: ["--no-sandbox"],
  });
}

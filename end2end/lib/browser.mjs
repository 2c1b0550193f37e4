// Helpers that drive the system Chromium through playwright-core for the Siteline browser tests.

import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

// Bounds every single wait (navigation, selector, hydration) so that a broken page fails the test
// with a message instead of hanging the run.
export const WAIT_TIMEOUT_MS = 15_000;

export const SCREENSHOT_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'screenshots');

// Path of Debian's chromium package. playwright-core ships no browser, and the tests must not download one.
const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

// The background-networking, component-update and sync switches stop most of Chromium's own
// calls to Google services, which a machine without outside network access would refuse.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Launches headless Chromium from CHROMIUM_PATH, or /usr/bin/chromium when it is unset.
 * Share one browser per test file and give each test its own context through withPage.
 */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH || DEFAULT_CHROMIUM_PATH;
  try {
    return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 30_000 });
  } catch (error) {
    throw new Error(
      `Failed to launch Chromium at ${executablePath}: ${error.message}\n` +
        'Install it with `apt-get install -y --no-install-recommends chromium` ' +
        'or point CHROMIUM_PATH at a Chromium binary.',
      { cause: error },
    );
  }
}

/**
 * Runs `body(page)` in a fresh browser context, so that tests share no cookies or storage.
 * When the body throws, saves a screenshot named after the test and prints the page's console
 * errors before rethrowing, then closes the context either way.
 *
 * `testContext` is the node:test context (`t`), which supplies the test name.
 * `contextOptions` go to browser.newContext, for example `{ javaScriptEnabled: false }`.
 */
export async function withPage(browser, testContext, contextOptions, body) {
  const context = await browser.newContext(contextOptions);
  context.setDefaultTimeout(WAIT_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(WAIT_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors = collectPageErrors(page);

  try {
    await screenshotOnFailure(page, testContext.name, () => body(page));
  } catch (error) {
    if (pageErrors.length > 0) {
      console.error(`Browser console errors during "${testContext.name}":\n  ${pageErrors.join('\n  ')}`);
    }
    throw error;
  } finally {
    await context.close();
  }
}

/**
 * Runs `action()`. When it throws, saves a full-page screenshot named `FAILED-<testName>`
 * and rethrows the original error. A failing screenshot is reported but never hides that error.
 */
export async function screenshotOnFailure(page, testName, action) {
  try {
    return await action();
  } catch (error) {
    try {
      await screenshot(page, `FAILED-${testName}`);
    } catch (screenshotError) {
      console.error(`Failed to save the failure screenshot for "${testName}": ${screenshotError.message}`);
    }
    throw error;
  }
}

/**
 * Saves a full-page screenshot to end2end/screenshots/<name>.png and prints its path.
 * Characters other than letters, digits, dot, dash and underscore in `name` become dashes.
 */
export async function screenshot(page, name) {
  const fileName = `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}.png`;
  const path = join(SCREENSHOT_DIR, fileName);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path, fullPage: true, timeout: WAIT_TIMEOUT_MS });
  console.log(`Screenshot saved: ${path}`);
  return path;
}

/**
 * Opens `${baseUrl}/login`, fills in the email and password and submits the form.
 *
 * By default it waits for hydration first, so the submit goes through the hydrated ActionForm.
 * Pass `{ hydrate: false }` in a context without JavaScript, where the plain HTML form posts
 * to the server. It does not wait for the result: the caller checks where the browser lands.
 */
export async function login(page, baseUrl, email, password, { hydrate = true } = {}) {
  await page.goto(new URL('/login', baseUrl).href);
  if (hydrate) {
    await waitForHydration(page);
  }

  await page.getByLabel('Email', { exact: true }).fill(email);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
}

/**
 * Waits until the app sets `data-hydrated="true"` on <html>, which it does in an effect after
 * the wasm bundle has hydrated the server-rendered page.
 */
export async function waitForHydration(page, timeout = WAIT_TIMEOUT_MS) {
  try {
    await page.waitForFunction(() => document.documentElement.dataset.hydrated === 'true', null, {
      timeout,
    });
  } catch (error) {
    throw new Error(
      `Page ${page.url()} did not set <html data-hydrated="true"> within ${timeout} ms. ` +
        'Check that the wasm bundle under LEPTOS_SITE_ROOT loads and that the browser console shows no panic.',
      { cause: error },
    );
  }
}

/**
 * Waits until the page's path is `pathname`, ignoring the query string and fragment,
 * so a redirect that adds `?next=` or an error parameter still matches.
 */
export async function waitForPath(page, pathname, timeout = WAIT_TIMEOUT_MS) {
  try {
    await page.waitForURL((url) => url.pathname === pathname, { timeout });
  } catch (error) {
    throw new Error(`Expected the browser on ${pathname} within ${timeout} ms, but it is on ${page.url()}.`, {
      cause: error,
    });
  }
}

/**
 * Waits until an element matched by `locator` is visible and contains `text`.
 * On timeout the error names the expected text and the text the first match shows.
 */
export async function waitForText(locator, text, timeout = WAIT_TIMEOUT_MS) {
  try {
    await locator.filter({ hasText: text }).first().waitFor({ state: 'visible', timeout });
  } catch (error) {
    const actual = await locator
      .first()
      .textContent({ timeout: 1_000 })
      .catch(() => '(no matching element)');
    throw new Error(`Expected ${locator} to contain "${text}" within ${timeout} ms, but it shows "${actual}".`, {
      cause: error,
    });
  }
}

/**
 * Returns the value of the environment variable `name`, or throws naming it when it is unset.
 * run.sh sets all the variables that the tests read.
 */
export function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`Environment variable ${name} is missing. Run the tests through end2end/run.sh, which sets it.`);
  }
  return value;
}

// Records uncaught page exceptions and console errors, such as a wasm panic during hydration,
// so that a failing test can print them.
function collectPageErrors(page) {
  const errors = [];
  page.on('pageerror', (error) => errors.push(`uncaught exception: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') {
      errors.push(`console.error: ${message.text()} (${message.location().url || 'no URL'})`);
    }
  });
  return errors;
}

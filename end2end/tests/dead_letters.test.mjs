// Browser journeys through the admin's Dead letters pages.
// run.sh starts the server with demo jobs and queues two demo.fail jobs, which are dead before
// the tests start: one succeeds when retried, the other fails on every attempt. It sets
// BASE_URL and ADMIN_*.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  WAIT_TIMEOUT_MS,
  launchBrowser,
  login,
  requireEnv,
  screenshot,
  waitForHydration,
  waitForPath,
  waitForText,
  withPage,
} from '../lib/browser.mjs';

// Bounds a whole journey. Each single wait inside it is bounded by WAIT_TIMEOUT_MS.
const TEST_TIMEOUT_MS = 120_000;

// How long the retried job may take to succeed. The server polls for due jobs every 200 ms
// (JOB_POLL_MS in run.sh), and a new delivery wakes a worker at once.
const JOB_SUCCESS_TIMEOUT_MS = 30_000;
const RELOAD_INTERVAL_MS = 500;

const LIST_PATH = '/admin/dead-letters';
const DEMO_KIND = 'demo.fail';

// Search texts that match one demo job each, in the payload as PostgreSQL prints jsonb.
const SUCCEEDS_ON_RETRY = '"fail_attempts": 1';
const ALWAYS_FAILS = '"sleep_ms": 10';

// Returns the list URL for the given filters.
function listUrl(baseUrl, filters = {}) {
  const url = new URL(LIST_PATH, baseUrl);
  for (const [key, value] of Object.entries(filters)) {
    url.searchParams.set(key, value);
  }
  return url.href;
}

describe('dead letters', () => {
  let browser;
  let baseUrl;
  let adminEmail;
  let adminPassword;

  before(async () => {
    baseUrl = requireEnv('BASE_URL');
    adminEmail = requireEnv('ADMIN_EMAIL');
    adminPassword = requireEnv('ADMIN_PASSWORD');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
  });

  // Signs in as the admin and waits for the landing page.
  async function signIn(page, options) {
    await login(page, baseUrl, adminEmail, adminPassword, options);
    await waitForPath(page, '/');
  }

  // These read-only tests run first: the retry journey below changes the demo row's status.

  test('list renders without JavaScript', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { javaScriptEnabled: false }, async (page) => {
      await signIn(page, { hydrate: false });
      await page.goto(listUrl(baseUrl, { kind: DEMO_KIND }));

      const rows = page.getByTestId('dead-letter-row');
      await waitForText(rows, DEMO_KIND);
      assert.equal(await rows.count(), 2, `expected two ${DEMO_KIND} dead letters in the server-rendered list`);
      assert.equal((await page.getByTestId('open-count').textContent())?.trim(), '2');
      await screenshot(page, 'dead-letters-no-js-01-list');
    });
  });

  test('invalid filter names the value', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page);
      await page.goto(listUrl(baseUrl, { class: 'flaky' }));

      const error = page.getByTestId('list-error');
      await waitForText(error, 'class "flaky" is invalid');
      await waitForText(error, 'permanent');
      await screenshot(page, 'dead-letters-invalid-filter');
    });
  });

  test('list fits a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { viewport: { width: 360, height: 740 } }, async (page) => {
      await signIn(page);
      await page.goto(listUrl(baseUrl));
      await waitForHydration(page);
      await waitForText(page.getByTestId('dead-letter-row'), DEMO_KIND);

      // The wide table scrolls inside its own container, so the page keeps the screen's width.
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `the dead letters page is ${width} px wide on a 360 px screen`);
      await screenshot(page, 'dead-letters-phone-01-list');

      await page.getByTestId('dead-letter-link').first().click();
      await waitForText(page.getByTestId('detail-kind'), DEMO_KIND);
      const detailWidth = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(detailWidth <= 360, `the dead letter page is ${detailWidth} px wide on a 360 px screen`);
      await screenshot(page, 'dead-letters-phone-02-detail');
    });
  });

  test('retry and discard work without JavaScript', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { javaScriptEnabled: false }, async (page) => {
      await signIn(page, { hydrate: false });
      await page.goto(listUrl(baseUrl, { q: ALWAYS_FAILS }));
      const rows = page.getByTestId('dead-letter-row');
      await waitForText(rows, 'open');
      assert.equal(await rows.count(), 1, `expected one dead letter matching ${ALWAYS_FAILS}`);

      // The plain form post returns to this page with the counts in the URL.
      await rows.getByTestId('dead-letter-select').check();
      await page.getByTestId('retry-selected').click();
      await waitForText(page.getByTestId('retry-report'), 'Retried 1, skipped 0 (already retried or discarded).');
      await screenshot(page, 'dead-letters-no-js-02-retried');

      // The job fails again on its second run, which makes a new open dead letter.
      const rerun = await reloadUntil(page, listUrl(baseUrl, { q: ALWAYS_FAILS }), async () => {
        return (await rows.count()) === 1;
      });
      assert.ok(rerun, `no open dead letter matching ${ALWAYS_FAILS} appeared after the retry`);
      await rows.getByTestId('dead-letter-link').click();
      await waitForText(page.getByTestId('detail-status'), 'open');
      await waitForText(page.getByTestId('attempts'), 'dead');

      // A blank reason passes the browser's `required` check, so the backend's message shows.
      await page.getByTestId('discard-reason').fill('   ');
      await page.getByTestId('discard-button').click();
      await waitForText(page.getByTestId('discard-error'), 'a discard needs a reason');
      await screenshot(page, 'dead-letters-no-js-03-discard-error');

      await page.getByTestId('discard-reason').fill('Demo job that can never succeed.');
      await page.getByTestId('discard-button').click();
      await waitForText(page.getByTestId('detail-status'), 'discarded');
      await waitForText(page.getByTestId('detail-resolution'), `Discarded by ${adminEmail}`);
      await waitForText(page.getByTestId('detail-job-status'), 'discarded');
      await screenshot(page, 'dead-letters-no-js-04-discarded');
    });
  });

  test('admin retries the failed demo job', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page);
      await waitForHydration(page);

      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dead letters' }).click();
      await waitForPath(page, LIST_PATH);
      await page.getByLabel('Search payload and errors').fill(SUCCEEDS_ON_RETRY);
      await page.getByTestId('apply-filters').click();
      await page.waitForURL((url) => url.searchParams.get('q') === SUCCEEDS_ON_RETRY);
      // The hydrated form navigates without a reload, and the old rows stay until the new ones load.
      await page.waitForFunction(
        () => document.querySelectorAll('[data-testid="dead-letter-row"]').length === 1,
        null,
        { timeout: WAIT_TIMEOUT_MS },
      );
      const row = page.getByTestId('dead-letter-row').filter({ hasText: DEMO_KIND });
      await waitForText(row, 'permanent');
      await waitForText(row, 'open');
      await screenshot(page, 'dead-letters-01-list');

      await row.getByTestId('dead-letter-link').click();
      await waitForText(page.getByTestId('detail-kind'), DEMO_KIND);
      await waitForText(page.getByTestId('detail-status'), 'open');
      await waitForText(page.getByTestId('detail-job-status'), 'dead');
      await waitForText(page.getByTestId('error-chain'), 'demo failure on attempt 1');
      await waitForText(page.getByTestId('attempts'), 'dead');
      await screenshot(page, 'dead-letters-02-detail');

      await waitForHydration(page);
      await page.getByTestId('retry-button').click();
      await waitForText(page.getByTestId('retry-report'), 'Retried 1, skipped 0 (already retried or discarded).');
      await waitForText(page.getByTestId('detail-status'), 'retried');
      await screenshot(page, 'dead-letters-03-after-retry');

      const jobStatus = await waitForJobStatus(page, 'succeeded');
      assert.equal(jobStatus, 'succeeded');
      await screenshot(page, 'dead-letters-04-succeeded');
    });
  });

  test('second retry of the same id is skipped', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page);
      await page.goto(listUrl(baseUrl, { status: 'all', q: SUCCEEDS_ON_RETRY }));
      await waitForHydration(page);

      const row = page.getByTestId('dead-letter-row').filter({ hasText: DEMO_KIND });
      await waitForText(row, 'retried');
      const checkbox = row.getByTestId('dead-letter-select');
      assert.equal(await checkbox.isDisabled(), true, 'a retried dead letter must not be selectable');

      // A forged submit with the retried id, as a stale second tab would send, queues nothing.
      await checkbox.evaluate((input) => {
        input.disabled = false;
        input.checked = true;
      });
      await page.getByTestId('retry-selected').click();
      await waitForText(page.getByTestId('retry-report'), 'Retried 0, skipped 1 (already retried or discarded).');
      await screenshot(page, 'dead-letters-05-second-retry-skipped');
    });
  });

  // Opens `url`, reloading it until `check()` returns true or JOB_SUCCESS_TIMEOUT_MS has
  // passed. Returns whether the check passed.
  async function reloadUntil(page, url, check) {
    const deadline = Date.now() + JOB_SUCCESS_TIMEOUT_MS;
    await page.goto(url);
    while (!(await check())) {
      if (Date.now() >= deadline) {
        return false;
      }
      await page.waitForTimeout(RELOAD_INTERVAL_MS);
      await page.goto(url);
    }
    return true;
  }

  // Reloads the detail page until its job status reads `expected`, and returns the last status.
  async function waitForJobStatus(page, expected) {
    const deadline = Date.now() + JOB_SUCCESS_TIMEOUT_MS;
    let status = '';
    for (;;) {
      status = ((await page.getByTestId('detail-job-status').textContent({ timeout: WAIT_TIMEOUT_MS })) ?? '').trim();
      if (status === expected || Date.now() >= deadline) {
        break;
      }
      await page.waitForTimeout(RELOAD_INTERVAL_MS);
      await page.reload();
    }
    assert.equal(
      status,
      expected,
      `the retried job's status is "${status}" after ${JOB_SUCCESS_TIMEOUT_MS} ms; expected "${expected}". ` +
        'Check the worker lines in end2end/screenshots/server.log.',
    );
    return status;
  }
});

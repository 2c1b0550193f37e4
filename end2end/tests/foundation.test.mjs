// Browser journeys through login, the hydrated chat page and logout.
// run.sh starts the server and sets BASE_URL and the MANAGER_* credentials.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
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
const TEST_TIMEOUT_MS = 90_000;

describe('foundation', () => {
  let browser;
  let baseUrl;
  let managerEmail;
  let managerPassword;

  before(async () => {
    baseUrl = requireEnv('BASE_URL');
    managerEmail = requireEnv('MANAGER_EMAIL');
    managerPassword = requireEnv('MANAGER_PASSWORD');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
  });

  test('manager logs in, starts a conversation without a reload, logs out', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await page.goto(new URL('/login', baseUrl).href);
      await screenshot(page, 'manager-01-login-page');

      await login(page, baseUrl, managerEmail, managerPassword);
      await waitForPath(page, '/chat');
      const topbar = page.locator('header.topbar');
      await waitForText(topbar, managerEmail);
      await waitForHydration(page);

      // A full page load would discard this marker, so finding it after the start proves that
      // the hydrated form called the server and moved to the conversation in the page.
      await page.evaluate(() => {
        window.__noReload = 1;
      });
      await page.getByTestId('chat-site-code').fill('HYD-01');
      await page.getByTestId('chat-start').click();
      await page.waitForURL((url) => url.searchParams.has('c'));
      await waitForText(page.getByRole('heading', { level: 1 }), 'Chat: HYD-01');
      await waitForText(page.getByTestId('chat-state-label'), 'Waiting for your first message');
      assert.equal(
        await page.evaluate(() => window.__noReload),
        1,
        'window.__noReload was cleared, so starting a conversation reloaded the page',
      );
      await screenshot(page, 'manager-02-chat-started');

      // The conversation is not needed by the other journeys.
      await page.getByTestId('chat-cancel').click();
      await waitForText(page.getByTestId('chat-state-label'), 'Cancelled');

      await topbar.getByRole('button', { name: 'Log out', exact: true }).click();
      await waitForPath(page, '/login');
      await screenshot(page, 'manager-03-after-logout');

      await page.goto(new URL('/chat', baseUrl).href);
      await waitForPath(page, '/login');
      await screenshot(page, 'manager-04-chat-signed-out');
    });
  });

  test('login works before hydration', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { javaScriptEnabled: false }, async (page) => {
      await login(page, baseUrl, managerEmail, managerPassword, { hydrate: false });
      await waitForPath(page, '/chat');

      const heading = page.getByRole('heading', { level: 1 });
      assert.equal((await heading.textContent())?.trim(), 'Chat', 'the /chat page has the wrong <h1>');
      await waitForText(page.locator('header.topbar'), managerEmail);

      // Without JavaScript the start form is there and usable: it came from the server.
      const siteCode = page.getByTestId('chat-site-code');
      assert.equal(await siteCode.isEditable(), true, 'the site code field is not editable');
      await screenshot(page, 'no-js-01-chat');
    });
  });

  test('wrong password shows an error', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await login(page, baseUrl, managerEmail, `${managerPassword}-wrong`);

      await waitForText(page.getByRole('alert'), 'Email or password is incorrect');
      assert.equal(
        new URL(page.url()).pathname,
        '/login',
        `a failed login left the login page for ${page.url()}`,
      );
      await screenshot(page, 'wrong-password-01-error');
    });
  });

  test('chat page fits a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { viewport: { width: 360, height: 740 } }, async (page) => {
      await login(page, baseUrl, managerEmail, managerPassword);
      await waitForPath(page, '/chat');
      await waitForHydration(page);

      // Content wider than the screen would force sideways scrolling on a phone.
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 360, `the chat page is ${width} px wide on a 360 px screen`);
      await screenshot(page, 'phone-01-chat');
    });
  });
});

// The facility manager's and the approvers' journeys, in order. The manager types the warehouse
// scenario of ../shared/scenarios turn by turn on the Chat page: each reply arrives through the
// event stream without a reload, the proposal appears with its citations, and the manager
// submits it. Two approvers read the diff and the tier and approve; the manager applies it and
// opens the site; then the manager rolls it back, both approve, and the site is gone again.
// run.sh seeds the demo tenant and publishes the demo knowledge guides as `make run` does, and
// sets BASE_URL, MANAGER_*, APPROVER_* and APPROVER2_*.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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

// Bounds the whole journey: six turns, a recommendation run and the submission.
const TEST_TIMEOUT_MS = 300_000;

// How long one reply or the whole recommendation run may take to appear.
const REPLY_TIMEOUT_MS = 60_000;
const RUN_TIMEOUT_MS = 120_000;

// How long an apply job may take, and how often the change set page is reloaded meanwhile.
const APPLY_TIMEOUT_MS = 60_000;
const RELOAD_INTERVAL_MS = 500;

const SHARED = new URL('../../../shared/', import.meta.url);
const SCENARIO = JSON.parse(readFileSync(fileURLToPath(new URL('scenarios/warehouse-24x7.json', SHARED)), 'utf8'));

// Waits until the page shows at least `count` elements for `locator`.
async function waitForCount(locator, count, timeout, label) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const seen = await locator.count();
    if (seen >= count) return;
    assert.ok(Date.now() < deadline, `${label}: ${seen} of ${count} after ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('chat and approvals', () => {
  let browser;
  let baseUrl;
  let users;
  // Set by the manager's journey, used by the ones after it.
  let changeSetId;

  before(async () => {
    baseUrl = requireEnv('BASE_URL');
    users = {
      manager: { email: requireEnv('MANAGER_EMAIL'), password: requireEnv('MANAGER_PASSWORD'), home: '/chat' },
      approver: { email: requireEnv('APPROVER_EMAIL'), password: requireEnv('APPROVER_PASSWORD'), home: '/' },
      approver2: { email: requireEnv('APPROVER2_EMAIL'), password: requireEnv('APPROVER2_PASSWORD'), home: '/' },
    };
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
  });

  test('manager chats the warehouse scenario and submits the proposal', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await page.getByTestId('chat-site-code').fill(SCENARIO.site_code);
      await page.getByTestId('chat-start').click();
      await page.waitForURL((url) => url.searchParams.has('c'));
      await waitForText(page.getByRole('heading', { level: 1 }), `Chat: ${SCENARIO.site_code}`);
      await waitForHydration(page);

      // Replies must arrive through the event stream: a reload would clear this marker.
      await page.evaluate(() => {
        window.__noReload = 1;
      });
      const replies = page.locator('[data-testid="chat-message"][data-role="assistant"]');
      for (const [index, turn] of SCENARIO.turns.entries()) {
        await page.getByTestId('chat-input').fill(turn);
        await page.getByTestId('chat-send').click();
        await waitForCount(replies, index + 1, REPLY_TIMEOUT_MS, `replies after turn ${index + 1}`);
        if (index === 0) await screenshot(page, 'chat-01-first-reply');
      }
      assert.equal(await page.evaluate(() => window.__noReload), 1, 'a reply reloaded the page');
      const lastReply = (await replies.last().textContent()) ?? '';
      assert.ok(lastReply.length > 20, `the last reply is too short: ${lastReply}`);
      await waitForText(page.getByTestId('chat-facts'), 'Open 24/7');
      await screenshot(page, 'chat-02-all-turns');

      await page.getByTestId('chat-recommend').click();
      const proposal = page.getByTestId('chat-proposal');
      await proposal.waitFor({ state: 'visible', timeout: RUN_TIMEOUT_MS });
      assert.equal(await page.evaluate(() => window.__noReload), 1, 'the proposal reloaded the page');
      await waitForText(page.getByTestId('chat-state-label'), 'Proposal ready');
      const items = proposal.getByTestId('proposal-item');
      assert.ok((await items.count()) > 10, `only ${await items.count()} proposed changes`);
      await screenshot(page, 'chat-03-proposal');

      // The fire alarm panel's schedule cites a published guide; its chip opens the quote.
      const citation = proposal.getByTestId('citation').first();
      await citation.locator('summary').click();
      const quote = citation.getByTestId('citation-quote');
      await quote.waitFor({ state: 'visible' });
      assert.ok(((await quote.textContent()) ?? '').length > 40, 'the quoted passage is empty');
      await screenshot(page, 'chat-04-citation');

      // Declining one change lowers the count on the submit button.
      const total = await items.count();
      const submit = page.getByTestId('chat-submit');
      await waitForText(submit, `Submit ${total} changes`);
      await items.last().getByTestId('proposal-accept').uncheck();
      await waitForText(submit, `Submit ${total - 1} changes`);
      await items.last().getByTestId('proposal-accept').check();
      await waitForText(submit, `Submit ${total} changes`);
      await submit.click();

      await page.waitForURL((url) => url.pathname.startsWith('/changes/'), { timeout: 30_000 });
      changeSetId = new URL(page.url()).pathname.split('/').pop();
      await waitForText(page.getByTestId('change-set-status'), 'pending');
      await waitForText(page.getByTestId('tier-explanation'), 'Two approvals needed');
      await screenshot(page, 'chat-05-change-set');
    });
  });

  test('two approvers approve and the manager applies', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    assert.ok(changeSetId, 'the manager journey did not submit a change set');
    await approveByBoth(t, changeSetId, 'approvals');
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await applyAndWait(page, changeSetId);
      await screenshot(page, 'approvals-04-applied');

      await page.goto(new URL(`/sites/${SCENARIO.site_code}`, baseUrl).href);
      await waitForText(page.getByTestId('site-code'), SCENARIO.site_code);
      await waitForText(page.getByTestId('site-facts'), 'warehouse');
      await waitForText(page.getByTestId('site-hours'), 'open 24/7');
      await waitForText(page.getByTestId('site-zones'), 'Server room');
      await screenshot(page, 'approvals-05-site');
    });
  });

  test('a rollback is approved and the site is as before', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    assert.ok(changeSetId, 'the manager journey did not submit a change set');
    let rollbackId;
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await page.goto(new URL(`/changes/${changeSetId}`, baseUrl).href);
      await waitForHydration(page);
      await page.getByTestId('rollback-button').click();
      await waitForText(page.getByTestId('rollback-report'), 'Rollback change set created.');
      await page.getByTestId('rollback-link').click();
      await waitForText(page.getByTestId('change-set-title'), 'Roll back:');
      rollbackId = new URL(page.url()).pathname.split('/').pop();
      await waitForText(page.getByTestId('operations'), `Delete site ${SCENARIO.site_code}`);
      await screenshot(page, 'rollback-01-requested');
    });

    await approveByBoth(t, rollbackId, 'rollback');
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await applyAndWait(page, rollbackId);
      const response = await page.goto(new URL(`/sites/${SCENARIO.site_code}`, baseUrl).href);
      assert.equal(response?.status(), 404, 'the rolled-back site still exists');
      await waitForText(page.getByTestId('site-not-found'), SCENARIO.site_code);
      await screenshot(page, 'rollback-04-site-gone');
    });
  });

  test('an escalated conversation reaches the approvers', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const reason = 'The vault layout needs a specialist.';
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await page.getByTestId('chat-site-code').fill('BANK-07');
      await page.getByTestId('chat-start').click();
      await page.waitForURL((url) => url.searchParams.has('c'));
      await waitForHydration(page);
      await page.getByTestId('chat-input').fill('A bank branch with a vault, open 9:30 to 16:30 mon-sat.');
      await page.getByTestId('chat-send').click();
      await waitForCount(page.locator('[data-testid="chat-message"][data-role="assistant"]'), 1, REPLY_TIMEOUT_MS, 'replies');
      await page.getByText('Ask an approver for help').click();
      await page.getByTestId('chat-escalate-reason').fill(reason);
      await page.getByTestId('chat-escalate').click();
      await waitForText(page.getByTestId('chat-state-label'), 'an approver has been asked to help');
      await screenshot(page, 'escalate-01-manager');
    });
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'approver');
      await waitForHydration(page);
      await page.goto(new URL('/approvals', baseUrl).href);
      const notification = page.getByTestId('notification').filter({ hasText: 'BANK-07' });
      await waitForText(notification, reason);
      await screenshot(page, 'escalate-02-approver-notified');
      await notification.getByTestId('notification-link').click();
      await waitForText(page.getByRole('heading', { level: 1 }), 'Chat: BANK-07');
      await waitForText(page.getByTestId('chat-messages'), 'bank branch');
      assert.equal(await page.getByTestId('chat-input').count(), 0, 'an approver is offered the message box');
      await page.goto(new URL('/approvals', baseUrl).href);
      await waitForHydration(page);
      await page.getByTestId('notification').filter({ hasText: 'BANK-07' }).getByTestId('notification-read').click();
      await page.getByTestId('notification').filter({ hasText: 'BANK-07' }).waitFor({ state: 'detached' });
    });
  });

  // Signs in as `role` and waits for the landing page.
  async function signIn(page, role) {
    const user = users[role];
    await login(page, baseUrl, user.email, user.password);
    await waitForPath(page, user.home);
  }

  // Both approvers open the change set from the Approvals inbox, read the diff and the tier,
  // and approve it.
  async function approveByBoth(t, id, shotPrefix) {
    for (const [index, role] of ['approver', 'approver2'].entries()) {
      await withPage(browser, t, {}, async (page) => {
        await signIn(page, role);
        await waitForHydration(page);
        await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Approvals', exact: true }).click();
        await waitForPath(page, '/approvals');
        await page.locator(`[data-testid="change-set-link"][href="/changes/${id}"]`).click();
        await waitForPath(page, `/changes/${id}`);
        await waitForText(page.getByTestId('tier-explanation'), 'Two approvals needed');
        await waitForText(page.getByTestId('approvals'), `${index} of 2 approval(s) so far`);
        const operations = page.getByTestId('operation');
        assert.ok((await operations.count()) > 10, 'the change set shows one diff per operation');
        await operations.first().getByTestId('diff-table').waitFor({ state: 'visible' });
        await waitForHydration(page);
        await page.getByTestId('decision-comment').fill(`Checked by the ${role}.`);
        await page.getByTestId('approve-button').click();
        await waitForText(page.getByTestId('decision-report'), 'Your decision is recorded.');
        await screenshot(page, `${shotPrefix}-0${index + 2}-${role}`);
      });
    }
  }

  // Applies an approved change set from its page and reloads until it reads applied.
  async function applyAndWait(page, id) {
    const url = new URL(`/changes/${id}`, baseUrl).href;
    await page.goto(url);
    await waitForText(page.getByTestId('change-set-status'), 'approved');
    await waitForHydration(page);
    await page.getByTestId('apply-button').click();
    const deadline = Date.now() + APPLY_TIMEOUT_MS;
    for (;;) {
      const status = ((await page.getByTestId('change-set-status').textContent()) ?? '').trim();
      if (status === 'applied') return;
      assert.ok(Date.now() < deadline, `change set ${id} reads "${status}" after ${APPLY_TIMEOUT_MS} ms`);
      await page.waitForTimeout(RELOAD_INTERVAL_MS);
      await page.goto(url);
    }
  }
});

// Browser journeys through a change set's life: the approver approves it from the Approvals
// inbox, the manager applies it and rolls it back from My changes, everyone reads the site it
// created, and the admin checks the audit trail.
// run.sh seeds the demo tenant (one manager, one approver, one admin), creates a personal API
// token for the manager and sets BASE_URL, MANAGER_*, APPROVER_* and ADMIN_*.
// The tests run in order and share the change set that `before` creates.

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

// How long the apply job may take. The server polls for due jobs every 200 ms (JOB_POLL_MS in
// run.sh), and a new job wakes a worker at once.
const APPLY_TIMEOUT_MS = 30_000;
const RELOAD_INTERVAL_MS = 500;

// NOTE: the phone checks measure the server-rendered page without JavaScript, because a
// direct load with JavaScript on sometimes ends in a hydration panic. The signed-in layout's
// Suspend can render the page twice on the server. The browser then reads the first render's
// resource values ("application state missing"), which do not match the markup.
const PHONE = { viewport: { width: 360, height: 740 }, javaScriptEnabled: false };

const SITE_CODE = 'E2E-01';
const TITLE = 'Open the E2E test site';

// A new site with its security settings and one zone. The security settings make the risk
// 0.4, so one approver, who is not the requester, must approve it: the demo tenant has exactly
// one.
const OPERATIONS = [
  {
    kind: 'site',
    action: 'create',
    key: { code: SITE_CODE },
    fields: {
      name: 'E2E site',
      kind: 'warehouse',
      timezone: 'UTC',
      address: null,
      max_users: 50,
      open_24x7: true,
      weekly_hours: {},
      security_level: 'high',
    },
  },
  {
    kind: 'security_settings',
    action: 'create',
    key: { site_code: SITE_CODE },
    fields: { gps_enabled: true, sleeping_guard_detection: true, permissible_distance_m: 50 },
  },
  {
    kind: 'zone',
    action: 'create',
    key: { site_code: SITE_CODE, code: 'DOCK-1' },
    fields: { name: 'Loading dock', kind: 'loading_dock', importance: 3, risk_level: 'medium' },
  },
];

// Creates the change set through the REST API as the manager and returns its id.
async function createChangeSet(baseUrl, token) {
  const response = await fetch(new URL('/api/v1/change-sets', baseUrl), {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: TITLE, operations: OPERATIONS }),
  });
  const text = await response.text();
  assert.equal(response.status, 201, `POST /api/v1/change-sets answered ${response.status}: ${text}`);
  const changeSet = JSON.parse(text);
  assert.equal(changeSet.status, 'pending');
  assert.equal(changeSet.tier, 'one_approver', `expected one approver for risk ${changeSet.risk_score}`);
  return changeSet.id;
}

// Returns the page's width in CSS pixels, which exceeds the viewport when something overflows.
async function pageWidth(page) {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

describe('change sets', () => {
  let browser;
  let baseUrl;
  let changeSetId;
  let users;

  before(async () => {
    baseUrl = requireEnv('BASE_URL');
    users = {
      manager: { email: requireEnv('MANAGER_EMAIL'), password: requireEnv('MANAGER_PASSWORD'), home: '/chat' },
      approver: { email: requireEnv('APPROVER_EMAIL'), password: requireEnv('APPROVER_PASSWORD'), home: '/' },
      admin: { email: requireEnv('ADMIN_EMAIL'), password: requireEnv('ADMIN_PASSWORD'), home: '/' },
    };
    changeSetId = await createChangeSet(baseUrl, requireEnv('MANAGER_TOKEN'));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
  });

  // Signs in as `role` and waits for the landing page.
  async function signIn(page, role, options) {
    const user = users[role];
    await login(page, baseUrl, user.email, user.password, options);
    await waitForPath(page, user.home);
  }

  function detailUrl(id = changeSetId) {
    return new URL(`/changes/${id}`, baseUrl).href;
  }

  // Opens the page `name` through the main navigation.
  async function openFromNav(page, name, path) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
    await waitForPath(page, path);
  }

  test('inbox and detail fit a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, PHONE, async (page) => {
      await signIn(page, 'approver', { hydrate: false });
      await page.goto(new URL('/approvals', baseUrl).href);
      await waitForText(page.getByTestId('inbox-row'), TITLE);
      const inboxWidth = await pageWidth(page);
      assert.ok(inboxWidth <= 360, `the Approvals inbox is ${inboxWidth} px wide on a 360 px screen`);
      await screenshot(page, 'changes-phone-01-inbox');

      await page.goto(detailUrl());
      await waitForText(page.getByTestId('change-set-title'), TITLE);
      await waitForText(page.getByTestId('operation-summary'), 'Create site E2E-01');
      const detailWidth = await pageWidth(page);
      assert.ok(detailWidth <= 360, `the change set page is ${detailWidth} px wide on a 360 px screen`);
      await screenshot(page, 'changes-phone-02-detail');
    });
  });

  test('approver approves from the inbox', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'approver');
      await waitForHydration(page);
      await openFromNav(page, 'Approvals', '/approvals');

      const row = page.getByTestId('inbox-row').filter({ hasText: TITLE });
      await waitForText(row, users.manager.email);
      await waitForText(row, '0.40');
      await waitForText(row, 'one approval');
      await screenshot(page, 'changes-01-inbox');

      await row.getByTestId('change-set-link').click();
      await waitForPath(page, `/changes/${changeSetId}`);
      await waitForText(page.getByTestId('change-set-title'), TITLE);
      await waitForText(page.getByTestId('change-set-status'), 'pending');
      await waitForText(page.getByTestId('change-set-requester'), users.manager.email);
      await waitForText(
        page.getByTestId('tier-explanation'),
        'One approval needed: risk 0.40 is between 0.3 and 0.7.',
      );
      await waitForText(page.getByTestId('approvals'), '0 of 1 approval(s) so far; 1 missing.');

      const operations = page.getByTestId('operation');
      assert.equal(await operations.count(), OPERATIONS.length, 'expected one diff per operation');
      await waitForText(operations.nth(0).getByTestId('operation-summary'), '1. Create site E2E-01');
      await waitForText(operations.nth(0).getByTestId('diff-table'), 'E2E site');
      await waitForText(operations.nth(0).getByTestId('diff-table'), 'warehouse');
      await waitForText(
        operations.nth(1).getByTestId('operation-summary'),
        '2. Create security settings of site E2E-01',
      );
      await waitForText(operations.nth(1).getByTestId('diff-table'), 'Permissible distance (m)');
      await waitForText(
        operations.nth(2).getByTestId('operation-summary'),
        '3. Create zone DOCK-1 at site E2E-01',
      );
      await screenshot(page, 'changes-02-detail');

      await waitForHydration(page);
      await page.getByTestId('decision-comment').fill('Checked the site facts against the lease.');
      await page.getByTestId('approve-button').click();
      await waitForText(page.getByTestId('decision-report'), 'Your decision is recorded.');
      await waitForText(page.getByTestId('change-set-status'), 'approved');
      await waitForText(page.getByTestId('decisions'), `approved by ${users.approver.email}`);
      await waitForText(page.getByTestId('decisions'), 'Checked the site facts against the lease.');
      assert.equal(await page.getByTestId('approve-button').count(), 0, 'a decided approver still sees Approve');
      await screenshot(page, 'changes-03-approved');
    });
  });

  test('manager applies without JavaScript', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { javaScriptEnabled: false }, async (page) => {
      await signIn(page, 'manager', { hydrate: false });
      await openFromNav(page, 'My changes', '/changes');

      const row = page.getByTestId('change-row').filter({ hasText: TITLE });
      await waitForText(row.getByTestId('status-badge'), 'approved');
      await screenshot(page, 'changes-04-my-changes');

      await row.getByTestId('change-set-link').click();
      await waitForPath(page, `/changes/${changeSetId}`);
      // The plain form post returns to this page, which then shows applying or applied.
      await page.getByTestId('apply-button').click();
      await waitForPath(page, `/changes/${changeSetId}`);

      const status = await reloadUntilStatus(page, 'applied');
      assert.equal(status, 'applied');
      assert.equal(await page.getByTestId('apply-button').count(), 0, 'an applied change set still offers Apply');
      await screenshot(page, 'changes-05-applied');
    });
  });

  test('site shows the applied configuration', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await openFromNav(page, 'Sites', '/sites');
      await page.getByLabel('Site code').fill('e2e-01');
      await page.getByTestId('open-site').click();
      await waitForPath(page, `/sites/${SITE_CODE}`);

      await waitForText(page.getByTestId('site-name'), 'E2E site');
      await waitForText(page.getByTestId('site-code'), SITE_CODE);
      await waitForText(page.getByTestId('site-facts'), 'warehouse');
      await waitForText(page.getByTestId('site-hours'), 'open 24/7');
      await waitForText(page.getByTestId('site-security'), '50 m');
      await waitForText(page.getByTestId('site-zones'), 'Loading dock');
      await waitForText(page.getByTestId('site-assets'), 'No assets yet.');
      await screenshot(page, 'changes-06-site');
    });
  });

  test('site fits a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, PHONE, async (page) => {
      await signIn(page, 'approver', { hydrate: false });
      await page.goto(new URL(`/sites/${SITE_CODE}`, baseUrl).href);
      await waitForText(page.getByTestId('site-name'), 'E2E site');
      const width = await pageWidth(page);
      assert.ok(width <= 360, `the Site page is ${width} px wide on a 360 px screen`);
      await screenshot(page, 'changes-phone-03-site');
    });
  });

  test('site lookup works without JavaScript', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, { javaScriptEnabled: false }, async (page) => {
      await signIn(page, 'approver', { hydrate: false });
      const response = await page.goto(new URL('/sites/NOPE-99', baseUrl).href);
      assert.equal(response?.status(), 404, 'an unknown site answers 404');
      await waitForText(page.getByTestId('site-not-found'), 'Your tenant has no site with code NOPE-99.');

      // The code form redirects on the server, so it opens a site without JavaScript too.
      await page.goto(new URL('/sites?code=e2e-01', baseUrl).href);
      await waitForPath(page, `/sites/${SITE_CODE}`);
      await waitForText(page.getByTestId('site-name'), 'E2E site');

      await page.goto(new URL('/sites?code=no%20spaces', baseUrl).href);
      await waitForText(page.getByTestId('site-code-error'), 'Site code "NO SPACES" is invalid');
      await screenshot(page, 'changes-site-not-found');
    });
  });

  test('manager requests a rollback', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await openFromNav(page, 'My changes', '/changes');
      const row = page.getByTestId('change-row').filter({ hasText: TITLE });
      await waitForText(row.getByTestId('status-badge'), 'applied');
      await row.getByTestId('change-set-link').click();
      await waitForPath(page, `/changes/${changeSetId}`);
      await waitForText(page.getByTestId('change-set-status'), 'applied');

      await page.getByTestId('rollback-button').click();
      await waitForText(page.getByTestId('rollback-report'), 'Rollback change set created.');
      assert.equal(await page.getByTestId('rollback-button').count(), 0, 'Rollback is still offered after it was requested');
      await screenshot(page, 'changes-07-rollback-requested');

      await page.getByTestId('rollback-link').click();
      await waitForText(page.getByTestId('change-set-title'), `Roll back: ${TITLE}`);
      await waitForText(page.getByTestId('change-set-status'), 'pending');
      // The report belongs to the original change set, not to the rollback now shown.
      assert.equal(await page.getByTestId('rollback-report').count(), 0, 'the rollback report followed the link');
      await waitForText(page.getByTestId('operations'), 'Delete zone DOCK-1 at site E2E-01');
      await waitForText(page.getByTestId('operations'), 'Delete security settings of site E2E-01');
      await waitForText(page.getByTestId('operations'), 'Delete site E2E-01');
      await screenshot(page, 'changes-08-rollback-change-set');
    });
  });

  test('admin sees an intact audit trail', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'admin');
      await waitForHydration(page);
      await openFromNav(page, 'Audit', '/admin/audit');

      await waitForText(page.getByTestId('audit-verification'), 'Chain intact');
      const rows = page.getByTestId('audit-row');
      await waitForText(rows, 'change_set.approve');
      await waitForText(rows, 'change_set.apply_requested');
      await waitForText(rows, 'change_set.rollback_requested');
      await screenshot(page, 'changes-09-audit');

      await page.getByTestId('verify-button').click();
      await waitForText(page.getByTestId('audit-verification'), 'Chain intact');
    });
  });

  test('audit fits a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, PHONE, async (page) => {
      await signIn(page, 'admin', { hydrate: false });
      await page.goto(new URL('/admin/audit', baseUrl).href);
      await waitForText(page.getByTestId('audit-verification'), 'Chain intact');
      const width = await pageWidth(page);
      assert.ok(width <= 360, `the Audit page is ${width} px wide on a 360 px screen`);
      await screenshot(page, 'changes-phone-04-audit');
    });
  });

  // Reloads the change set page until its status reads `expected` or APPLY_TIMEOUT_MS has
  // passed, and returns the last status.
  async function reloadUntilStatus(page, expected) {
    const deadline = Date.now() + APPLY_TIMEOUT_MS;
    let status = '';
    for (;;) {
      const badge = page.getByTestId('change-set-status');
      status = ((await badge.textContent({ timeout: WAIT_TIMEOUT_MS })) ?? '').trim();
      if (status === expected || Date.now() >= deadline) {
        break;
      }
      await page.waitForTimeout(RELOAD_INTERVAL_MS);
      await page.goto(detailUrl());
    }
    assert.equal(
      status,
      expected,
      `the change set's status is "${status}" after ${APPLY_TIMEOUT_MS} ms; expected "${expected}". ` +
        'Check the change_set.apply job lines in end2end/screenshots/server.log.',
    );
    return status;
  }
});

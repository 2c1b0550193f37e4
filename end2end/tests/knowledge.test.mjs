// Browser journeys through the knowledge base. The admin uploads a regulation through the
// Knowledge page and watches its progress bar reach the review stage. The approver gives it
// the first, scored approval from the review queue. Every page fits a phone screen.
// run.sh seeds the demo tenant (a manager, two approvers, an admin) and sets BASE_URL,
// MANAGER_*, APPROVER_*, APPROVER2_* and ADMIN_*.
// The tests run in order and share the document that the first one uploads.
//
// Then the second approver publishes it and it becomes searchable. Last, the admin adds a URL
// source on a refused address: its fetch fails for good, the reason is on the document and in
// the dead letters, the admin discards the dead letter, and the audit chain verifies.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
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

// Bounds a whole journey. Each single wait inside it is bounded by WAIT_TIMEOUT_MS.
const TEST_TIMEOUT_MS = 180_000;

// How long the pipeline may take for a 4 kB text file. The first embedding in a fresh server
// loads the local model, which takes a few seconds; the rest is well under a second.
const PIPELINE_TIMEOUT_MS = 120_000;

// Server-rendered pages without JavaScript, as in the other journeys' phone checks.
const PHONE = { viewport: { width: 360, height: 740 }, javaScriptEnabled: false };

// 29 CFR 1910.37 (exit routes) from the public-domain test corpus beside the repository.
const CORPUS_FILE = fileURLToPath(new URL('../../../shared/corpus/ecfr-29cfr-1910.37.txt', import.meta.url));
const TITLE = 'Exit routes: maintenance, safeguards and operational features';

// A source on the loopback address, which the outbound guard refuses without connecting.
const REFUSED_URL = 'https://127.0.0.1/siteline-e2e/manual.pdf';

// Returns the page's width in CSS pixels, which exceeds the viewport when something overflows.
async function pageWidth(page) {
  return page.evaluate(() => document.documentElement.scrollWidth);
}

describe('knowledge', () => {
  let browser;
  let baseUrl;
  let users;
  let documentPath;

  before(async () => {
    baseUrl = requireEnv('BASE_URL');
    users = {
      manager: { email: requireEnv('MANAGER_EMAIL'), password: requireEnv('MANAGER_PASSWORD'), home: '/chat' },
      approver: { email: requireEnv('APPROVER_EMAIL'), password: requireEnv('APPROVER_PASSWORD'), home: '/' },
      approver2: { email: requireEnv('APPROVER2_EMAIL'), password: requireEnv('APPROVER2_PASSWORD'), home: '/' },
      admin: { email: requireEnv('ADMIN_EMAIL'), password: requireEnv('ADMIN_PASSWORD'), home: '/' },
    };
    assert.ok(existsSync(CORPUS_FILE), `the corpus file ${CORPUS_FILE} is missing; it is expected beside the repository`);
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

  // Opens the page `name` through the main navigation.
  async function openFromNav(page, name, path) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();
    await waitForPath(page, path);
  }

  test('admin uploads and watches the pipeline', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'admin');
      await waitForHydration(page);
      await openFromNav(page, 'Knowledge', '/knowledge');
      await waitForText(page.getByTestId('add-panel'), 'Add a document');

      const upload = page.getByTestId('upload-form');
      await upload.getByTestId('upload-file').setInputFiles(CORPUS_FILE);
      await upload.getByLabel('Title (optional)').fill(TITLE);
      await upload.getByLabel('Authority').selectOption('official');
      await screenshot(page, 'knowledge-01-upload-form');
      await upload.getByTestId('upload-button').click();

      await page.waitForURL((url) => url.pathname.startsWith('/knowledge/documents/'));
      documentPath = new URL(page.url()).pathname;
      await waitForText(page.getByTestId('document-title'), TITLE);
      await waitForText(page.getByTestId('document-source'), 'ecfr-29cfr-1910.37.txt');
      await waitForHydration(page);
      await screenshot(page, 'knowledge-02-processing');

      // The hydrated page re-reads the document every 2 s; no reload happens here.
      const reviewStage = page.locator('[data-testid="stage"][data-stage="review"][data-state="current"]');
      try {
        await reviewStage.waitFor({ state: 'visible', timeout: PIPELINE_TIMEOUT_MS });
      } catch (error) {
        const progress = await page.getByTestId('progress-text').first().textContent().catch(() => '(none)');
        throw new Error(
          `the document did not reach the review stage within ${PIPELINE_TIMEOUT_MS} ms; ` +
            `the progress reads "${progress}". Check the knowledge.* job lines in end2end/screenshots/server.log.`,
          { cause: error },
        );
      }
      await waitForText(page.getByTestId('progress-text'), 'Review: waiting for reviewers · 95 %');
      await waitForText(page.getByTestId('document-status'), 'in review');
      assert.equal(
        await page.locator('[data-testid="stage"][data-state="done"]').count(),
        6,
        'fetch through index are done',
      );
      await waitForText(page.getByTestId('caller-note'), 'You submitted this document');
      assert.equal(await page.getByTestId('review-form').count(), 0, 'the submitter is offered the review form');
      await page.getByTestId('chunks').locator('summary').click();
      await waitForText(page.getByTestId('chunk'), 'Exit routes');
      await screenshot(page, 'knowledge-03-in-review');
    });
  });

  test('approver gives the first approval', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    assert.ok(documentPath, 'the upload journey did not create a document');
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'approver');
      await waitForHydration(page);
      await openFromNav(page, 'Knowledge', '/knowledge');
      await page.getByTestId('review-queue-link').click();
      await waitForPath(page, '/knowledge/review');

      const row = page.getByTestId('queue-row').filter({ hasText: TITLE });
      await waitForText(row.getByTestId('queue-approvals'), '0 of 2 approvals so far.');
      await waitForText(row, users.admin.email);
      await screenshot(page, 'knowledge-04-review-queue');

      await row.getByTestId('queue-link').click();
      await waitForPath(page, documentPath);
      await waitForHydration(page);
      const form = page.getByTestId('review-form');
      await form.getByTestId('score-accuracy').fill('0.9');
      await form.getByTestId('score-completeness').fill('0.85');
      await form.getByTestId('score-relevance').fill('0.8');
      await form.getByTestId('review-comment').fill('Checked against the eCFR text.');
      await form.getByTestId('approve-button').click();

      await waitForText(page.getByTestId('review-report'), 'Your approval is recorded: 1 of 2 so far.');
      await waitForText(page.getByTestId('approvals'), '1 of 2 approvals so far.');
      await waitForText(page.getByTestId('reviews'), 'accuracy 0.90 · completeness 0.85 · relevance 0.80');
      assert.equal(await page.getByTestId('review-form').count(), 0, 'a reviewer is offered a second review');
      await screenshot(page, 'knowledge-05-approved-once');
    });
  });

  test('search explains what is searched', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'manager');
      await waitForHydration(page);
      await openFromNav(page, 'Knowledge', '/knowledge');
      assert.equal(await page.getByTestId('add-panel').count(), 0, 'a manager is offered the add forms');
      const row = page.getByTestId('document-row').filter({ hasText: TITLE });
      await waitForText(row.getByTestId('document-status'), 'in review');

      // The regulation is not published yet, so the passages found come from the published
      // demo guides only.
      await page.getByTestId('search-input').fill('exit routes');
      await page.getByTestId('search-button').click();
      await waitForText(page.getByTestId('search-results'), 'Exit Routes and Exit Signs');
      const results = page.getByTestId('search-result');
      const texts = await results.allTextContents();
      assert.ok(
        texts.every((text) => !text.includes(TITLE)),
        `the unpublished document was searched: ${texts.join(' | ')}`,
      );
      await screenshot(page, 'knowledge-06-search-unpublished');
    });
  });

  test('knowledge pages fit a phone screen', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    assert.ok(documentPath, 'the upload journey did not create a document');
    await withPage(browser, t, PHONE, async (page) => {
      await signIn(page, 'admin', { hydrate: false });
      const pages = [
        ['/knowledge', 'upload-form', 'knowledge-phone-01-list'],
        ['/knowledge/review', 'queue-row', 'knowledge-phone-02-queue'],
        [documentPath, 'stages', 'knowledge-phone-03-document'],
      ];
      for (const [path, testId, name] of pages) {
        await page.goto(new URL(path, baseUrl).href);
        await page.getByTestId(testId).first().waitFor({ state: 'visible' });
        const width = await pageWidth(page);
        assert.ok(width <= 360, `${path} is ${width} px wide on a 360 px screen`);
        await screenshot(page, name);
      }
    });
  });
  test('second approver publishes and it becomes searchable', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    assert.ok(documentPath, 'the upload journey did not create a document');
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'approver2');
      await waitForHydration(page);
      await page.goto(new URL(documentPath, baseUrl).href);
      await waitForHydration(page);
      await waitForText(page.getByTestId('approvals'), '1 of 2 approvals so far.');
      const form = page.getByTestId('review-form');
      await form.getByTestId('review-comment').fill('Second review: matches the regulation.');
      await form.getByTestId('approve-button').click();
      await waitForText(page.getByTestId('document-status'), 'published');
      await screenshot(page, 'knowledge-07-published');

      await page.goto(new URL('/knowledge', baseUrl).href);
      await page.getByTestId('search-input').fill('exit routes');
      await page.getByTestId('search-button').click();
      await waitForText(page.getByTestId('search-results'), TITLE);
      await screenshot(page, 'knowledge-08-searchable');
    });
  });

  test('a refused URL lands in dead letters and is discarded', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    await withPage(browser, t, {}, async (page) => {
      await signIn(page, 'admin');
      await waitForHydration(page);
      await openFromNav(page, 'Knowledge', '/knowledge');
      // The outbound guard refuses loopback addresses before it connects, so nothing is sent.
      const form = page.getByTestId('url-form');
      await form.getByLabel('URL').fill(REFUSED_URL);
      await form.getByLabel('Title (optional)').fill('Refused source');
      await form.getByTestId('submit-url').click();
      await page.waitForURL((url) => url.pathname.startsWith('/knowledge/documents/'));
      await waitForHydration(page);
      await waitForText(page.getByTestId('document-status'), 'failed', PIPELINE_TIMEOUT_MS);
      await waitForText(page.getByTestId('document-error'), '127.0.0.1');
      await screenshot(page, 'admin-01-refused-url');

      await page.getByTestId('dead-letters-link').click();
      await waitForPath(page, '/admin/dead-letters');
      const row = page.getByTestId('dead-letter-row').filter({ hasText: 'knowledge.fetch' });
      await waitForText(row, '127.0.0.1');
      await screenshot(page, 'admin-02-dead-letters');
      await row.getByTestId('dead-letter-link').click();
      await waitForText(page.getByTestId('detail-kind'), 'knowledge.fetch');
      await waitForText(page.getByTestId('error-chain'), '127.0.0.1');
      await waitForHydration(page);
      await page.getByTestId('discard-reason').fill('The source points at a private address.');
      await page.getByTestId('discard-button').click();
      await waitForText(page.getByTestId('detail-status'), 'discarded');
      await screenshot(page, 'admin-03-discarded');

      await openFromNav(page, 'Audit', '/admin/audit');
      await page.getByTestId('verify-button').click();
      await waitForText(page.getByTestId('audit-verification'), 'Chain intact');
      await waitForText(page.getByTestId('audit-row').first(), 'dead_letter');
      await screenshot(page, 'admin-04-audit');
    });
  });
});

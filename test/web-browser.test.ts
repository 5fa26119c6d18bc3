import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { browserMissing, launchBrowser, type TestBrowser } from './helpers/browser.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const missing = await browserMissing();
/** Page-side expressions, as strings: the tests compile without the DOM's types. */
const text = (id: string): string => `(document.getElementById(${JSON.stringify(id)})?.textContent ?? '')`;
const LIVE = `${text('live')} === 'live'`;
const CAPTURED = `/^Captured /.test(${text('capture-result')})`;

describe('node page in a browser', { skip: missing ?? false }, () => {
  let browser: TestBrowser;
  let t: TestNode;
  before(async () => {
    [browser, t] = await Promise.all([launchBrowser(), startTestNode()]);
  });
  after(async () => {
    await Promise.all([browser?.close(), t?.stop()]);
  });

  test('loads without console errors, Capture adds an image to the list and Delete removes it', async () => {
    const { page, problems } = await browser.open();
    await page.goto(`${t.httpUrl}/`);
    await page.waitForFunction(LIVE);
    await page.waitForFunction(`${text('node-id')} === ${JSON.stringify(t.config.node_id)}`);
    assert.equal(await page.evaluate("document.getElementById('images-empty').hidden"), false, 'the empty list says so');

    await page.click('#capture');
    await page.waitForFunction(CAPTURED);
    const [image] = t.node.commands.list().images;
    assert.ok(image, 'the node stored an image');
    await page.waitForFunction(`${text('images')}.includes(${JSON.stringify(image.filename)})`);
    await page.waitForFunction("!document.getElementById('preview').hidden");
    await page.waitForFunction(`${text('log')}.includes('captured')`);
    assert.equal(await page.$eval('#capture-result', (p) => p.getAttribute('aria-live')), 'polite');
    await browser.screenshot(page, 'node-page');

    page.once('dialog', (dialog) => void dialog.accept());
    await page.click(`button[aria-label="Delete ${image.filename}"]`);
    await page.waitForFunction(`!${text('images')}.includes(${JSON.stringify(image.filename)})`);
    assert.deepEqual(t.node.commands.list().images, [], 'deleted on the node');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('is usable by keyboard: Tab reaches Capture and Enter presses it', async () => {
    const { page, problems } = await browser.open();
    await page.goto(`${t.httpUrl}/`);
    await page.waitForFunction(LIVE);
    let focused = '';
    for (let i = 0; i < 10 && focused !== 'capture'; i += 1) {
      await page.keyboard.press('Tab');
      focused = String(await page.evaluate("document.activeElement?.id ?? ''"));
    }
    assert.equal(focused, 'capture');
    await page.keyboard.press('Enter');
    await page.waitForFunction(CAPTURED);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('node page with HTTP_TOKEN in a browser', { skip: missing ?? false }, () => {
  let browser: TestBrowser;
  let t: TestNode;
  const token = 'browser-token-98765';
  before(async () => {
    [browser, t] = await Promise.all([launchBrowser(), startTestNode({ http_token: token })]);
  });
  after(async () => {
    await Promise.all([browser?.close(), t?.stop()]);
  });

  test('asks for the token once, refuses a wrong one, then keeps it for the tab', async () => {
    const { page, problems } = await browser.open();
    await page.goto(`${t.httpUrl}/`);
    await page.waitForSelector('#token-dialog[open]');
    await page.type('#token-input', 'wrong-token');
    await page.keyboard.press('Enter');
    await page.waitForFunction(`/refused/.test(${text('token-error')})`);
    await page.waitForSelector('#token-dialog[open]');
    await page.type('#token-input', token);
    await browser.screenshot(page, 'node-page-token');
    await page.keyboard.press('Enter');
    await page.waitForFunction(LIVE);
    await page.waitForFunction(`${text('node-id')} === ${JSON.stringify(t.config.node_id)}`);

    await page.reload();
    await page.waitForFunction(LIVE);
    assert.equal(await page.$('#token-dialog[open]'), null, 'not asked again in the same tab');
    await page.click('#capture');
    await page.waitForFunction(CAPTURED);
    // The only errors are the browser's notes of the 401s that made the page ask.
    assert.deepEqual(
      problems.filter((p) => !/status of 401/.test(p)),
      [],
    );
    await page.close();
  });
});

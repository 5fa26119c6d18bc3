import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { createFleetDashboard, type FleetDashboard } from '../src/web/fleet.js';
import { createFleetShots, type FleetShots } from '../src/web/fleet-shots.js';
import { browserMissing, launchBrowser, type TestBrowser } from './helpers/browser.js';
import { mosquittoMissing, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { connectClient } from './helpers/mqtt.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const missing = await browserMissing();
/** The fleet page's collector speaks MQTT 5 first, as a fleet's Mosquitto does (see web-fleet.test.ts). */
const noMosquitto = mosquittoMissing();
/** Page-side expressions, as strings: the tests compile without the DOM's types. */
const text = (id: string): string => `(document.getElementById(${JSON.stringify(id)})?.textContent ?? '')`;
const LIVE = `${text('live')} === 'live'`;
const CAPTURED = `/^Captured /.test(${text('capture-result')})`;

describe('node page in a browser', { skip: missing ?? false }, () => {
  let browser: TestBrowser;
  let t: TestNode;
  before(async () => {
    // A name as a real node would have: its screenshot goes in the README.
    [browser, t] = await Promise.all([launchBrowser(), startTestNode({ node_id: 'studio-cam-01' })]);
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

describe('fleet page in a browser', { skip: missing ?? noMosquitto ?? false }, () => {
  let browser: TestBrowser;
  let broker: Mosquitto;
  let nodes: TestNode[];
  let client: MqttClient;
  let dashboard: FleetDashboard;
  let shots: FleetShots;
  let url: string;
  let outDir: string;
  const silent = pino({ level: 'silent' });

  before(async () => {
    broker = await startMosquitto();
    const shared = { mqtt_url: broker.url };
    [browser, ...nodes] = await Promise.all([
      launchBrowser(),
      startTestNode({ ...shared, node_id: 'rig-01', groups: ['north'] }),
      startTestNode({ ...shared, node_id: 'rig-02', groups: ['north'] }),
      startTestNode({ ...shared, node_id: 'rig-03', groups: ['south'] }),
    ]);
    outDir = await mkdtemp(join(tmpdir(), 'camera-node-fleet-page-'));
    client = await connectClient(broker.url);
    shots = createFleetShots({ client, url: broker.url, prefix: 'cameras', outDir, name: 'dashboard-page-test', logger: silent });
    dashboard = createFleetDashboard({ client, prefix: 'cameras', outDir, host: '127.0.0.1', port: 0, logger: silent, runShot: shots.run });
    await shots.start();
    url = await dashboard.start();
  });
  after(async () => {
    await dashboard?.stop();
    await shots?.stop();
    await client?.endAsync();
    await Promise.all([browser?.close(), ...(nodes ?? []).map((n) => n.stop())]);
    await broker?.stop();
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  test('shows every node, runs a shot from the form and lists every node in its report, with download links', async () => {
    await Promise.all(nodes.map((n) => fetch(`${n.httpUrl}/capture`, { method: 'POST' })));
    const { page, problems } = await browser.open();
    await page.goto(`${url}/`);
    await page.waitForFunction(LIVE);
    await page.waitForFunction(`document.querySelectorAll('#nodes li.node').length === ${nodes.length}`);
    await page.waitForFunction(`${text('fleet-count')} === '(3 of 3 online)'`);
    await page.waitForFunction(`[...document.querySelectorAll('#nodes li.node img')].every((img) => img.src.startsWith('blob:'))`);
    assert.equal(await page.$('#shots details'), null, 'no shot yet');

    await page.type('#at', '+1s');
    await page.click('#shoot');
    await page.waitForFunction(`/^Shot .*: 3 of 3 nodes answered, 3 images delivered/.test(${text('shot-result')})`, { timeout: 60_000 });
    const rows = await page.$$eval('#shots details tbody tr', (trs) => trs.map((tr) => tr.textContent ?? ''));
    assert.equal(rows.length, nodes.length);
    for (const n of nodes)
      assert.ok(
        rows.some((row) => row.startsWith(`${n.config.node_id}ok`)),
        `${n.config.node_id} in ${rows.join(' | ')}`,
      );
    const links = await page.$$eval('#shots details a[download]', (anchors) => anchors.map((a) => a.getAttribute('href') ?? ''));
    assert.equal(links.length, nodes.length);
    const download = await fetch(`${url}${links[0]}`);
    assert.equal(download.status, 200);
    assert.ok((await download.arrayBuffer()).byteLength > 0);
    await browser.screenshot(page, 'fleet-page');
    assert.deepEqual(problems, []);
    await page.close();
  });
});

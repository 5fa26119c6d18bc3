import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { acceptReply, commandPayload, replyTopicFilter } from '../src/client/request.js';
import { createCollector } from '../src/client/collector.js';
import type { ReceivedImage } from '../src/client/receiver.js';
import { configProperties, envName } from '../src/config/config.js';
import { collect, connectClient, request } from './helpers/mqtt.js';
import { mosquittoMissing, startMosquitto, type Mosquitto } from './helpers/mosquitto.js';
import { startTestNode, type TestNode } from './helpers/node.js';

const PROJECT = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY = join(PROJECT, 'deploy');
const INSTALL = join(DEPLOY, 'install.sh');

/** Runs a program with an argument array (no shell); its output, for assertion messages. */
function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    cwd: options.cwd ?? PROJECT,
    env: options.env ?? process.env,
    maxBuffer: 16 * 1024 * 1024,
  });
  return { status: result.status, error: result.error, output: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}
const missing = (command: string, probe: string[]): string | null =>
  spawnSync(command, probe, { stdio: 'ignore' }).error ? `${command} is not installed` : null;

describe('install.sh and the systemd unit', () => {
  test('install.sh is valid bash', () => {
    const result = run('bash', ['-n', INSTALL]);
    assert.equal(result.status, 0, result.output);
  });

  test('shellcheck finds nothing in install.sh', { skip: missing('shellcheck', ['--version']) ?? false }, () => {
    const result = run('shellcheck', ['--severity=warning', INSTALL]);
    assert.equal(result.status, 0, result.output);
  });

  test('install.sh explains how to get Node on an ARMv6 Pi Zero W when node is too old', () => {
    const result = run('bash', [INSTALL, '--root', join(tmpdir(), 'camera-node-never-written'), '--no-start', 'none.tgz'], {
      env: { ...process.env, NODE: 'false', UNAME_M: 'armv6l' },
    });
    assert.notEqual(result.status, 0);
    assert.match(result.output, /unofficial-builds\.nodejs\.org/);
    assert.match(result.output, /armv6l/);
    // Node 20 is end-of-life and armv6l builds stop at 23: the advice is Node 22.
    assert.match(result.output, /Node 22/);
    assert.match(result.output, /node-\$V-linux-armv6l\.tar\.xz/);
  });

  test('the unit keeps the service running, as its own user, hardened, with the camera reachable', async () => {
    const unit = await readFile(join(DEPLOY, 'camera-node.service'), 'utf8');
    const settings = new Map<string, string[]>();
    for (const line of unit.split('\n')) {
      const match = /^([A-Za-z]+)=(.*)$/.exec(line);
      const [, key = '', value = ''] = match ?? [];
      if (match) settings.set(key, [...(settings.get(key) ?? []), value]);
    }
    const one = (key: string): string | undefined => settings.get(key)?.at(-1);
    assert.equal(one('Restart'), 'always');
    assert.equal(one('User'), 'camera-node');
    assert.equal(one('SupplementaryGroups'), 'video');
    assert.equal(one('EnvironmentFile'), '-/etc/camera-node/camera-node.env');
    assert.equal(one('NoNewPrivileges'), 'yes');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.match(one('ReadWritePaths') ?? '', /\/var\/lib\/camera-node/);
    assert.equal(one('PrivateTmp'), 'yes');
    assert.equal(one('ProtectHome'), 'yes');
    assert.equal(one('KillSignal'), 'SIGTERM');
    assert.ok(Number(one('TimeoutStopSec')) > 0);
    // libcamera needs /dev/video*, /dev/media*, /dev/dma_heap, /dev/vchiq: no private /dev, no device policy.
    assert.equal(settings.has('PrivateDevices'), false);
    assert.equal(settings.has('DevicePolicy'), false);
  });

  // Node 22 under the unit's --jitless: an ESM import of node:http reads its lazy `WebSocket` export,
  // which loads undici and its WebAssembly parser, and rejects. Node 20 (this machine) cannot show it,
  // so the rule is checked where it is kept: in the source.
  test('the unit runs V8 without a JIT, and the node reads node:http only where --jitless allows', async () => {
    const unit = await readFile(join(DEPLOY, 'camera-node.service'), 'utf8');
    const flags = /^Environment="NODE_OPTIONS=([^"]*)"$/m.exec(unit)?.[1]?.split(' ') ?? [];
    assert.ok(flags.includes('--jitless') && flags.includes('--no-experimental-websocket'), flags.join(' '));
    const offenders: string[] = [];
    for (const file of await readdir(join(PROJECT, 'src'), { recursive: true })) {
      if (!file.endsWith('.ts') || file === join('http', 'node-http.ts')) continue;
      const text = await readFile(join(PROJECT, 'src', file), 'utf8');
      if (/^import (?!type )[^;]*from 'node:https?';/m.test(text) || /import\('node:https?'\)/.test(text)) offenders.push(file);
    }
    assert.deepEqual(offenders, [], 'these import node:http(s) as ESM; use src/http/node-http.ts');
  });

  test('the collector unit keeps it running, as the service user, hardened, writing only its image folder', async () => {
    const unit = await readFile(join(DEPLOY, 'camera-node-collector.service'), 'utf8');
    const one = (key: string): string | undefined => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((match) => match[1]).at(-1);
    assert.equal(one('Restart'), 'always');
    assert.equal(one('StartLimitIntervalSec'), '0');
    assert.equal(one('User'), 'camera-node');
    assert.match(
      one('ExecStart') ?? '',
      /^\/opt\/camera-node\/bin\/camera-node collect --out \$\{COLLECT_DIR\} --name \$\{COLLECTOR_NAME\}$/,
    );
    assert.equal(one('EnvironmentFile'), '-/etc/camera-node/collector.env');
    assert.equal(one('NoNewPrivileges'), 'yes');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('ReadWritePaths'), '/var/lib/camera-node-collector');
    assert.equal(one('PrivateDevices'), 'yes', 'no camera here');
    assert.equal(one('KillSignal'), 'SIGTERM');
  });

  test('the env file lists every setting, with its default, commented out', async () => {
    const envFile = await readFile(join(DEPLOY, 'camera-node.env'), 'utf8');
    const unit = await readFile(join(DEPLOY, 'camera-node.service'), 'utf8');
    const pairs = (matches: IterableIterator<RegExpMatchArray>) => new Map([...matches].map(([, name = '', value = '']) => [name, value]));
    const fromUnit = pairs(unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm));
    const listed = pairs(envFile.matchAll(/^#([A-Z][A-Z0-9_]*)=(.*)$/gm));
    assert.equal(/^[A-Z_]+=/m.test(envFile), false, 'nothing is set: a fresh node runs on the defaults');
    const shown = (value: unknown): string => {
      if (value === undefined) return '';
      if (Array.isArray(value)) return value.join(',');
      if (typeof value === 'object' && value !== null) return JSON.stringify(value);
      return String(value);
    };
    for (const [key, property] of Object.entries(configProperties())) {
      const name = envName(key);
      assert.ok(listed.has(name), `${name} is missing from deploy/camera-node.env`);
      if (key === 'node_id' || key === 'public_url') continue;
      const expected = fromUnit.get(name) ?? shown(property['default']);
      assert.equal(listed.get(name), expected, `${name}'s default`);
    }
    assert.equal(listed.size, Object.keys(configProperties()).length, 'no setting the node does not know');
  });

  describe('install.sh --root with a real npm pack tarball', () => {
    let dir: string;
    let root: string;
    let tarball: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'camera-node-install-'));
      root = join(dir, 'root');
      // The tests run from a fresh build already, so the pack skips prepack's second one.
      const packed = run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir]);
      assert.equal(packed.status, 0, packed.output);
      const name = (await readdir(dir)).find((file) => file.endsWith('.tgz'));
      assert.ok(name, packed.output);
      tarball = join(dir, name);
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    // Dependencies come from npm's cache when it has them (it does after `npm ci`): no network needed.
    const install = (...args: string[]) =>
      run('bash', [INSTALL, '--root', root, ...args], { cwd: dir, env: { ...process.env, npm_config_prefer_offline: 'true' } });
    const app = (): string => join(root, 'opt/camera-node/lib/node_modules/camera-node');

    test('--dry-run prints every step and changes nothing', async () => {
      const result = install('--dry-run', tarball);
      assert.equal(result.status, 0, result.output);
      assert.match(result.output, /^\+ npm install --global --prefix \S+\/opt\/camera-node --omit=dev/m);
      assert.match(result.output, /^\+ install -m 0644 \S+ \S+\/etc\/systemd\/system\/camera-node\.service$/m);
      await assert.rejects(stat(root), { code: 'ENOENT' });
    });

    test('below systemd 252 a drop-in turns ProtectClock off (it would close the camera devices); from 252 it stays on', () => {
      const dryRun = (version: string) =>
        run('bash', [INSTALL, '--root', root, '--dry-run', tarball], { cwd: dir, env: { ...process.env, SYSTEMD_VERSION: version } });
      const bullseye = dryRun('247');
      assert.equal(bullseye.status, 0, bullseye.output);
      assert.match(bullseye.output, /^\+ write \S+\/etc\/systemd\/system\/camera-node\.service\.d\/protect-clock\.conf$/m);
      const bookworm = dryRun('252');
      assert.equal(bookworm.status, 0, bookworm.output);
      assert.doesNotMatch(bookworm.output, /protect-clock\.conf/);
      if (Number(process.versions.node.split('.')[0]) < 22) assert.match(bookworm.output, /Node 22 is recommended/);
    });

    test('installs the program with production dependencies only, the unit, the env file and the dirs', async () => {
      const result = install(tarball);
      assert.equal(result.status, 0, result.output);
      assert.match(result.output, /skipped \(no systemd here or --root\): systemctl enable camera-node\.service/);
      const unit = await readFile(join(root, 'etc/systemd/system/camera-node.service'), 'utf8');
      assert.equal(unit, await readFile(join(DEPLOY, 'camera-node.service'), 'utf8'));
      const envFile = join(root, 'etc/camera-node/camera-node.env');
      assert.equal((await stat(envFile)).mode & 0o777, 0o640);
      for (const state of ['var/lib/camera-node', 'var/log/camera-node']) assert.ok((await stat(join(root, state))).isDirectory(), state);

      await stat(join(app(), 'dist/src/main.js'));
      await stat(join(app(), 'schemas/config.schema.json'));
      const manifest = JSON.parse(await readFile(join(PROJECT, 'package.json'), 'utf8')) as { version: string; dependencies: object };
      const modules = await readdir(join(app(), 'node_modules'));
      for (const dependency of Object.keys(manifest.dependencies))
        assert.ok(modules.includes(dependency.split('/')[0] ?? ''), `${dependency} installed`);
      // Packages the lock file marks dev-only (typescript, node-red and everything only they need)
      // are absent; a dev dependency that a production one also needs (ws, for mqtt) is not dev-only.
      const lock = JSON.parse(await readFile(join(PROJECT, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean; version?: string }>;
      };
      const devOnlyEntries = Object.entries(lock.packages).filter(
        ([path, entry]) => entry.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path),
      );
      const devOnly = devOnlyEntries.map(([path]) => path.slice('node_modules/'.length));
      const devVersion = new Map(devOnlyEntries.map(([path, entry]) => [path.slice('node_modules/'.length), entry.version]));
      assert.ok(devOnly.includes('typescript') && devOnly.includes('fast-check'));
      const installed = new Set(modules.flatMap((entry) => (entry.startsWith('@') ? [] : [entry])));
      for (const scope of modules.filter((entry) => entry.startsWith('@'))) {
        for (const name of await readdir(join(app(), 'node_modules', scope))) installed.add(`${scope}/${name}`);
      }
      // By version too: a production dependency may need another major of a dev-only package's name
      // (@fastify/static needs content-disposition 3, node-red 0.5), which npm then hoists.
      const installedVersion = async (name: string): Promise<string | undefined> =>
        (JSON.parse(await readFile(join(app(), 'node_modules', name, 'package.json'), 'utf8')) as { version?: string }).version;
      const devInstalled: string[] = [];
      for (const name of devOnly.filter((n) => installed.has(n)))
        if ((await installedVersion(name)) === devVersion.get(name)) devInstalled.push(name);
      assert.deepEqual(devInstalled, [], 'dev-only packages installed');
      // The installed command runs.
      const version = run(join(root, 'opt/camera-node/bin/camera-node'), ['--version']);
      assert.equal(version.status, 0, version.output);
      assert.equal(version.output.trim(), manifest.version);
    });

    test('systemd-analyze verify accepts the installed unit', { skip: missing('systemd-analyze', ['--version']) ?? false }, async () => {
      // verify checks that ExecStart exists: point it at the tree installed under --root.
      const unit = (await readFile(join(root, 'etc/systemd/system/camera-node.service'), 'utf8')).replace(
        /^ExecStart=\/opt\/camera-node\/bin\/camera-node$/m,
        `ExecStart=${join(root, 'opt/camera-node/bin/camera-node')}`,
      );
      const copy = join(dir, 'camera-node.service');
      await writeFile(copy, unit);
      const result = run('systemd-analyze', ['verify', copy]);
      assert.equal(result.status, 0, result.output);
    });

    test('systemd-analyze verify accepts the collector unit, which runs the installed program', {
      skip: missing('systemd-analyze', ['--version']) ?? false,
    }, async () => {
      const unit = (await readFile(join(DEPLOY, 'camera-node-collector.service'), 'utf8')).replace(
        /^ExecStart=\/opt\/camera-node\/bin\/camera-node /m,
        `ExecStart=${join(root, 'opt/camera-node/bin/camera-node')} `,
      );
      assert.match(unit, new RegExp(`^ExecStart=${join(root, 'opt/camera-node/bin/camera-node')} collect `, 'm'));
      const copy = join(dir, 'camera-node-collector.service');
      await writeFile(copy, unit);
      const result = run('systemd-analyze', ['verify', copy]);
      assert.equal(result.status, 0, result.output);
    });

    test('a second run upgrades in place and keeps the edited env file', async () => {
      const envFile = join(root, 'etc/camera-node/camera-node.env');
      await writeFile(envFile, 'NODE_ID=cam-kitchen\n');
      const result = install(tarball);
      assert.equal(result.status, 0, result.output);
      assert.match(result.output, /keeping the settings/);
      assert.equal(await readFile(envFile, 'utf8'), 'NODE_ID=cam-kitchen\n');
      await stat(join(app(), 'dist/src/main.js'));
    });

    test('--uninstall removes the program and the unit and keeps settings and images; --purge removes them', async () => {
      await writeFile(join(root, 'var/lib/camera-node/kept.dng'), 'image');
      const result = install('--uninstall');
      assert.equal(result.status, 0, result.output);
      await assert.rejects(stat(join(root, 'opt/camera-node')), { code: 'ENOENT' });
      await assert.rejects(stat(join(root, 'etc/systemd/system/camera-node.service')), { code: 'ENOENT' });
      await stat(join(root, 'etc/camera-node/camera-node.env'));
      await stat(join(root, 'var/lib/camera-node/kept.dng'));
      const again = install('--uninstall');
      assert.equal(again.status, 0, `uninstalling twice is harmless: ${again.output}`);
      const purge = install('--uninstall', '--purge');
      assert.equal(purge.status, 0, purge.output);
      for (const gone of ['etc/camera-node', 'var/lib/camera-node', 'var/log/camera-node']) {
        await assert.rejects(stat(join(root, gone)), { code: 'ENOENT' }, gone);
      }
    });
  });
});

describe('the Mosquitto config and ACL for a fleet (deploy/mosquitto)', {
  skip: mosquittoMissing() ?? missing('mosquitto_passwd', ['-h']) ?? false,
}, () => {
  const PASSWORD = {
    'cam-a': 'secret-a',
    'cam-b': 'secret-b',
    controller: 'secret-c',
    homeassistant: 'secret-h',
    collector: 'secret-k',
  } as const;
  let dir: string;
  let broker: Mosquitto;
  const clients: MqttClient[] = [];
  const login = async (user: keyof typeof PASSWORD): Promise<MqttClient> => {
    const client = await connectClient(broker.url, {
      username: user,
      password: PASSWORD[user],
      protocolVersion: 5,
      clientId: `acl-test-${user}`,
    });
    clients.push(client);
    return client;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'camera-node-acl-'));
    const passwd = join(dir, 'passwd');
    const acl = join(dir, 'acl');
    await copyFile(join(DEPLOY, 'mosquitto/acl'), acl);
    await writeFile(passwd, '');
    for (const [user, password] of Object.entries(PASSWORD)) {
      const made = run('mosquitto_passwd', ['-b', passwd, user, password]);
      assert.equal(made.status, 0, made.output);
    }
    await chmod(passwd, 0o600);
    await chmod(acl, 0o600);
    // The shipped config as is, but for its LAN listener (the test's own is on a free loopback
    // port) and its file locations.
    const conf = (await readFile(join(DEPLOY, 'mosquitto/camera-node.conf'), 'utf8'))
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#') && !line.startsWith('listener '))
      .map((line) => line.replace(/^password_file .*/, `password_file ${passwd}`).replace(/^acl_file .*/, `acl_file ${acl}`));
    assert.ok(conf.includes('allow_anonymous false'));
    broker = await startMosquitto(conf);
  });
  after(async () => {
    for (const client of clients) await client.endAsync().catch(() => undefined);
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('anonymous clients and wrong passwords are refused', async () => {
    await assert.rejects(connectClient(broker.url, { protocolVersion: 5 }));
    await assert.rejects(connectClient(broker.url, { protocolVersion: 5, username: 'cam-a', password: 'wrong' }));
  });

  test('a node publishes under its own topics only: a forged message never reaches a subscriber', async () => {
    const camA = await login('cam-a');
    const controller = await login('controller');
    const seen = await collect(controller, 'cameras/#');
    // MQTT 5: the broker says so in the PUBACK (0x87 not authorized) and drops the message.
    await assert.rejects(camA.publishAsync('cameras/cam-b/status', '{"forged":true}', { qos: 1 }), { code: 0x87 });
    await assert.rejects(camA.publishAsync('cameras/all/cmd', '{"action":"delete","filename":"x.dng"}', { qos: 1 }), { code: 0x87 });
    await assert.rejects(camA.publishAsync('homeassistant/button/cam-b/capture/config', '{}', { qos: 1 }), { code: 0x87 });
    await camA.publishAsync('cameras/cam-a/status', '{"own":true}', { qos: 1 });
    // One client's messages arrive in order: once the own message is in, the forged ones would be too.
    await seen.waitFor((m) => m.topic === 'cameras/cam-a/status');
    assert.deepEqual(
      seen.messages.map((m) => m.topic),
      ['cameras/cam-a/status'],
    );
    await seen.close();
  });

  test('a node reads its own, broadcast and group commands, never another node’s; the controller commands', async () => {
    const camA = await login('cam-a');
    const camB = await login('cam-b');
    const controller = await login('controller');
    const atA = await collect(camA, 'cameras/+/cmd');
    const atAGroup = await collect(camA, 'cameras/group/+/cmd');
    const atB = await collect(camB, 'cameras/cam-b/cmd');
    await controller.publishAsync('cameras/cam-b/cmd', '{"id":"for-b"}', { qos: 1 });
    await controller.publishAsync('cameras/all/cmd', '{"id":"for-all"}', { qos: 1 });
    await controller.publishAsync('cameras/group/north/cmd', '{"id":"for-north"}', { qos: 1 });
    await controller.publishAsync('cameras/cam-a/cmd', '{"id":"for-a"}', { qos: 1 });
    await atB.waitFor((m) => m.json()['id'] === 'for-b');
    await atAGroup.waitFor((m) => m.json()['id'] === 'for-north');
    await atA.waitFor((m) => m.json()['id'] === 'for-a');
    assert.deepEqual(
      atA.messages.map((m) => m.json()['id']),
      ['for-all', 'for-a'],
      'cam-a never sees cam-b’s command',
    );
    for (const collector of [atA, atAGroup, atB]) await collector.close();
  });

  test('replies nobody can forge: a node may answer only under its own namespace, and controllers check it', async () => {
    const camA = await login('cam-a');
    const controller = await login('controller');
    const replies = await collect(controller, replyTopicFilter('cameras', 'ctl-1'));
    const forged = JSON.stringify({ id: 'c1', node_id: 'cam-b', action: 'capture', status: 'success' });
    // cam-a answering for cam-b, on cam-b's reply topic: refused by the broker (0x87 not authorized).
    await assert.rejects(camA.publishAsync('cameras/cam-b/res/ctl-1', forged, { qos: 1 }), { code: 0x87 });
    // The old shared replies topic is closed to nodes too.
    await assert.rejects(camA.publishAsync('cameras/replies/ctl-1', forged, { qos: 1 }), { code: 0x87 });
    // Under its own namespace the broker lets it through, and the controller drops a reply whose
    // node_id is not the topic's node level.
    await camA.publishAsync('cameras/cam-a/res/ctl-1', forged, { qos: 1 });
    const genuine = JSON.stringify({ id: 'c1', node_id: 'cam-a', action: 'capture', status: 'success' });
    await camA.publishAsync('cameras/cam-a/res/ctl-1', genuine, { qos: 1 });
    const arrived = await replies.waitFor((m) => m.json()['node_id'] === 'cam-a');
    const accepted = replies.messages.map((m) => acceptReply('cameras', 'ctl-1', m.topic, m.payload)).filter((r) => r !== null);
    assert.equal(arrived.length, 1);
    assert.deepEqual(
      replies.messages.map((m) => m.topic),
      ['cameras/cam-a/res/ctl-1', 'cameras/cam-a/res/ctl-1'],
      'the forgery for cam-b never reached the controller',
    );
    assert.deepEqual(
      accepted.map((r) => r.node_id),
      ['cam-a'],
      'the reply naming another node is ignored',
    );
    await replies.close();
  });

  test('a real node whose user is its id works under the ACL: commands, replies, image delivery, discovery', async () => {
    let camera: TestNode | null = null;
    try {
      camera = await startTestNode({
        node_id: 'cam-a',
        mqtt_url: broker.url,
        mqtt_username: 'cam-a',
        mqtt_password: PASSWORD['cam-a'],
        mqtt_protocol_version: 5,
      });
      const controller = await login('controller');
      const homeAssistant = await login('homeassistant');
      const manifests = await collect(controller, 'cameras/cam-a/images/+/manifest');
      // Retained: what the node published at connect went through the ACL.
      const discovery = await collect(homeAssistant, 'homeassistant/+/cam-a/+/config');
      const availability = await collect(homeAssistant, 'cameras/cam-a/availability');
      const reply = await request(controller, 'cameras', 'cam-a', { action: 'capture', deliver: 'mqtt' });
      assert.equal(reply['status'], 'success', JSON.stringify(reply));
      // With reply_to, the node answers under its own namespace, which the ACL lets it write.
      const routed = await collect(controller, replyTopicFilter('cameras', 'ctl-2'));
      const status = commandPayload('status', {}, { requester: 'ctl-2' });
      await controller.publishAsync('cameras/cam-a/cmd', JSON.stringify(status), { qos: 1 });
      const [answer] = await routed.waitFor((m) => m.json()['id'] === status.id);
      assert.equal(answer?.topic, 'cameras/cam-a/res/ctl-2');
      assert.equal(acceptReply('cameras', 'ctl-2', answer?.topic ?? '', answer?.payload ?? '')?.status, 'success');
      await routed.close();
      const [manifest] = await manifests.waitFor();
      assert.equal(manifest?.json()['filename'], (reply['file_info'] as { filename: string }).filename);
      const [config] = await discovery.waitFor();
      assert.ok(config && config.payload.length > 0);
      const [online] = await availability.waitFor();
      assert.equal(online?.payload.toString(), 'online');
      // A collector (here the controller user) coming online is heard: the image is offered again;
      // its receipt goes through, and only then is the image delivered.
      await controller.publishAsync('cameras/collectors/acl-collector/availability', 'online', { qos: 1, retain: true });
      await manifests.waitFor(() => true, 2);
      const receipt = await request(controller, 'cameras', 'cam-a', {
        action: 'receipt',
        filename: manifest?.json()['filename'],
        sha256: manifest?.json()['sha256'],
        collector: 'acl-collector',
      });
      assert.deepEqual([receipt['status'], receipt['delivered']], ['success', true], JSON.stringify(receipt));
      await controller.publishAsync('cameras/collectors/acl-collector/availability', '', { qos: 1, retain: true });
      for (const collector of [manifests, discovery, availability]) await collector.close();
    } finally {
      await camera?.stop();
    }
  });
  test('the collector service, logged in as the collector user, receives an image and its receipt delivers it', {
    timeout: 30_000,
  }, async () => {
    let camera: TestNode | null = null;
    const outDir = await mkdtemp(join(tmpdir(), 'camera-node-acl-collected-'));
    // As `camera-node collect` runs it, with the shipped ACL's collector user.
    const collector = createCollector({
      url: broker.url,
      outDir,
      name: 'acl-collector',
      username: 'collector',
      password: PASSWORD.collector,
    });
    try {
      camera = await startTestNode({
        node_id: 'cam-b',
        mqtt_url: broker.url,
        mqtt_username: 'cam-b',
        mqtt_password: PASSWORD['cam-b'],
        mqtt_protocol_version: 5,
        ha_discovery: false,
      });
      await collector.start();
      const received = new Promise<ReceivedImage>((resolve) => collector.once('image', resolve));
      const receipted = new Promise<{ status: string }>((resolve) => collector.once('receipt', resolve));
      const capture = await camera.node.commands.capture({ deliver: 'mqtt' }, { source: 'http' });
      assert.equal(capture.status, 'success', JSON.stringify(capture));
      const filename = (capture as unknown as { file_info: { filename: string } }).file_info.filename;
      const image = await received;
      assert.equal(image.filename, filename);
      assert.ok((await readFile(image.path)).equals(await readFile(join(camera.config.capture_dir, filename))));
      // The node confirmed the receipt (the collector may write cameras/+/cmd and read its replies).
      assert.equal((await receipted).status, 'success');
      const status = (await camera.node.commands.status()) as { delivery: { mqtt: { delivered: number; pending: number } } };
      assert.deepEqual([status.delivery.mqtt.delivered, status.delivery.mqtt.pending], [1, 0]);
    } finally {
      await collector.stop();
      await camera?.stop();
      await rm(outDir, { recursive: true, force: true });
    }
  });
});

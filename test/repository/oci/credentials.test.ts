import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../manifest-schema/errors.js';
import { loadRegistryCredentials } from '../../../repository/oci/credentials.js';
import { tempDir } from '../../helpers.js';

const REGISTRY = 'registry.example.com:5443';

describe('loadRegistryCredentials', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await tempDir('ferry-oci-creds-');
  });

  async function dockerConfig(name: string, config: unknown): Promise<string> {
    const folder = join(dir, name);
    await mkdir(folder, { recursive: true });
    await writeFile(
      join(folder, 'config.json'),
      typeof config === 'string' ? config : JSON.stringify(config),
    );
    return folder;
  }

  const auth = (user: string, password: string) =>
    Buffer.from(`${user}:${password}`).toString('base64');

  it('takes FERRY_REGISTRY_USER and FERRY_REGISTRY_PASSWORD first', async () => {
    const config = await dockerConfig('both', {
      auths: { [REGISTRY]: { auth: auth('docker', 'x') } },
    });
    const found = await loadRegistryCredentials(REGISTRY, {
      FERRY_REGISTRY_USER: 'ci',
      FERRY_REGISTRY_PASSWORD: 'p@ss:word',
      DOCKER_CONFIG: config,
    });
    expect(found?.username).toBe('ci');
    expect(found?.basic()).toBe(`Basic ${auth('ci', 'p@ss:word')}`);
  });

  it('refuses one of the two variables without the other', async () => {
    await expect(
      loadRegistryCredentials(REGISTRY, { FERRY_REGISTRY_USER: 'ci' }),
    ).rejects.toMatchObject({
      code: 'E_REGISTRY_AUTH',
    });
  });

  it.each([
    ['registry.example.com:5443', 'plain host:port'],
    ['https://registry.example.com:5443', 'with a scheme'],
    ['https://Registry.Example.com:5443/v1/', 'with a path and capitals'],
  ])('finds auths[%s] (%s) in $DOCKER_CONFIG/config.json', async (key) => {
    const config = await dockerConfig(`auths-${key.length}`, {
      auths: {
        'other.example.com': { auth: auth('no', 'no') },
        [key]: { auth: auth('robot$ci', 'pa:ss') },
      },
    });
    const found = await loadRegistryCredentials(REGISTRY, { DOCKER_CONFIG: config });
    expect(found?.username).toBe('robot$ci');
    expect(found?.basic()).toBe(`Basic ${auth('robot$ci', 'pa:ss')}`);
    expect(found?.source).toContain(join(config, 'config.json'));
  });

  it('reads ~/.docker/config.json when DOCKER_CONFIG is unset', async () => {
    await dockerConfig(join('home', '.docker'), {
      auths: { [REGISTRY]: { auth: auth('me', 'pw') } },
    });
    const found = await loadRegistryCredentials(REGISTRY, { HOME: join(dir, 'home') });
    expect(found?.username).toBe('me');
  });

  it('is anonymous when nothing is configured for the registry', async () => {
    const config = await dockerConfig('none', {
      auths: { 'other.example.com': { auth: auth('a', 'b') } },
    });
    expect(await loadRegistryCredentials(REGISTRY, { DOCKER_CONFIG: config })).toBeUndefined();
    expect(
      await loadRegistryCredentials(REGISTRY, { DOCKER_CONFIG: join(dir, 'missing') }),
    ).toBeUndefined();
  });

  it('asks the credential helper the config names, as Docker does', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    // A helper speaking Docker's protocol: the registry on stdin, JSON on stdout.
    await writeFile(
      join(bin, 'docker-credential-ferrytest'),
      `#!/bin/sh\nread host\n[ "$1" = get ] && [ "$host" = "${REGISTRY}" ] || { echo "credentials not found in native keychain"; exit 1; }\necho '{"ServerURL":"'$host'","Username":"helped","Secret":"from-helper"}'\n`,
    );
    await chmod(join(bin, 'docker-credential-ferrytest'), 0o755);
    const env = { PATH: `${bin}:/usr/bin:/bin` };
    const config = await dockerConfig('helper', {
      credHelpers: { [REGISTRY]: 'ferrytest' },
      auths: {},
    });
    const found = await loadRegistryCredentials(REGISTRY, { ...env, DOCKER_CONFIG: config });
    expect(found?.username).toBe('helped');
    expect(found?.basic()).toBe(`Basic ${auth('helped', 'from-helper')}`);
    const store = await dockerConfig('store', { credsStore: 'ferrytest' });
    expect(
      await loadRegistryCredentials('elsewhere.example.com', { ...env, DOCKER_CONFIG: store }),
    ).toBeUndefined();
    const missing = await dockerConfig('missing-helper', { credsStore: 'nowhere' });
    await expect(
      loadRegistryCredentials(REGISTRY, { ...env, DOCKER_CONFIG: missing }),
    ).rejects.toMatchObject({
      code: 'E_REGISTRY_AUTH',
    });
  });

  it('runs only a helper found on PATH: a name with a path in it is refused, not run', async () => {
    // docker-credential-../../<dir>/evil would otherwise run <dir>/evil by its path.
    const marker = join(dir, 'ran');
    await writeFile(join(dir, 'evil'), `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    await mkdir(join(dir, 'docker-credential-x'), { recursive: true });
    const config = await dockerConfig('path-helper', { credsStore: `x/../evil` });
    // spawn runs a name with a slash relative to the working directory.
    const cwd = process.cwd();
    process.chdir(dir);
    const error = await loadRegistryCredentials(REGISTRY, {
      PATH: '/usr/bin:/bin',
      DOCKER_CONFIG: config,
    })
      .catch((e: unknown) => e)
      .finally(() => process.chdir(cwd));
    await expect(stat(marker)).rejects.toThrow();
    expect(error).toMatchObject({ code: 'E_REGISTRY_AUTH' });
    expect((error as FerryError).message).toContain('"x/../evil"');
  });

  it('gives up on a credential helper that does not answer, naming it and the setting', async () => {
    const bin = join(dir, 'bin-silent');
    await mkdir(bin, { recursive: true });
    // A helper waiting for a keychain to unlock, or a passphrase nobody will type.
    await writeFile(join(bin, 'docker-credential-silent'), '#!/bin/sh\nexec sleep 600\n');
    await chmod(join(bin, 'docker-credential-silent'), 0o755);
    const config = await dockerConfig('silent-helper', { credsStore: 'silent' });
    const error = await loadRegistryCredentials(REGISTRY, {
      PATH: `${bin}:/usr/bin:/bin`,
      DOCKER_CONFIG: config,
      FERRY_CREDENTIAL_HELPER_SECONDS: '0.5',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FerryError);
    expect(error).toMatchObject({ code: 'E_REGISTRY_AUTH' });
    expect((error as FerryError).message).toContain('docker-credential-silent (named in');
    expect((error as FerryError).message).toContain('did not answer within 0.5 s');
  });

  it('waits for a helper given a limit longer than a timer takes (24.8 days): as good as never, not at once', async () => {
    // Past 2^31-1 ms Node fires a timer at once: the helper was killed before it could answer.
    const bin = join(dir, 'bin-slow');
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, 'docker-credential-slow'),
      `#!/bin/sh\nread host\nsleep 0.2\necho '{"Username":"patient","Secret":"s"}'\n`,
    );
    await chmod(join(bin, 'docker-credential-slow'), 0o755);
    const config = await dockerConfig('slow-helper', { credsStore: 'slow' });
    const found = await loadRegistryCredentials(REGISTRY, {
      PATH: `${bin}:/usr/bin:/bin`,
      DOCKER_CONFIG: config,
      FERRY_CREDENTIAL_HELPER_SECONDS: '99999999',
    });
    expect(found?.username).toBe('patient');
  });

  it('refuses a helper limit that is not a number of seconds, whether a helper runs or not', async () => {
    for (const env of [
      { FERRY_CREDENTIAL_HELPER_SECONDS: '1m' },
      {
        FERRY_CREDENTIAL_HELPER_SECONDS: '1m',
        FERRY_REGISTRY_USER: 'ci',
        FERRY_REGISTRY_PASSWORD: 'x',
      },
    ]) {
      const error = await loadRegistryCredentials(REGISTRY, {
        DOCKER_CONFIG: join(dir, 'missing'),
        ...env,
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'E_USAGE' });
      expect((error as FerryError).message).toContain('FERRY_CREDENTIAL_HELPER_SECONDS is "1m"');
    }
  });

  it('never shows a secret: not when printed, not when a config is broken', async () => {
    const found = await loadRegistryCredentials(REGISTRY, {
      FERRY_REGISTRY_USER: 'ci',
      FERRY_REGISTRY_PASSWORD: 'hunter2-secret',
    });
    for (const text of [
      inspect(found),
      JSON.stringify(found),
      String(found),
      inspect({ nested: found }),
    ]) {
      expect(text).not.toContain('hunter2-secret');
    }
    const secret = auth('ci', 'hunter3-secret');
    const broken = await dockerConfig('broken', `{"auths":{"${REGISTRY}":{"auth":"${secret}"}`);
    const error = await loadRegistryCredentials(REGISTRY, { DOCKER_CONFIG: broken }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FerryError);
    expect((error as FerryError).code).toBe('E_REGISTRY_AUTH');
    expect(inspect(error, { depth: 10 })).not.toContain(secret);
    const empty = await dockerConfig('no-password', {
      auths: { [REGISTRY]: { identitytoken: 'tok-123' } },
    });
    const refused = await loadRegistryCredentials(REGISTRY, { DOCKER_CONFIG: empty }).catch(
      (e: unknown) => e,
    );
    expect((refused as FerryError).code).toBe('E_REGISTRY_AUTH');
    expect(inspect(refused, { depth: 10 })).not.toContain('tok-123');
  });
});

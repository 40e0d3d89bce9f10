// Starts Debian's docker-registry with `config` and waits until `origin` answers /v2/,
// for the registry benches (bench-registry.mjs, bench-link.mjs).
import { spawn } from 'node:child_process';
import { get } from 'node:http';

export async function startRegistry(binary, config, origin) {
  const registry = spawn(binary, ['serve', config], { stdio: 'ignore' });
  for (let tries = 0; ; tries++) {
    const up = await new Promise((resolve) =>
      get(`${origin}/v2/`, (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      }).on('error', () => resolve(false)),
    );
    if (up) return registry;
    if (tries > 300) {
      registry.kill();
      throw new Error(`docker-registry did not start at ${origin}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

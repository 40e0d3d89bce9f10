import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { afterAll } from 'vitest';

// Real filesystems for the fault tests: loop-mounted ext4 images (small enough
// to fill, and with the ext4 error trigger to drop unflushed writes as a power
// cut does) and tmpfs with a size. Everything mounted is unmounted after the
// file's tests.

/** Why these tests cannot run here, or null when they can. */
export function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (mount, loop devices)';
  for (const program of ['losetup', 'mkfs.ext4', 'mount', 'umount', 'e2fsck'])
    if (!['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => existsSync(join(d, program))))
      return `needs ${program}`;
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control)';
  return null;
}

function sh(program: string, args: readonly string[]): string {
  return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface Ext4 {
  /** Where it is mounted. */
  mount: string;
  device: string;
  /** Forces an ext4 error: with errors=remount-ro the filesystem goes read-only, and writes not yet on disk are lost. */
  fail(): Promise<void>;
  /** Unmounts, checks and mounts again: what a reboot after the fault finds. */
  remount(): void;
}

const mounted: string[] = [];
const loops: string[] = [];
afterAll(() => {
  for (const mount of mounted.reverse()) {
    try {
      sh('umount', ['-l', mount]);
    } catch {
      // already gone
    }
  }
  for (const device of loops) {
    try {
      sh('losetup', ['-d', device]);
    } catch {
      // already detached
    }
  }
});

/** A fresh ext4 of `mib` MiB (no reserved blocks) mounted at `at`, errors=remount-ro. */
export async function ext4(image: string, at: string, mib: number): Promise<Ext4> {
  sh('truncate', ['-s', `${mib}M`, image]);
  sh('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  const device = sh('losetup', ['--find', '--show', image]).trim();
  loops.push(device);
  await mkdir(at, { recursive: true });
  const options = 'errors=remount-ro';
  sh('mount', ['-o', options, device, at]);
  mounted.push(at);
  return {
    mount: at,
    device,
    fail: () => writeFile(`/sys/fs/ext4/${basename(device)}/trigger_fs_error`, '1\n'),
    remount: () => {
      sh('umount', [at]);
      try {
        sh('e2fsck', ['-fy', device]);
      } catch {
        // e2fsck exits 1 when it fixed something: that is what a boot does
      }
      sh('mount', ['-o', options, device, at]);
    },
  };
}

/** A tmpfs of `mib` MiB mounted at `at`. */
export async function tmpfs(at: string, mib: number): Promise<void> {
  await mkdir(at, { recursive: true });
  sh('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'tmpfs', at]);
  mounted.push(at);
}

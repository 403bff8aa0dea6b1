/** sockcat's version line: `--version` prints it (yargs in cli.ts, or early in version-early.ts). */
import pkg from '../package.json' with { type: 'json' };

/** `sockcat 0.2.0 (node 24.22.3)`: our version and the Node inside. */
export function versionText(): string {
  return `sockcat ${pkg.version} (node ${process.versions.node})`;
}

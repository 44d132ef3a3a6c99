// Lints a Shopify theme app extension with Shopify's theme-check, offline and reproducibly.
//
// Usage: node tests/extension/theme_check.mjs extensions/storefront-widgets
// Prints one line per offence and exits 1 if there is any (errors, warnings and suggestions alike),
// 0 on a clean run, 2 on a usage or internal error.
//
// theme-check wants Shopify's Liquid docs (filters, objects, tags, JSON schemas) and by default
// downloads the latest from GitHub into a user cache. Both would make the result depend on the
// network and on the machine, so the docs root (SHOPIFY_TLD_ROOT) and the cache (XDG_CACHE_HOME)
// point at an empty temporary directory: the download fails without touching the network and
// theme-check falls back to the docs bundled with the pinned @shopify/theme-check-docs-updater.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const SEVERITY = ['error', 'warning', 'suggestion'];

async function main() {
  const [root] = process.argv.slice(2);
  if (!root || !fs.existsSync(path.join(root, 'shopify.extension.toml'))) {
    console.error('usage: node theme_check.mjs <theme app extension directory with shopify.extension.toml>');
    return 2;
  }
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'theme-check-offline-'));
  process.env.SHOPIFY_TLD_ROOT = empty;
  process.env.XDG_CACHE_HOME = empty;
  try {
    // Imported only now: the docs updater reads the environment when it loads.
    const { themeCheckRun } = await import('@shopify/theme-check-node');
    const absoluteRoot = path.resolve(root);
    const { theme, offenses } = await themeCheckRun(absoluteRoot, 'theme-check:theme-app-extension');
    for (const offense of offenses) {
      const file = path.relative(absoluteRoot, new URL(offense.uri).pathname);
      const where = `${file}:${offense.start.line + 1}:${offense.start.character + 1}`;
      console.log(`${where} ${SEVERITY[offense.severity] ?? offense.severity} ${offense.check}: ${offense.message}`);
    }
    console.log(`theme-check: ${theme.length} files, ${offenses.length} offences`);
    return offenses.length === 0 ? 0 : 1;
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(2);
  },
);

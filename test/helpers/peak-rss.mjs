// node test/helpers/peak-rss.mjs ARGS…: `lopper ARGS…` in this process, then its peak resident
// memory on stderr's last line ("peak-rss-bytes N"), whatever the exit status.
process.on('exit', () => process.stderr.write(`peak-rss-bytes ${process.resourceUsage().maxRSS * 1024}\n`));
process.argv.splice(1, 1, new URL('../../bin/lopper.mjs', import.meta.url).pathname);
await import('../../bin/lopper.mjs');
